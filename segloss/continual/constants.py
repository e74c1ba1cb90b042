"""The continual task's shared names, with the standard library only."""

TASK = "continual"
