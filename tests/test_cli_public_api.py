"""The CLI is a thin layer: it imports the public API only, and ``--help`` loads nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "hetsim" / "cli"
# layers whose internals the CLI reaches only through hetsim.* names
INTERNAL = ("hetsim.spec", "hetsim.sim", "hetsim.kv", "hetsim.planner", "hetsim.metrics",
            "hetsim.simulation")  # fmt: skip


def _imports(path: Path) -> set[tuple[str, str, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hetsim"):
            found |= {(path.name, node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {(path.name, a.name, "") for a in node.names if a.name.startswith("hetsim")}
    return found


def test_cli_imports_no_private_names_and_no_layer_internals() -> None:
    reaching = {
        (file, module, name)
        for path in sorted(CLI.glob("*.py"))
        for file, module, name in _imports(path)
        if name.startswith("_")
        or any(part.startswith("_") for part in module.split("."))
        or module.startswith(INTERNAL)
    }
    assert reaching == set()


def test_help_loads_neither_the_simulator_nor_dataframes() -> None:
    code = (
        "import sys\n"
        "from hetsim.cli import app\n"
        "heavy = ('simpy', 'pandas', 'numpy', 'matplotlib', 'hetsim.sim', 'hetsim.planner')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_package_runs_as_a_module() -> None:
    for module in ("hetsim", "hetsim.cli"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO
        )
        assert result.returncode == 0, result.stderr
        assert "simulate" in result.stdout and "trace" in result.stdout
