"""Sweeps as a user runs them: the summary, failures, launchers, Optuna, TensorBoard and compare.py."""

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

from conftest import REPO, read_scalars, run_cli
from experiments.train import _record_failure

pytestmark = pytest.mark.slow


def _sweep_dir(cwd: Path) -> Path:
    (sweep_dir,) = (cwd / "outputs" / "multirun").iterdir()
    return sweep_dir


def _rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as file:
        return {row["overrides"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory):
    """One sweep with a job that trains, one that diverges and one with a bad value."""
    cwd = tmp_path_factory.mktemp("mixed")
    result = run_cli("-m", "optim.lr=1e-5,1e-2,0", "trainer.max_epochs=5", cwd=cwd)
    return result, _sweep_dir(cwd)


def test_a_sweep_finishes_and_reports_every_job(mixed_sweep):
    result, sweep_dir = mixed_sweep
    assert result.returncode == 1, "a failed job must show in the exit status"
    rows = _rows(sweep_dir)
    # What all jobs share (trainer.max_epochs=5) is left out of the overrides column.
    ok, diverged, failed = (rows[f"optim.lr={lr}"] for lr in ("1e-05", "0.01", "0"))
    assert (ok["status"], diverged["status"], failed["status"]) == ("ok", "diverged", "failed")
    assert ok["best"] == "*" and not diverged["best"] and not failed["best"]
    assert "optim.lr must be a positive" in failed["error"]
    assert diverged["error"].startswith("diverged at epoch")
    assert float(ok["final_loss"]) > float(ok["optimal_loss"])
    assert list(rows) == [ok["overrides"], diverged["overrides"], failed["overrides"]]  # best first
    markdown = (sweep_dir / "summary.md").read_text()
    assert markdown.count("\n") == 2 + 3 and "| * |" in markdown
    assert (sweep_dir / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "1 ok, 1 diverged, 1 failed" in result.stdout
    assert "* " in result.stdout and "optim.lr=1e-05" in result.stdout  # the table, printed


def test_tensorboard_serves_one_run_per_job_with_hparams(mixed_sweep):
    _, sweep_dir = mixed_sweep
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep_dir),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
                runs = get("/data/runs")
                if len(runs) == 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "TensorBoard did not come up"
            time.sleep(0.5)
        assert sorted(runs) == ["optim.lr=0.01,trainer.max_epochs=5", "optim.lr=1e-05,trainer.max_epochs=5"]
        tags = get("/data/plugin/scalars/tags")
        for run in runs:
            assert {"train/full_loss", "train/loss", "train/optimal_loss", "final/loss",
                    "weights/apples/temp"} <= set(tags[run])
        experiment = get("/data/plugin/hparams/experiment", {"experimentName": ""})
        assert {"data", "model", "optim", "lr", "batch_size", "max_epochs", "seed"} <= {
            h["name"] for h in experiment["hparamInfos"]}
        assert {m["name"]["tag"] for m in experiment["metricInfos"]} == {"final/loss", "final/loss_ratio"}
        groups = get("/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN", "STATUS_FAILURE",
                                                      "STATUS_RUNNING"],
            "colParams": [], "startIndex": 0, "sliceSize": 100})["sessionGroups"]
        by_run = {g["name"]: g for g in groups}
        assert set(by_run) == set(runs)
        assert by_run["optim.lr=1e-05,trainer.max_epochs=5"]["hparams"]["lr"] == pytest.approx(1e-5)
        summary = json.loads((sweep_dir / "optim.lr=1e-05,trainer.max_epochs=5" / "summary.json").read_text())
        metrics = {m["name"]["tag"]: m["value"] for m in by_run["optim.lr=1e-05,trainer.max_epochs=5"]["metricValues"]}
        assert metrics["final/loss"] == pytest.approx(summary["final_loss"], rel=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_compare_reads_sweeps_and_single_runs_together(mixed_sweep, tmp_path):
    _, sweep_dir = mixed_sweep
    assert run_cli("data=toy", "trainer.max_epochs=3", cwd=tmp_path).returncode == 0
    out = tmp_path / "report"
    result = run_cli(str(sweep_dir), str(tmp_path / "outputs"), "--out", str(out), cwd=tmp_path,
                     script="compare.py")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 4
    assert {row["status"] for row in rows} == {"ok", "diverged", "failed"}
    toy = next(row for row in rows if row["overrides"] == "data=toy,trainer.max_epochs=3")
    assert toy["best"] == "*"  # the toy set's loss is far below the crops'
    assert (out / "loss_curves.png").is_file() and (out / "summary.md").is_file()
    assert "4 runs" in result.stdout


def test_compare_explains_an_empty_or_missing_path(tmp_path):
    missing = run_cli(str(tmp_path / "nope"), cwd=tmp_path, script="compare.py")
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    empty = run_cli(str(tmp_path), cwd=tmp_path, script="compare.py")
    assert empty.returncode == 2 and "no runs" in empty.stderr


def test_each_job_is_seeded_at_its_start(tmp_path):
    # Both jobs build the same model from the same seed; the second must not continue the first's RNG.
    result = run_cli("-m", "optim=sgd,gd", "trainer.max_epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = (read_scalars(job) for job in sorted(p for p in _sweep_dir(tmp_path).iterdir() if p.is_dir()))
    assert first["weights/apples/temp"][0] == second["weights/apples/temp"][0]


def test_joblib_runs_jobs_in_parallel_with_limited_threads(tmp_path):
    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim.lr=1e-6,1e-5",
                     "trainer.max_epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in _sweep_dir(tmp_path).glob("*/summary.json")]
    assert [s["status"] for s in summaries] == ["ok", "ok"]
    assert {s["threads"] for s in summaries} == {max(1, os.cpu_count() // 2)}
    assert len(_rows(_sweep_dir(tmp_path))) == 2


def test_submitit_local_runs_every_job(tmp_path):
    result = run_cli("-m", "hydra/launcher=submitit_local", "optim.lr=1e-6,1e-5", "trainer.max_epochs=2",
                     cwd=tmp_path)
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
        (lr, epochs) for lr in (1e-6, 1e-5, 1e-4) for epochs in (50, 100, 200)}


def test_ddp_is_refused_inside_a_multirun(tmp_path):
    result = run_cli("-m", "+trainer.strategy=ddp", "trainer.max_epochs=1", cwd=tmp_path)
    assert result.returncode == 1
    (row,) = _rows(_sweep_dir(tmp_path)).values()
    assert row["status"] == "failed" and "cannot run inside a multirun" in row["error"]


def test_an_unexpected_exception_is_recorded_with_its_traceback(make_cfg):
    cfg = make_cfg("optim.lr=1e-3")
    try:
        raise RuntimeError("out of memory")
    except RuntimeError as error:
        _record_failure(cfg, Path(cfg.output_dir), error)
    summary = json.loads((Path(cfg.output_dir) / "summary.json").read_text())
    assert summary == {"status": "failed", "error": "RuntimeError: out of memory", "lr": 1e-3, "max_epochs": 100,
                       "seed": 42}
    assert "raise RuntimeError" in (Path(cfg.output_dir) / "error.txt").read_text()
