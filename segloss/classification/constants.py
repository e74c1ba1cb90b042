"""The classification task's shared names, with the standard library only."""

TASK = "classification"
