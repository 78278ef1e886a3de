"""Every third-party module hetsim imports is a declared dependency: a core one anywhere, an
optional extra's only inside a function (so ``pip install -e .`` alone runs ``hetsim plan``).
A module that a dev environment happens to have (click, via another package) would pass every
other test and fail on a fresh machine."""

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: import name -> distribution name, where they differ
DISTRIBUTION = {"yaml": "pyyaml", "adjustText": "adjusttext", "aiconfigurator_core":
                "aiconfigurator-core"}  # fmt: skip
#: modules that exist for one extra and are themselves imported only inside functions
EXTRA_ONLY = {"hetsim/perf/microbench/reference_model.py"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    optional = set().union(*(_names(v) for k, v in extras.items() if k != "test"))
    return _names(project["dependencies"]), optional


def _lazy(node: ast.AST) -> bool:
    """Whether imports under ``node`` run only when called (a function) or never (typing)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return True
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level outside `if TYPE_CHECKING`) per import."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((a.name.split(".")[0], module_level) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], module_level))
            else:
                visit(child, module_level and not _lazy(child))

    visit(tree, True)
    return found


def test_every_third_party_import_is_declared_and_extras_load_lazily():
    core, optional = _declared()
    undeclared, eager = set(), set()
    for path in sorted((ROOT / "hetsim").rglob("*.py")):
        extra_only = path.relative_to(ROOT).as_posix() in EXTRA_ONLY
        for module, module_level in _imports(path):
            if module in sys.stdlib_module_names or module == "hetsim":
                continue
            dist = DISTRIBUTION.get(module, module).lower()
            if dist not in core | optional:
                undeclared.add((path.name, module))
            elif dist not in core and module_level and not extra_only:
                eager.add((path.name, module))
    assert undeclared == set()
    assert eager == set()
