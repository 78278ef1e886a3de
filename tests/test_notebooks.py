"""Every notebook in notebooks/ runs top to bottom in quick mode and states its answer.

Quick mode (``HETSIM_QUICK=1``) shrinks each study's workloads and loosens its goodput grid so
the whole set runs in a couple of minutes; the committed notebooks hold the outputs of a full run.

Each notebook's answer is a code cell tagged ``answer`` that prints the answer's figures from
the notebook's own variables; the markdown cell tagged ``answer-text`` only refers to it. The
committed-output tests re-read the notebooks without running them: a figure typed into the
prose by hand, which a re-run would silently contradict, fails them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_MISSING = "{} is not installed (pip install -e '.[test]')"
nbformat = pytest.importorskip("nbformat", reason=_MISSING.format("nbformat"))
nbclient = pytest.importorskip("nbclient", reason=_MISSING.format("nbclient"))
pytest.importorskip("ipykernel", reason=_MISSING.format("ipykernel"))

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
ANSWER_TAG = "answer"
ANSWER_TEXT_TAG = "answer-text"
# a figure: digits not glued to a word before it (H200, 4P4D and Qwen3 are names), optionally
# with a unit or "x" after it; thousands separators are dropped before comparing
_FIGURE = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)[A-Za-z]*(?!\w)")
_CODE_SPAN = re.compile(r"`[^`]*`")  # file names and code, not figures
_LIST_MARKER = re.compile(r"^\s*\d+\.\s", re.MULTILINE)  # "1. " numbering a list item


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


def figures(text: str) -> set[str]:
    """The numbers written in a text, thousands separators removed ("1,000" -> "1000")."""
    return {re.sub(r",(?=\d{3})", "", m) for m in _FIGURE.findall(text)}


def _tagged(nb, tag: str) -> list:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def _printed(cell) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
    )


def answer_problems(nb) -> list[str]:
    """What is wrong with a notebook's committed answer; empty when nothing is."""
    code, prose = _tagged(nb, ANSWER_TAG), _tagged(nb, ANSWER_TEXT_TAG)
    if len(code) != 1 or code[0].cell_type != "code":
        return [f"want one code cell tagged {ANSWER_TAG!r}, found {len(code)}"]
    if len(prose) != 1 or prose[0].cell_type != "markdown":
        return [f"want one markdown cell tagged {ANSWER_TEXT_TAG!r}, found {len(prose)}"]
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is None:
            problems.append(f"code cell {i} was not executed")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"code cell {i}: {out.get('ename')}: {out.get('evalue')}")
            if "quick mode: True" in out.get("text", ""):
                problems.append(f"code cell {i} holds a quick-mode output")
    printed = _printed(code[0])
    if not printed.strip():
        problems.append("the answer cell printed nothing")
    text = _LIST_MARKER.sub(" ", _CODE_SPAN.sub(" ", prose[0].source))
    typed = figures(text) - figures(printed)
    if typed:
        problems.append(
            f"the answer text types figures its answer cell did not print: {sorted(typed)}"
        )
    return problems


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_committed_answer_is_computed(path: Path) -> None:
    problems = answer_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_figures_reads_numbers_not_names() -> None:
    text = "4P4D on H200: 3.14 req/s, 1,000 requests, 0.56x, 49% (Qwen3, FP8)"
    assert figures(text) == {"3.14", "1000", "0.56", "49"}


def test_a_typed_figure_fails() -> None:
    nb = nbformat.read(PATHS[0], as_version=4)
    assert not answer_problems(nb)
    _tagged(nb, ANSWER_TEXT_TAG)[0].source += "\n\nGoodput is 3.1416 requests/s."
    assert answer_problems(nb) == [
        "the answer text types figures its answer cell did not print: ['3.1416']"
    ]


def test_an_unexecuted_answer_fails() -> None:
    nb = nbformat.read(PATHS[0], as_version=4)
    cell = _tagged(nb, ANSWER_TAG)[0]
    cell.outputs, cell.execution_count = [], None
    index = nb.cells.index(cell)
    assert answer_problems(nb) == [
        f"code cell {index} was not executed",
        "the answer cell printed nothing",
    ]
