"""Stopping is always safe: a signal at each named moment of a run (`experiments.stopping.moment`),
delivered there deterministically, ends it with the signal's exit status, whole files, and the run
recorded as far as it got; `resume=` continues it to the numbers of a run never stopped."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from experiments import stopping
from experiments.config import compose_run
from experiments.events import read_scalar_series
from experiments.runs import read_history
from experiments.training import train
from helpers import REPO, read_scalars, run_cli

SIGNALS = [signal.SIGINT, signal.SIGTERM]
# Mini-batches, shuffled, with momentum: the state a resumed run needs is more than its weights.
STATEFUL = ("data=synthetic", "data.n=200", "data.num_features=3", "data.batch_size=32", "optim.momentum=0.9")


@pytest.fixture
def stop_at(monkeypatch):
    """Deliver `signum` to this process at the `count`-th time the code reaches `moment`."""
    stopping.install()

    def plan(moment: str, signum: int, count: int = 1) -> None:
        monkeypatch.setattr(stopping, "_PLAN", {moment: (count, int(signum))})
        monkeypatch.setattr(stopping, "_seen", {})

    return plan


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def landscape_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "landscape.json").read_text())


def assert_whole(folder: Path) -> None:
    """Every file is complete: no temporary file left, no empty file, every summary and checkpoint readable."""
    for path in folder.rglob("*"):
        assert ".partial" not in path.name, path
        if path.is_file():
            assert path.stat().st_size > 0, path
    for path in folder.rglob("summary.json"):
        json.loads(path.read_text())
    for path in folder.rglob("last.ckpt"):
        torch.load(path, weights_only=True)


def resume_cfg(run_dir: Path, *overrides: str):
    """The config of `python train.py resume=RUN_DIR ...`, in process."""
    return compose_run(["accelerator=cpu", *overrides, f"resume={run_dir}"], run_dir)


def logged_steps(run_dir: Path) -> list[int]:
    return [step for step, _ in read_scalars(run_dir)["train/full_loss"]]


def has_hparams(run_dir: Path) -> bool:
    return any(b"_hparams_/session_start_info" in path.read_bytes() for path in run_dir.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_mid_epoch_stops_the_run_at_the_end_of_that_epoch(make_cfg, stop_at, signum):
    stop_at("step", signum, count=5)  # after the mini-batches of epoch 5 (one Lightning batch an epoch), before its end
    cfg = make_cfg(*STATEFUL, "trainer.max_epochs=50")
    with pytest.raises(stopping.Stopped) as stopped:
        train(cfg)
    assert stopped.value.exit_status == 128 + signum
    run_dir = Path(cfg.output_dir)
    summary = summary_of(run_dir)
    assert summary["status"] == "interrupted" and summary["epochs"] == 5
    assert logged_steps(run_dir) == list(range(6))
    assert has_hparams(run_dir)  # in TensorBoard's HPARAMS tab with the others
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["EpochRecorder"][
        "losses"
    ] == pytest.approx([loss for _, loss in read_scalars(run_dir)["train/full_loss"]], rel=1e-6)
    assert_whole(run_dir)


def test_a_signal_as_training_starts_records_the_first_epoch(make_cfg, stop_at):
    stop_at("fit_start", signal.SIGINT)
    cfg = make_cfg("trainer.max_epochs=50")
    with pytest.raises(stopping.Stopped):
        train(cfg)
    summary = summary_of(Path(cfg.output_dir))
    assert summary["status"] == "interrupted" and summary["epochs"] == 1
    assert_whole(Path(cfg.output_dir))


@pytest.mark.parametrize("moment", ["fit_picture", "write/last.ckpt", "write/summary.json", "summary_written"])
def test_a_signal_after_the_last_epoch_leaves_a_finished_run_whole(make_cfg, stop_at, moment):
    stop_at(moment, signal.SIGTERM)
    cfg = make_cfg("trainer.max_epochs=4", "fit_picture=true")
    with pytest.raises(stopping.Stopped) as stopped:
        train(cfg)
    assert stopped.value.exit_status == 143
    run_dir = Path(cfg.output_dir)
    assert summary_of(run_dir)["status"] == "ok" and summary_of(run_dir)["epochs"] == 4  # all its epochs trained
    assert logged_steps(run_dir) == list(range(5)) and has_hparams(run_dir)
    assert_whole(run_dir)


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint_whole(make_cfg, stop_at, monkeypatch):
    monkeypatch.setattr(stopping, "_PLAN", {"step": (3, signal.SIGINT)})
    stopping.install()
    cfg = make_cfg(*STATEFUL, "trainer.max_epochs=50", "checkpoint_minutes=1e-9")  # a checkpoint every epoch

    original = stopping.moment

    def twice(name: str) -> None:  # the second Ctrl-C right after the first
        original(name)
        if name == "step" and stopping.requested():
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(stopping, "moment", twice)
    with pytest.raises(stopping.Stopped):
        train(cfg)
    run_dir = Path(cfg.output_dir)
    assert summary_of(run_dir)["status"] == "interrupted"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(checkpoint["callbacks"]["EpochRecorder"]["losses"]) - 1 == 2  # saved after epoch 2, not mid-epoch 3
    assert_whole(run_dir)


@pytest.mark.parametrize("precision", ["32", "64"])
def test_a_resumed_run_ends_where_the_run_never_stopped_ends(make_cfg, stop_at, precision):
    settings = (*STATEFUL, "trainer.max_epochs=8", f"trainer.precision={precision}")
    whole = make_cfg(*settings)
    expected = train(whole)

    stop_at("epoch_end", signal.SIGTERM, count=3)
    stopped = make_cfg(*settings)
    with pytest.raises(stopping.Stopped):
        train(stopped)
    stopping.reset()
    run_dir = Path(stopped.output_dir)
    resumed = train(resume_cfg(run_dir, *settings))
    assert resumed["weights"] == expected["weights"] and resumed["bias"] == expected["bias"]  # bit for bit
    assert resumed["final_loss"] == expected["final_loss"] and resumed["steps"] == expected["steps"]
    assert resumed["status"] == "ok" and resumed["epochs"] == 8
    assert read_scalars(run_dir)["train/full_loss"] == read_scalars(Path(whole.output_dir))["train/full_loss"]
    assert summary_of(run_dir)["final_loss"] == expected["final_loss"] and summary_of(run_dir)["epochs"] == 8
    assert landscape_of(run_dir) == landscape_of(Path(whole.output_dir))  # the path on the loss surface goes on
    assert read_history(run_dir).rows == read_history(Path(whole.output_dir)).rows  # history.csv too


def test_a_run_resumed_after_a_crash_writes_no_epoch_twice(make_cfg, monkeypatch):
    """`kill -9` after a checkpoint: TensorBoard holds epochs the checkpoint has not seen; resuming drops them."""
    expected = train(make_cfg(*STATEFUL, "trainer.max_epochs=6"))
    from experiments.callbacks import EpochRecorder

    record = EpochRecorder._record

    def crash_after_epoch_4(self, trainer, module, epoch):
        record(self, trainer, module, epoch)
        if epoch == 4 and not getattr(self, "_resumed", None):
            raise MemoryError("killed")  # not a signal: nothing is recorded after it

    monkeypatch.setattr(EpochRecorder, "_record", crash_after_epoch_4)
    crashed = make_cfg(*STATEFUL, "trainer.max_epochs=6", "checkpoint_minutes=1e-9")
    with pytest.raises(MemoryError):
        train(crashed)
    run_dir = Path(crashed.output_dir)
    assert logged_steps(run_dir) == list(range(5)) and not (run_dir / "summary.json").exists()
    monkeypatch.setattr(EpochRecorder, "_record", record)
    resumed = train(resume_cfg(run_dir, *STATEFUL, "trainer.max_epochs=6"))
    assert resumed["weights"] == expected["weights"]
    assert logged_steps(run_dir) == list(range(7))
    assert list(read_history(run_dir).rows) == list(range(7))


def test_max_epochs_extends_a_finished_run(make_cfg):
    first = make_cfg("trainer.max_epochs=3")
    train(first)
    longer = train(resume_cfg(Path(first.output_dir), "trainer.max_epochs=5"))
    assert longer["epochs"] == 5 and longer["status"] == "ok"
    assert logged_steps(Path(first.output_dir)) == list(range(6))
    assert longer["final_loss"] == train(make_cfg("trainer.max_epochs=5"))["final_loss"]


def test_resume_refuses_what_it_cannot_continue(make_cfg, tmp_path):
    from experiments.errors import UserError
    from experiments.resume import resume_arguments

    finished = make_cfg("trainer.max_epochs=2")
    train(finished)
    with pytest.raises(UserError, match="already trained 2 epochs; give trainer.max_epochs=N"):
        train(resume_cfg(Path(finished.output_dir), "trainer.max_epochs=2"))
    with pytest.raises(UserError, match="there is no run or sweep there"):
        resume_arguments([f"resume={tmp_path / 'nothing'}"])
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- optim.lr=0.1\n- trainer.max_epochs=5\n")
    with pytest.raises(UserError, match="optim.lr=0.2 cannot change; only trainer.max_epochs"):
        resume_arguments([f"resume={run}", "optim.lr=0.2"])
    assert resume_arguments([f"resume={run}", "trainer.max_epochs=9"]) == [
        "optim.lr=0.1",
        "trainer.max_epochs=9",
        f"hydra.run.dir='{run}'",
        f"resume='{run}'",
    ]
    (run / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {tmp_path / 'elsewhere'}\n")
    (run / ".hydra" / "overrides.yaml").write_text("- data=csv\n- data.path=houses.csv\n")
    with pytest.raises(UserError, match=r"reads data.path=houses.csv from there; run the command in .*elsewhere"):
        resume_arguments([f"resume={run}"])
    (run / ".hydra" / "overrides.yaml").write_text("{not: [a list")
    with pytest.raises(UserError, match="cannot read"):
        resume_arguments([f"resume={run}"])
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  sweeper: {_target_: x.BatchedSweeper}\n  overrides: {task: ['optim.lr=0.1,0.2'], hydra: []}\n"
    )
    with pytest.raises(UserError, match="trainer.max_epochs=9 cannot change; only the launcher"):
        resume_arguments([f"resume={sweep}", "trainer.max_epochs=9"])
    assert resume_arguments([f"resume={sweep}", "hydra/launcher=basic"]) == [
        "-m",
        "optim.lr=0.1,0.2",
        "hydra/launcher=basic",
        f"hydra.sweep.dir='{sweep}'",
        f"resume='{sweep}'",
    ]


# The command line: exit statuses, no traceback, a sweep's summary, workers that stop with it.


def run_stopped(*args: str, cwd: Path, at: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXPERIMENTS_SIGNAL_AT": at}
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_signal_during_start_up_ends_the_command_without_a_trace(tmp_path):
    result = run_stopped("hydra.run.dir=run", cwd=tmp_path, at="startup=SIGINT")
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()  # nothing half-made is left


def test_a_stopped_run_says_how_to_continue_it_and_continues(tmp_path):
    result = run_stopped("hydra.run.dir=run", "trainer.max_epochs=9", cwd=tmp_path, at="epoch_end:4=SIGTERM")
    assert result.returncode == 143 and "Traceback" not in result.stderr, result.stderr
    assert "Interrupted after 4 epochs" in result.stdout and "continue:   python train.py resume=run" in result.stdout
    recorded = (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text()
    refused = run_cli("resume=run", "trainer.max_epochs=3", cwd=tmp_path)
    assert refused.returncode == 2 and "has already trained 4 epochs" in refused.stderr, refused.stderr
    assert (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text() == recorded  # refused before Hydra wrote
    resumed = run_cli("resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert summary_of(tmp_path / "run")["epochs"] == 9 and logged_steps(tmp_path / "run") == list(range(10))


def test_a_sweep_stopped_between_jobs_summarizes_them_and_resumes(tmp_path):
    args = ("-m", "hydra/launcher=basic", "optim.lr=1e-5,2e-5,3e-5", "trainer.max_epochs=3", "hydra.sweep.dir=sweep")
    result = run_stopped(*args, cwd=tmp_path, at="job_end:2=SIGTERM")
    assert result.returncode == 143 and "Traceback" not in result.stderr, result.stderr
    assert "2 ok" in result.stdout and "1 of the 3 jobs did not run: #2 optim.lr=3e-05" in result.stdout
    sweep = tmp_path / "sweep"
    assert (sweep / "summary.csv").is_file()
    first_job = next(sweep.glob("0_*"))
    written = {path: path.stat().st_mtime_ns for path in first_job.rglob("*")}

    resumed = run_cli("resume=sweep", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 ok" in resumed.stdout
    assert {path: path.stat().st_mtime_ns for path in first_job.rglob("*")} == written  # finished jobs untouched


def test_a_batched_sweep_stopped_mid_training_resumes_its_interrupted_jobs(tmp_path):
    args = ("-m", "optim.lr=1e-5,2e-5", "trainer.max_epochs=2,6", "hydra.sweep.dir=sweep")
    # A second Ctrl-C while the stopped sweep writes its summary: the summary is still written whole.
    result = run_stopped(*args, cwd=tmp_path, at="epoch_end:3=SIGINT,write/summary.csv=SIGINT")
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert (tmp_path / "sweep" / "summary.md").is_file() and (tmp_path / "sweep" / "loss_curves.png").is_file()
    statuses = {
        path.parent.name: summary_of(path.parent)["status"] for path in (tmp_path / "sweep").glob("*/summary.json")
    }
    assert sorted(statuses.values()) == ["interrupted", "interrupted", "ok", "ok"]
    assert_whole(tmp_path / "sweep")
    resumed = run_cli("resume=sweep", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for name in statuses:
        summary = summary_of(tmp_path / "sweep" / name)
        assert summary["status"] == "ok" and summary["epochs"] == summary["max_epochs"]
        assert logged_steps(tmp_path / "sweep" / name) == list(range(summary["max_epochs"] + 1))


def test_joblib_workers_stop_with_their_parent_and_record_their_jobs(tmp_path):
    args = ("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim.lr=1e-5,2e-5,3e-5")
    command = [sys.executable, str(REPO / "train.py"), *args, "trainer.max_epochs=100000000", "hydra.sweep.dir=sweep"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Both workers have trained: each job folder holds epochs in its TensorBoard file.
    while len([path for path in (tmp_path / "sweep").glob("*/events.*") if read_scalar_series(path, "train/loss")]) < 2:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)  # polls for a condition; leaves the two cores to the workers
    workers = {int(path.name.split(".")[-2]) for path in (tmp_path / "sweep").glob("*/events.*")}
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and "Traceback" not in stderr, stderr
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # none outlives its parent
    jobs = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert [summary_of(path.parent)["status"] for path in jobs] == ["interrupted", "interrupted"]
    assert "1 of the 3 jobs did not run" in stdout
    assert_whole(tmp_path / "sweep")


def test_a_slurm_job_warned_of_its_time_limit_is_requeued_and_continues(make_cfg, tmp_path):
    """submitit's local executor stands in for Slurm: SIGUSR2 (what submitit has Slurm send before a
    job's time limit) stops the job at the end of its epoch, submitit requeues it, and it continues."""
    args = ("-m", "hydra/launcher=submitit_local", "optim.lr=1e-5", "trainer.max_epochs=5", "hydra.sweep.dir=sweep")
    result = run_stopped(*args, cwd=tmp_path, at="epoch_end:3=SIGUSR2")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    job = tmp_path / "sweep" / "0"
    attempts = sorted(
        [step for step, _ in read_scalar_series(path, "train/full_loss")] for path in job.glob("events.*")
    )
    assert attempts == [[0, 1, 2, 3], [4, 5]]  # two processes, no epoch twice
    assert summary_of(job)["weights"] == train(make_cfg("optim.lr=1e-5", "trainer.max_epochs=5"))["weights"]
