"""Every notebook in notebooks/ runs top to bottom in quick mode and states its answer.

Quick mode (``HETSIM_QUICK=1``) shrinks each study's workloads and loosens its goodput grid so
the whole set runs in a couple of minutes; the committed notebooks hold the outputs of a full run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_MISSING = "{} is not installed (pip install -e '.[test]')"
nbformat = pytest.importorskip("nbformat", reason=_MISSING.format("nbformat"))
nbclient = pytest.importorskip("nbclient", reason=_MISSING.format("nbclient"))
pytest.importorskip("ipykernel", reason=_MISSING.format("ipykernel"))

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def test_there_are_notebooks() -> None:
    assert PATHS, f"no notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_states_an_answer(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    answers = [c for c in nb.cells if c.cell_type == "markdown" and "Answer" in c.source]
    assert answers, f"{path.name} has no markdown cell with its Answer"
    assert all("PLACEHOLDER" not in c.source for c in answers), f"{path.name}: answer not written"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_in_quick_mode(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel inherits this process's environment when it starts
    monkeypatch.setenv("HETSIM_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
