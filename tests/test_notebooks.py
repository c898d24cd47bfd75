"""The tutorial notebooks in notebooks/: committed clean, and each runs top to bottom in a real kernel."""

import os
import time

import nbformat
import pytest

from experiments import load_run
from helpers import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("tutorial_*.ipynb"))


def test_there_is_a_notebook_per_tutorial():
    assert [path.name for path in NOTEBOOKS] == [f"tutorial_00{n}.ipynb" for n in range(4)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebooks_are_committed_without_outputs_and_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "EPOCHS = None" in code[0].source


def _executed(path, tmp_path, epochs=2):
    """The notebook run top to bottom with EPOCHS = `epochs`, in a kernel whose working directory is tmp_path
    (so its runs go to tmp_path/outputs) and which imports this checkout's experiments package."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    parameters = next(cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source = f"EPOCHS = {epochs}"
    python_path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    # jupyter_client starts the python3 kernel with this interpreter; env is the kernel's whole environment, less
    # a backend chosen for the tests, so that plots are drawn inline as in a notebook a student opens
    env = {**os.environ, "PYTHONPATH": python_path}
    env.pop("MPLBACKEND", None)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError, naming the cell, if any cell fails
    return nb


def _outputs(nb, mime):
    """Every output of the executed notebook of one kind, as one string (text/plain also takes printed text)."""
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and mime == "text/plain":
                texts.append(output.text)
            elif mime in output.get("data", {}):
                texts.append(output.data[mime])
    return "\n".join(texts)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_each_notebook_runs_top_to_bottom_in_a_kernel(path, tmp_path):
    start = time.perf_counter()
    nb = _executed(path, tmp_path)
    print(f"{path.name} executed in {time.perf_counter() - start:.1f} s")

    html, text = _outputs(nb, "text/html"), _outputs(nb, "text/plain")
    assert "optimum" in html and "x optimal" in html  # each run's result, against the least-squares optimum
    assert "<table" in html and "final_loss" in html  # the sweep's table
    plots = [cell for cell in nb.cells if cell.cell_type == "code" and ".plot(" in cell.source]
    assert all(any("image/png" in output.get("data", {}) for output in cell.outputs) for cell in plots)
    assert _outputs(nb, "image/png").count("iVBOR") >= 4  # each run's curve, the sweep's picture, the plots
    runs = [load_run(folder) for folder in (tmp_path / "outputs" / "runs").iterdir()]
    assert [run.summary["epochs"] for run in runs] == [2, 2]  # the runs went where the kernel was, with EPOCHS
    assert len(list((tmp_path / "outputs" / "multirun").iterdir())) == 1
    if path.stem == "tutorial_002":  # mangoes in the run's report and in the prediction's columns
        assert "mangoes = " in text and "<th>mangoes</th>" in html and "apples" not in text + html
    elif path.stem == "tutorial_003":
        assert "<th>y</th>" in html
    else:
        assert "apples = " in text and "<th>apples</th>" in html and "mangoes" not in text + html
