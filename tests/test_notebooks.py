"""Every notebook runs, and runs twice in one kernel (students re-run cells) without error; the cells marked
`# NBVAL_CHECK_OUTPUT` print on the first pass exactly what the committed notebook shows.

One execution does both: the output check is nbval's (`--nbval-lax` compares only the marked cells), done here on
the first pass instead of in a third execution of the notebook. `.ci/run` still runs nbval itself on notebooks
01-03 under ATen's default kernels."""

from collections import defaultdict
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CHECKED = "# NBVAL_CHECK_OUTPUT"
# what nbval leaves out of a comparison (its `skip_compare`, images included as without --nbdime)
SKIP = {"metadata", "traceback", "prompt_number", "output_type", "name", "execution_count", "image/png",
        "image/jpeg", "application/vnd.jupyter.widget-view+json"}


def compared(outputs: list) -> dict:
    """A cell's outputs as nbval compares them: streams of one name joined, then every remaining field and every
    MIME type of `data` (less `SKIP`) as a list of values in order."""
    merged, streams = [], {}
    for o in outputs:
        if o["output_type"] == "stream":
            if o["name"] in streams:
                streams[o["name"]]["text"] += o["text"]
                continue
            o = streams.setdefault(o["name"], dict(o))
        merged.append(o)
    fields = defaultdict(list)
    for o in merged:
        for key, value in o.items():
            if key == "data":
                for mime, content in value.items():
                    if mime not in SKIP:
                        fields[mime].append(content)
            elif key not in SKIP:
                fields[key].append(value)
    return dict(fields)


def test_compared_mirrors_nbval_on_planted_outputs():
    """Mutations caught: stream chunks compared one by one (a print split differently would fail), images
    compared (they differ by machine), or a changed number in a text output ignored."""
    a = [{"output_type": "stream", "name": "stdout", "text": "x = 1"}, {"output_type": "stream", "name": "stdout",
                                                                        "text": ".000\n"},
         {"output_type": "display_data", "data": {"text/plain": "<Figure>", "image/png": "AAA"}, "metadata": {}}]
    b = [{"output_type": "stream", "name": "stdout", "text": "x = 1.000\n"},
         {"output_type": "display_data", "data": {"text/plain": "<Figure>", "image/png": "BBB"}, "metadata": {"w": 1}}]
    assert compared(a) == compared(b)
    assert compared(a) != compared([{**b[0], "text": "x = 1.001\n"}, b[1]])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_twice_in_the_same_kernel(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    committed = [compared(c.get("outputs", [])) for c in code]
    nb.cells = code + [nbformat.from_dict(dict(c)) for c in code]  # every cell, then every cell again
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    for i, cell in enumerate(nb.cells[:len(code)]):  # the first pass, as nbval would have run it
        if CHECKED in (line.strip() for line in cell.source.splitlines()):
            assert compared(cell.outputs) == committed[i], f"{path.name}, code cell {i}: not the committed output"
