"""Layers depend only downward (DESIGN.md): units ← spec ← perf ← kv ← checks ← sim ← metrics ←
planner ← report ← cli, with ``workload`` beside spec, feeding sim. Every import counts — at module
top, inside a function, under ``TYPE_CHECKING`` — because each is a dependency someone must
understand before changing the module it points at."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hetsim"

#: rank of each top-level module or package of hetsim; a module may import only ranks <= its own
LAYERS: dict[str, float] = {
    "errors": 0,
    "units": 0,
    "_version": 0,
    "outputs": 0.5,  # writes a run's files into a folder atomically; needs only errors
    "spec": 1,
    "workload": 1.5,  # beside spec: reads spec's workload models, feeds sim
    "perf": 2,
    "kv": 3,
    "checks": 4,
    "sim": 5,
    "metrics": 6,
    "simulation": 6.5,  # the API's simulate(): runs sim, summarises with metrics
    "lifecycles": 6.6,  # the API's compare_lifecycles(): runs simulate per protocol
    "planner": 7,
    "validation": 7.5,  # predicted vs measured end to end: a client of simulate()
    "report": 8,
    "cli": 9,
    "__main__": 9,
}
#: ``import hetsim`` / ``from hetsim import x`` (not a submodule): the public API, which re-exports
#: every layer; only the CLI stands above it (it is a client of that API)
FACADE = 8.5


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _rank(module: str) -> float | None:
    """The layer of a hetsim module (None: not hetsim's; KeyError: a module with no layer)."""
    parts = module.split(".")
    if parts[0] != "hetsim":
        return None
    return FACADE if len(parts) == 1 else LAYERS[parts[1]]


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = module.split(".")
        package = package if is_package else package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    if base != "hetsim":
        return [base]
    # `from hetsim import units` is the submodule; `from hetsim import simulate` the facade
    return [f"hetsim.{a.name}" if a.name in LAYERS else "hetsim" for a in node.names]


def _imports() -> list[tuple[str, int, str]]:
    """(importing module, line, imported module) for every hetsim import in the package, the
    facade ``hetsim/__init__.py`` excepted (it re-exports every layer on purpose)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        if module == "hetsim":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _targets(node, module, path.name == "__init__.py"):
                out.append((module, getattr(node, "lineno", 0), target))
    return out


def _violations() -> list[tuple[str, int, str]]:
    return [
        (module, line, target)
        for module, line, target in _imports()
        if (rank := _rank(target)) is not None and rank > _rank(module)
    ]


def test_every_module_has_a_layer():
    tops = {_module(p).split(".")[1] for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}
    unranked = sorted(tops - set(LAYERS))
    assert not unranked, f"add these to LAYERS in {__file__}: {unranked}"


def test_no_module_imports_a_layer_above_its_own():
    found = _violations()
    assert not found, "imports against the layering:\n" + "\n".join(
        f"  {m} (line {line}) imports {t}" for m, line, t in found
    )
