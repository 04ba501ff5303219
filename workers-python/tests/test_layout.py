"""The training package's layout: every module imports, and no import cycle runs through
makam_worker.training (imports inside functions count, since they run too)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import makam_worker

PACKAGE = "makam_worker.training"
ROOT = Path(makam_worker.__file__).parent.parent  # src/


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def training_modules() -> dict[str, Path]:
    base = ROOT / Path(*PACKAGE.split("."))
    return {module_name(p): p for p in sorted(base.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: set[str], *, runtime_only: bool = False) -> set[str]:
    """The makam_worker modules `name` imports anywhere in its file (`import`, `from`, relative too);
    `from pkg import mod` names the submodule when there is one."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node):
                skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("makam_worker"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("makam_worker"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = training_modules()
    known = set(modules)
    return {name: {m for m in imports_of(name, path, known) if m in known} for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_reports_a_cycle_and_passes_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions_and_submodules():
    edges = graph()
    assert f"{PACKAGE}.trainer" in edges[f"{PACKAGE}.pipeline"]  # imported inside train_run
    assert f"{PACKAGE}.report" in edges[f"{PACKAGE}.trainer"]  # `from makam_worker.training import report`


def test_no_import_cycle_in_the_training_package():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_common_is_a_leaf():
    """What every family uses imports nothing of makam_worker when it runs (types only)."""
    modules = training_modules()
    name = f"{PACKAGE}.common"
    assert imports_of(name, modules[name], set(modules), runtime_only=True) == set()


@pytest.mark.parametrize("name", sorted(training_modules()))
def test_every_module_imports(name):
    importlib.import_module(name)


def server_modules() -> dict[str, Path]:
    base = ROOT / "makam_worker"
    return {module_name(p): p for p in sorted(base.glob("*.py"))}


def test_no_training_module_is_named_like_a_server_module():
    """One name per concept: `training/checkpoint.py` beside `checkpoint_store.py` read as one thing
    (it is the loop's state, now `train_state.py`); a stem that is another's first words misleads so."""
    server = {name.rpartition(".")[2] for name in server_modules()}
    training = {name.rpartition(".")[2] for name in training_modules()}
    confusable = sorted((t, s) for t in training for s in server
                        if t == s or s.startswith(f"{t}_") or t.startswith(f"{s}_"))
    assert confusable == []


def test_the_run_spec_is_a_leaf_of_the_training_package():
    """The server writes spec.json through run_spec without importing the training code (or torch)."""
    name = "makam_worker.run_spec"
    found = imports_of(name, server_modules()[name], set(server_modules()) | set(training_modules()))
    assert not {m for m in found if m.startswith(PACKAGE)}
    assert found <= {"makam_worker.contracts.hyperparameters", "makam_worker.contracts"}
