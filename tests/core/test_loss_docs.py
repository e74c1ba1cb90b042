"""Every registered loss and hyper-parameter is documented, and the config keys follow the registry."""

import dataclasses
import re
from pathlib import Path

from segloss.registry import HYPER_PARAMETERS, LOSSES
from segloss.runner.config import LossConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_registered_loss_has_a_section_in_the_losses_page():
    headings = re.findall(r"^## `([^`]+)`", (DOCS / "losses-and-margins.md").read_text(), flags=re.MULTILINE)
    missing = [name for name in LOSSES if name not in headings]
    assert not missing, f"docs/losses-and-margins.md needs a section '## `NAME`' for {missing}"
    assert len(set(headings)) == len(headings)


def test_the_loss_config_section_has_the_weighting_and_one_key_per_hyper_parameter():
    names = [f.name for f in dataclasses.fields(LossConfig)]
    assert names == ["name", "class_weighting", *HYPER_PARAMETERS]
    defaults = {f.name: f.default for f in dataclasses.fields(LossConfig)}
    assert all(defaults[key] == parameter.default for key, parameter in HYPER_PARAMETERS.items())
    for entry in LOSSES.values():
        assert set(entry.hyper_parameters) <= set(HYPER_PARAMETERS), entry.name


def first_column_names(page: Path, header: str) -> list[str]:
    """The backticked names in the first column of the table whose header line starts with ``header``."""
    lines = page.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    names = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        names.append(re.fullmatch(r"\| `([^`]+)` \|.*", line)[1])
    return names


def test_the_table_of_losses_is_the_registry():
    """The one list of losses in the docs names every registered loss, in the registry's order, and each
    loss's module is exported by ``segloss``."""
    import segloss

    assert first_column_names(DOCS / "losses-and-margins.md", "| name | functional") == list(LOSSES)
    for entry in LOSSES.values():
        assert getattr(segloss, entry.module.__name__) is entry.module, entry.name
