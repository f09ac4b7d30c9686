"""The layers' import contract (docs/ARCHITECTURE.md), checked on the source, lazy imports included.

fourds_app (the CLI) -> pipelines -> steps -> fourds (the library). A layer imports only
the layers below it; the library imports no orchestration code at all; no two library
modules import each other; a step only adapts one ``fourds.runs`` function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATION = ("zenml", "kfp")
LAYERS = ("fourds_app", "pipelines", "steps", "fourds")
"""Top to bottom; each may import the ones after it only."""
MAX_STEP_LINES = 40


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports when it runs, anywhere in the file (inside functions too), with its line.

    ``from package import name`` counts as importing ``package.name`` when that is a module
    of ours, else ``package``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):  # type-checking-only imports never run
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = any((ROOT / Path(*candidate.split("."))).with_suffix(suffix).exists()
                                for suffix in (".py", "")) and "." in candidate
                found.append((node.lineno, candidate if is_module else node.module))
    return found


def top_level(module: str) -> str:
    return module.split(".")[0]


def layer_violations(package: str) -> list[str]:
    allowed_below = LAYERS[LAYERS.index(package) + 1:]
    forbidden = set(LAYERS) - set(allowed_below) - {package}
    if package == "fourds":
        forbidden |= set(ORCHESTRATION)
    problems = []
    for path in python_files(package):
        for line, module in imported_modules(path):
            if top_level(module) in forbidden:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("package", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(package):
    assert layer_violations(package) == []


def test_the_contract_catches_a_lazy_import_of_orchestration_code(tmp_path, monkeypatch):
    """The check itself: an import hidden inside a function body is found."""
    fake_root = tmp_path
    (fake_root / "fourds").mkdir()
    (fake_root / "fourds" / "sneaky.py").write_text("def read():\n    from zenml.client import Client\n    return Client\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake_root)

    assert layer_violations("fourds") == ["fourds/sneaky.py:2 imports zenml.client"]


def mutual_imports(package: str) -> list[str]:
    graph = {module_name(path): {module for _, module in imported_modules(path)} for path in python_files(package)}
    pairs = []
    for module, imports in sorted(graph.items()):
        for other in sorted(imports):
            if other != module and other in graph and module in graph[other] and module < other:
                pairs.append(f"{module} <-> {other}")
    return pairs


def test_no_two_library_or_app_modules_import_each_other():
    assert mutual_imports("fourds") + mutual_imports("fourds_app") == []


def step_problems(path: Path) -> list[str]:
    """A step adapts: at most MAX_STEP_LINES lines, no branches or loops, no MLflow, no data splits."""
    source = path.read_text()
    problems = []
    lines = len(source.splitlines())
    if lines > MAX_STEP_LINES:
        problems.append(f"{lines} lines (at most {MAX_STEP_LINES})")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.For, ast.While, ast.IfExp, ast.comprehension, ast.Try)):
            problems.append(f"line {node.lineno}: a decision or loop ({type(node).__name__})")
        if isinstance(node, ast.Attribute) and node.attr in ("test", "val", "train"):
            problems.append(f"line {node.lineno}: reads a data split (.{node.attr})")
    problems += [f"line {line}: imports {module}" for line, module in imported_modules(path)
                 if top_level(module) in ("mlflow", "torch")]
    return problems


@pytest.mark.parametrize("path", python_files("steps"), ids=lambda path: path.name)
def test_every_step_only_adapts_one_library_call(path):
    assert step_problems(path) == []


def test_the_step_check_catches_a_step_that_scores_the_test_split(tmp_path):
    step = tmp_path / "evaluate.py"
    step.write_text("import mlflow\n\ndef evaluate(splits, model):\n"
                    "    if model is not None:\n        return model(splits.test)\n")

    assert step_problems(step) == ["line 4: a decision or loop (If)", "line 5: reads a data split (.test)",
                                   "line 1: imports mlflow"]
