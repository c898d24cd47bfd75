"""The Python API: the command line's runs, sweeps and mistakes from Python, written and read alike."""

import csv
import logging
import subprocess
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

from experiments import ExperimentError, compare, load_run, sweep, train
from helpers import REPO, run_cli

SMALL = ("trainer.max_epochs=3",)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs are written under outputs/ of the current directory


@pytest.mark.slow
def test_a_run_made_from_python_is_read_by_predict_py_and_compare_py(tmp_path):
    run = train("data.standardize=true", "optim=lbfgs", "trainer.max_epochs=3", "trainer.precision=64")
    overrides = "data.standardize=true,optim=lbfgs,trainer.max_epochs=3,trainer.precision=64"
    (folder,) = (tmp_path / "outputs" / "runs").iterdir()
    assert run.path == folder and folder.name.endswith(f"_{overrides}")
    assert sorted(p.name for p in (folder / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert run.summary["epochs"] == 3 and run.history.index.name == "epoch"
    assert list(run.history.index) == [0, 1, 2, 3]
    assert run.history["train/full_loss"].iloc[-1] == run.summary["final_loss"]

    predicted = run.predict([[75, 63, 44], [1, 2, 3]])
    cli = run_cli(f"run={folder}", "inputs=[[75,63,44],[1,2,3]]", "output=preds.csv", cwd=tmp_path, script="predict.py")
    assert cli.returncode == 0, cli.stderr
    with open(tmp_path / "preds.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == list(predicted.columns) == ["temp", "rainfall", "humidity", "apples", "oranges"]
    assert [[float(v) for v in row] for row in rows[1:]] == predicted.values.tolist()

    compared = run_cli("outputs", "--out", "compared", cwd=tmp_path, script="compare.py")
    assert compared.returncode == 0, compared.stderr
    with open(tmp_path / "compared" / "summary.csv", newline="") as file:
        (row,) = csv.DictReader(file)
    assert (row["overrides"], row["path"]) == (overrides, str(folder))


def test_two_trains_in_one_process_are_independent_and_reproducible():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    overrides = ("model=scratch", "data.batch_size=5", "data.shuffle=true", *SMALL)
    first, second = train(*overrides), train(*overrides)
    assert first.path != second.path
    assert first.summary["final_loss"] == second.summary["final_loss"]  # bit for bit
    assert first.history.equals(second.history)
    assert not GlobalHydra.instance().is_initialized()
    assert (root.level, root.handlers) == (level, handlers)  # Hydra's logging setup does not outlive the run


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [("optim.lr=abc",), ("seed=abc",), ("optim=sdg",), ("-m", "optim.lr=0,1e-5")],
    ids=["a number", "a whole number", "a config group option", "a sweep's job"],
)
def test_a_mistake_raises_what_the_command_line_prints(overrides, tmp_path):
    launch = sweep if overrides[0] == "-m" else train
    with pytest.raises(ExperimentError) as raised:
        launch(*[o for o in overrides if o != "-m"])
    cli = run_cli(*overrides, cwd=tmp_path)
    if cli.returncode == 2:  # the command line's own one line
        assert cli.stderr == f"Error: {raised.value}\n"
    else:  # Hydra's message, which the command line leaves to Hydra
        assert cli.stderr.startswith(f"{raised.value}\n\nSet the environment variable HYDRA_FULL_ERROR=1")
    assert not any((tmp_path / "outputs").glob("*/*"))  # neither wrote a run


def test_a_sweep_returns_its_table_and_its_runs_in_job_order(tmp_path):
    swept = sweep("optim.lr=1e-6,1e-5", "trainer.max_epochs=2,3")
    assert swept.path.parent == tmp_path / "outputs" / "multirun"
    assert len(swept.table) == 4 and set(swept.table["status"]) == {"ok"}
    jobs = [(run.summary["lr"], run.summary["epochs"]) for run in swept.runs]
    assert jobs == [(1e-6, 2), (1e-6, 3), (1e-5, 2), (1e-5, 3)]
    assert set(swept.table["path"]) == {str(run.path) for run in swept.runs}
    assert "4 runs: 4 ok" in swept._repr_html_() and swept._repr_png_().startswith(b"\x89PNG")

    compared = compare(swept.path, "optim.lr=1e-5", out="compared")
    assert compared.path == tmp_path / "compared" and list(compared.table["lr"]) == [1e-5, 1e-5]


@pytest.mark.slow
def test_load_run_reads_a_run_the_command_line_made(tmp_path):
    assert run_cli("trainer.max_epochs=2", cwd=tmp_path).returncode == 0
    (folder,) = (tmp_path / "outputs" / "runs").iterdir()
    run = load_run(folder)
    assert run.overrides == "trainer.max_epochs=2" and run.summary["epochs"] == 2
    assert list(run.history.index) == [0, 1, 2] and "weights/apples/temp" in run.history.columns
    assert "ok after 2 epochs" in run._repr_html_() and run._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ExperimentError, match="is not a run folder"):
        load_run(tmp_path)


@pytest.mark.slow
def test_a_diverged_run_refuses_to_predict(tmp_path):
    run = train("optim.lr=1e-2", *SMALL)
    assert run.summary["status"] == "diverged"
    with pytest.raises(ExperimentError, match=r"diverged at epoch \d+: its weights fit nothing") as raised:
        run.predict([[75, 63, 44]])
    cli = run_cli(f"run={run.path}", "inputs=[[75,63,44]]", cwd=tmp_path, script="predict.py")
    assert (cli.returncode, cli.stderr) == (2, f"Error: {raised.value}\n")


@pytest.mark.slow
def test_importing_the_package_loads_nothing_heavy_and_its_names_stay_the_apis():
    heavy = ("torch", "hydra", "pandas", "lightning", "matplotlib")
    code = (
        f"import sys, experiments; print([m for m in {heavy!r} if m in sys.modules]); "
        "import experiments.comparison, experiments.sweeps; from experiments import compare, sweep; "
        "print(callable(compare), callable(sweep))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert loaded.stdout.split("\n")[:2] == ["[]", "True True"]
