"""Sweeps as a user runs them: the summary, failures, launchers, Optuna, TensorBoard and compare.py."""

import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import REPO, run_cli

pytestmark = pytest.mark.slow


def _sweep_dir(cwd: Path) -> Path:
    (sweep_dir,) = (cwd / "outputs" / "multirun").iterdir()
    return sweep_dir


def _rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as file:
        return {row["overrides"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory):
    """One sweep with a job that trains, one that diverges, and two whose data cannot be read (the
    failure shows only when the job starts): two groups of jobs trained together."""
    cwd = tmp_path_factory.mktemp("mixed")
    (cwd / "good.csv").write_text("x,y\n" + "".join(f"{x},{2 * x + 1}\n" for x in range(10)))
    (cwd / "bad.csv").write_text("x,y\n1,3\n2,five\n")
    result = run_cli(
        "-m",
        "data=csv",
        "data.targets=[y]",
        "data.path=good.csv,bad.csv",
        "optim.lr=1e-3,1",
        "trainer.max_epochs=5",
        cwd=cwd,
    )
    return result, _sweep_dir(cwd)


def test_a_sweep_finishes_and_reports_every_job(mixed_sweep):
    result, sweep_dir = mixed_sweep
    assert result.returncode == 1, "a failed job must show in the exit status"
    assert "Training 4 jobs: 4 together in 2 groups, as 4 trajectories." in result.stdout
    rows = _rows(sweep_dir)
    # What all jobs share (trainer.max_epochs=5) is left out of the overrides column.
    ok, diverged, *failed = (
        rows[f"data.path={path},optim.lr={lr}"]
        for path, lr in [("good.csv", "0.001"), ("good.csv", "1")] + [("bad.csv", "0.001"), ("bad.csv", "1")]
    )
    assert (ok["status"], diverged["status"], failed[0]["status"], failed[1]["status"]) == (
        "ok",
        "diverged",
        "failed",
        "failed",
    )
    assert ok["best"] == "*" and not diverged["best"] and not failed[0]["best"]
    assert all("five" in row["error"] for row in failed)
    assert diverged["error"].startswith("diverged at epoch")
    assert float(ok["final_loss"]) > float(ok["optimal_loss"])
    assert list(rows)[:2] == [ok["overrides"], diverged["overrides"]]  # best first, failures last
    markdown = (sweep_dir / "summary.md").read_text()
    assert (
        markdown.startswith("## csv — 4 runs, best first\n")
        and markdown.count("\n") == 2 + 2 + 4
        and "| * |" in markdown
    )
    assert (sweep_dir / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "1 ok, 1 diverged, 2 failed" in result.stdout
    assert "* " in result.stdout and "optim.lr=0.001" in result.stdout  # the table, printed


@contextlib.contextmanager
def tensorboard_server(logdir: Path, runs: int):
    """A real TensorBoard serving `logdir`, once it lists `runs` runs: yields get(path, body=None) of its HTTP API."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
    server = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def get(path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if len(get("/data/runs")) == runs:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "TensorBoard did not come up"
            time.sleep(0.5)
        yield get
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_tensorboard_opens_on_the_loss_and_lists_every_setting_of_every_run(mixed_sweep, tmp_path):
    _, sweep_dir = mixed_sweep
    # Beside the sweep's two runs (sgd), one with another optimizer, whose options differ (adam).
    adam = run_cli("optim=adam", "model=scratch", "trainer.max_epochs=2", "hydra.run.dir=adam", cwd=tmp_path)
    assert adam.returncode == 0, adam.stderr
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "sweep").symlink_to(sweep_dir)
    (logdir / "adam").symlink_to(tmp_path / "adam")
    with tensorboard_server(logdir, runs=3) as get:
        runs = get("/data/runs")
        trained = [f"sweep/{p.name}" for p in sweep_dir.iterdir() if list(p.glob("events.out.tfevents.*"))]
        assert sorted(runs) == sorted([*trained, "adam"]) and len(trained) == 2  # the failed jobs never trained
        tags = get("/data/plugin/scalars/tags")
        for run in runs:
            weights = (
                {"weights/apples/temp", "weights/apples/bias"} if run == "adam" else {"weights/y/x", "weights/y/bias"}
            )
            assert {"train/full_loss", "train/loss", "train/optimal_loss", *weights} <= set(tags[run])
            assert not [tag for tag in tags[run] if tag.startswith(("final/", "bias/"))]  # no single dots
        # The groups of tags, as TensorBoard orders them, begin with the loss's; the weights come last.
        groups = sorted({tag.split("/")[0] for run in runs for tag in tags[run]})
        assert groups[0] == "train" and groups[-1] == "weights"
        # The CUSTOM SCALARS layout: first the loss beside the optimum, in one chart.
        layout = get("/data/plugin/custom_scalars/layout")
        first = layout["category"][0]
        assert first["title"] == "loss"
        assert first["chart"][0]["multiline"]["tag"] == ["^train/full_loss$", "^train/optimal_loss$"]
        # HPARAMS: every run has every column, with a value; numbers as numbers, choices as text.
        experiment = get("/data/plugin/hparams/experiment", {"experimentName": ""})
        columns = {h["name"]: h["type"] for h in experiment["hparamInfos"]}
        assert columns["lr"] == columns["momentum"] == columns["batch_size"] == "DATA_TYPE_FLOAT64"
        assert columns["optim"] == columns["options"] == "DATA_TYPE_STRING" and columns["shuffle"] == "DATA_TYPE_BOOL"
        assert {m["name"]["tag"] for m in experiment["metricInfos"]} == {
            "train/full_loss",
            "train/loss_ratio",
            "val/loss",
        }
        sessions = get(
            "/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN", "STATUS_FAILURE", "STATUS_RUNNING"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )["sessionGroups"]
        by_run = {group["sessions"][0]["name"]: group for group in sessions}
        assert set(by_run) == set(runs)
        for group in sessions:
            assert set(group["hparams"]) == set(columns)
            assert None not in group["hparams"].values() and "None" not in group["hparams"].values()
        assert by_run["adam"]["hparams"]["options"] == "betas=[0.9,0.999] eps=1e-08 weight_decay=0.0 amsgrad=false"
        (ok_run,) = [run for run in trained if "optim.lr=0.001" in run]
        assert by_run[ok_run]["name"].startswith(Path(ok_run).name)  # the Trial ID: what was set, first
        assert by_run[ok_run]["hparams"]["lr"] == pytest.approx(1e-3)
        summary = json.loads((sweep_dir / Path(ok_run).name / "summary.json").read_text())
        metrics = {m["name"]["tag"]: m["value"] for m in by_run[ok_run]["metricValues"]}
        assert metrics["train/full_loss"] == pytest.approx(summary["final_loss"], rel=1e-6)


def test_compare_reads_sweeps_and_single_runs_together(mixed_sweep, tmp_path):
    _, sweep_dir = mixed_sweep
    assert run_cli("optim.lr=1e-4", "trainer.max_epochs=50", cwd=tmp_path).returncode == 0
    out = tmp_path / "report"
    result = run_cli(str(sweep_dir), str(tmp_path / "outputs"), "--out", str(out), cwd=tmp_path, script="compare.py")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 5
    assert {row["status"] for row in rows} == {"ok", "diverged", "failed"}
    best = {row["data_set"]: row["overrides"] for row in rows if row["best"] == "*"}  # each data set's own
    assert best == {"crops": "optim.lr=1e-4,trainer.max_epochs=50", "csv": "optim.lr=0.001"}
    assert [row["data_set"] for row in rows if row["status"] == "failed"] == ["unknown data"] * 2
    assert (out / "loss_curves.png").is_file() and (out / "summary.md").is_file()
    assert "5 runs" in result.stdout


def test_compare_reports_jobs_that_left_no_or_a_broken_summary(mixed_sweep, tmp_path):
    _, sweep_dir = mixed_sweep
    import shutil

    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    ok_job, diverged_job = sorted(p for p in copy.iterdir() if list(p.glob("events.out.tfevents.*")))
    (ok_job / "summary.json").unlink()  # as if the job had been killed
    (diverged_job / "summary.json").write_text("{")  # as if cut off mid-write
    result = run_cli(str(copy), "--out", str(tmp_path), cwd=tmp_path, script="compare.py")
    assert result.returncode == 0, result.stderr
    errors = {row["status"] + ": " + row["error"] for row in csv.DictReader((tmp_path / "summary.csv").open())}
    assert any(e.startswith("failed: no summary.json") for e in errors)
    assert any(e.startswith("failed: unreadable summary.json") for e in errors)


def test_compare_explains_an_empty_or_missing_path(tmp_path):
    missing = run_cli(str(tmp_path / "nope"), cwd=tmp_path, script="compare.py")
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    empty = run_cli(str(tmp_path), cwd=tmp_path, script="compare.py")
    assert empty.returncode == 2 and "no runs" in empty.stderr


def test_each_job_is_seeded_at_its_start_in_its_own_folder(tmp_path):
    # Two jobs with the same overrides: each gets its own folder, and the second, seeded afresh,
    # does not continue the first one's random numbers, so both learn exactly the same.
    result = run_cli(
        "-m", "optim.lr=1e-5,1e-5", "data.shuffle=True", "data.batch_size=5", "trainer.max_epochs=2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(p for p in _sweep_dir(tmp_path).iterdir() if p.is_dir())
    assert [job.name for job in jobs] == ["0_optim.lr=1e-05", "1_optim.lr=1e-05"]  # what the jobs share left out
    first, second = (json.loads((job / "summary.json").read_text()) for job in jobs)
    assert first["weights"] == second["weights"]


def test_joblib_runs_jobs_in_parallel_with_limited_threads(tmp_path):
    result = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optim.lr=1e-6,1e-5",
        "trainer.max_epochs=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in _sweep_dir(tmp_path).glob("*/summary.json")]
    assert [s["status"] for s in summaries] == ["ok", "ok"]
    assert {s["threads"] for s in summaries} == {max(1, os.cpu_count() // 2)}
    assert len(_rows(_sweep_dir(tmp_path))) == 2


def test_submitit_local_runs_every_job(tmp_path):
    result = run_cli("-m", "hydra/launcher=submitit_local", "optim.lr=1e-6,1e-5", "trainer.max_epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {row["status"] for row in _rows(_sweep_dir(tmp_path)).values()} == {"ok"}
    assert len(_rows(_sweep_dir(tmp_path))) == 2


def test_optuna_search_writes_its_best_result(tmp_path):
    result = run_cli("experiment=search_lr", "hydra.sweeper.n_trials=4", "trainer.max_epochs=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep_dir = _sweep_dir(tmp_path)
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    finals = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert len(finals) == 4
    ok = [s for s in finals if s["status"] == "ok"]
    assert best["best_value"] == pytest.approx(min(s["final_loss"] for s in ok))
    assert 1e-7 <= best["best_params"]["optim.lr"] <= 1e-3


def test_the_tutorials_exercise_sweep_runs_nine_jobs(tmp_path):
    result = run_cli("experiment=sweep_lr_epochs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _rows(_sweep_dir(tmp_path))
    assert len(rows) == 9
    assert {(float(r["lr"]), int(r["epochs"])) for r in rows.values()} == {
        (lr, epochs) for lr in (1e-6, 1e-5, 1e-4) for epochs in (50, 100, 200)
    }
    assert (_sweep_dir(tmp_path) / "lr_curve.png").is_file()


def test_the_learning_rate_regimes_experiment_draws_its_curve(tmp_path):
    result = run_cli("experiment=lr_regimes", "trainer.max_epochs=20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _rows(_sweep_dir(tmp_path)).values()
    assert len(rows) == 11 and {row["status"] for row in rows} == {"ok", "diverged"}
    assert (_sweep_dir(tmp_path) / "lr_curve.png").is_file()


def test_ddp_is_refused_inside_a_multirun(make_cfg):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    from experiments.errors import UserError
    from experiments.training import train

    cfg = make_cfg("+trainer.strategy=ddp")
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN  # as in a job of `python train.py -m ...`
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(UserError, match="cannot run inside a multirun"):
        train(cfg)


def test_invalid_jobs_stop_the_sweep_before_any_job_trains(tmp_path):
    result = run_cli("-m", "optim.lr=1e-5,-1,abc,${nope}", "trainer.max_epochs=2", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Error: 3 of the 4 jobs to run are invalid, so none of them was run:"
    assert lines[1].startswith("  job 1 (optim.lr=-1 trainer.max_epochs=2): optim.lr must be a positive")
    assert lines[2] == "  job 2 (optim.lr=abc trainer.max_epochs=2): optim.lr must be a number; got 'abc'."
    assert lines[3].startswith("  job 3 (") and lines[3].endswith("Interpolation key 'nope' not found")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs" / "multirun").exists() or not any((tmp_path / "outputs" / "multirun").iterdir())


def test_an_optimizer_setting_torch_refuses_is_caught_before_training(tmp_path):
    result = run_cli("-m", "optim.momentum=0.5,-1", "trainer.max_epochs=2", cwd=tmp_path)
    assert result.returncode == 2
    assert "job 1 (optim.momentum=-1 trainer.max_epochs=2): optim: Invalid momentum value: -1" in result.stderr


def test_a_sweep_of_more_jobs_than_the_open_files_limit_trains_together(tmp_path):
    import resource

    lrs = ",".join(f"{1e-7 * (1 + i / 100):.6g}" for i in range(300))
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", f"optim.lr={lrs}", "trainer.max_epochs=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)),  # fewer than the jobs' files
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Training 300 jobs: 300 together in 1 group, as 300 trajectories." in result.stdout
    assert len(_rows(_sweep_dir(tmp_path))) == 300
