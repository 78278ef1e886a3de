"""hetsim.sim's imports: no part imports the engine (only hetsim.simulation does), the parts
import each other without a cycle, and nothing above sim is imported — type-only imports
(``if TYPE_CHECKING:``) and imports inside functions included."""

import ast
from pathlib import Path

import hetsim

ROOT = Path(hetsim.__file__).parent
ABOVE_SIM = ("hetsim.metrics", "hetsim.planner", "hetsim.report", "hetsim.cli", "hetsim.simulation")


def in_sim(name: str) -> bool:
    return name == "hetsim.sim" or name.startswith("hetsim.sim.")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """Every hetsim module ``path`` imports, anywhere in the file (``from pkg import sub``
    counts as importing ``pkg.sub`` when ``sub`` is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
    return {name for name in found if name.startswith("hetsim")}


def test_only_the_public_api_imports_the_engine():
    importers = {name for name, path in MODULES.items() if "hetsim.sim.engine" in imported(path)}
    assert importers == {"hetsim.simulation"}


def test_sim_imports_nothing_above_it():
    for name, path in MODULES.items():
        if in_sim(name):
            above = {m for m in imported(path) if m.startswith(ABOVE_SIM)}
            assert not above, f"{name} imports {above}"


def test_sim_modules_import_each_other_without_a_cycle():
    graph = {
        name: {m for m in imported(path) if in_sim(m) and m in MODULES}
        for name, path in MODULES.items()
        if in_sim(name)
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for dep in graph[name]:
            # a package's __init__ re-exports its modules: importing a sibling through the
            # package is how Python loads it, not a cycle
            if not name.startswith(dep + "."):
                visit(dep)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)
