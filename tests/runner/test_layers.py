"""The layers of the package import one way: applications -> runner -> loss core (and continual ->
classification, the one application built on another)."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "segloss"
APPLICATIONS = ("segmentation", "classification", "continual")
# Applications that build on another: continual learning trains the classification track's models on its
# datasets (streams of them) with its optimizers and evaluation loop; nothing imports continual.
BUILDS_ON = {"continual": ("classification",)}


def is_module(name: str) -> bool:
    """Whether the dotted ``name`` is a module or package of the source tree."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the segloss modules ``path`` imports anywhere in its code (relative imports
    resolved, function-level imports included); ``from package import name`` imports the module
    ``package.name`` where there is one, else ``package`` itself."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.update(f"{module}.{alias.name}" if is_module(f"{module}.{alias.name}") else module
                         for alias in node.names)  # fmt: skip
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


def module_name(path: Path) -> str:
    """``segloss.a.b`` of ``segloss/a/b.py`` (``segloss.a`` of ``segloss/a/__init__.py``)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each segloss module -> the segloss modules it imports (``imported_modules``)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path) - {name} for name, path in paths.items()}


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, str] = {}  # "open" while on the path being followed, "done" after

    def follow(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target] if target in path else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                follow(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            follow(module, [module])


def test_no_module_imports_its_tasks_command_adapter():
    """``task.py`` is the command line's adapter of a task: the task's modules do not import it (shared names
    live in its ``constants.py``)."""
    graph = import_graph()
    for application in APPLICATIONS:
        adapter = f"segloss.{application}.task"
        importers = sorted(name for name, targets in graph.items() if adapter in targets)
        assert not importers, f"{importers} import {adapter}"


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check above is not vacuous: two modules importing each other (one inside a function) fail it."""
    package = tmp_path / "segloss"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from . import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    with pytest.raises(pytest.fail.Exception, match=r"segloss.sub.a -> segloss.sub.b -> segloss.sub.a"):
        test_the_import_graph_has_no_cycle()


@pytest.mark.parametrize("application", APPLICATIONS)
def test_every_task_has_the_same_shape(application):
    """Each task has the same modules, so a reader who knows one finds their way in another: its shared
    names, config schema, builders, ``train()``, evaluation, report, plots and the command adapter."""
    shape = ("constants", "config", "recipe", "training", "evaluation", "report", "plots", "task")
    missing = [name for name in shape if not (PACKAGE / application / f"{name}.py").is_file()]
    assert not missing, f"segloss/{application}/ lacks {missing}"
    task = (PACKAGE / application / "task.py").read_text()
    assert f'TRAIN = "segloss.{application}.training:train"' in task
    assert f'REPORT = "segloss.{application}.report:REPORT"' in task
