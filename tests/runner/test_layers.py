"""The layers of the package import one way: applications -> runner -> loss core (and continual ->
classification, the one application built on another)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "segloss"
APPLICATIONS = ("segmentation", "classification", "continual")
# Applications that build on another: continual learning trains the classification track's models on its
# datasets (streams of them) with its optimizers and evaluation loop; nothing imports continual.
BUILDS_ON = {"continual": ("classification",)}


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the segloss modules ``path`` imports (relative imports resolved)."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == "segloss"}


def layer(path: Path) -> str:
    """``core``, ``runner`` or an application; ``python -m segloss`` (``__main__``) is the command."""
    relative = path.relative_to(PACKAGE)
    if relative.parts == ("__main__.py",):
        return "runner"
    return relative.parts[0] if len(relative.parts) > 1 and relative.parts[0] != "_kernels" else "core"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_from_applications_to_the_runner_to_the_core(path):
    imports = imported_modules(path)
    core = ("segloss._", "segloss.functional", "segloss.comparison", "segloss.modules", "segloss.margins",
            "segloss.metrics", "segloss.registry", "segloss.counting")  # fmt: skip
    allowed = {"core": core, "runner": (*core, "segloss.runner", "segloss.__version__")}
    own = layer(path)
    if own in allowed:
        wrong = sorted(name for name in imports if name != "segloss" and not name.startswith(allowed[own]))
        assert not wrong, f"{path.relative_to(PACKAGE)} ({own}) imports {wrong}"
    else:
        others = [app for app in APPLICATIONS if app != own and app not in BUILDS_ON.get(own, ())]
        wrong = sorted(name for name in imports if any(name.startswith(f"segloss.{app}") for app in others))
        assert not wrong, f"{path.relative_to(PACKAGE)} ({own}) imports another application: {wrong}"
