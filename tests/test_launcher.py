"""The batched launcher: Hydra's own launcher tests, and each kind of sweep trained together
against the same sweep run job by job with `hydra/launcher=basic`."""

import contextlib
import json
import math
from pathlib import Path

import hydra.version
import pytest
import torch
import yaml
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, LauncherTestSuite
from hydra.version import VersionBase
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from experiments import stopping
from experiments.runs import read_history
from helpers import REPO, read_scalars


@pytest.fixture(autouse=True)
def hydra_without_a_version_base(hydra_restore_singletons):
    """Hydra's suites expect the defaults of an app that names no version_base; other tests set 1.3."""
    VersionBase.instance().version_base = hydra.version._UNSPECIFIED_


@pytest.mark.parametrize("launcher_name, overrides", [("batched", [])])
class TestBatchedLauncher(LauncherTestSuite):
    """Hydra's launcher test suite, for any task function (run job by job, composed once per kind)."""


@pytest.mark.parametrize("launcher_name, overrides", [("batched", ["hydra.sweeper.max_batch_size=2"])])
class TestBatchedLauncherInBatches(BatchedSweeperTestSuite):
    """The same, with the sweeper handing the launcher several batches."""


def _jobs(sweep_dir: Path) -> dict[str, Path]:
    return {job.name: job for job in sorted(sweep_dir.iterdir()) if job.is_dir()}


def assert_same_jobs(together: Path, alone: Path, rel: float = 1e-4) -> None:
    """Every job of the two sweeps left the same results: summary, TensorBoard scalars and hparams, checkpoint."""
    jobs, expected_jobs = _jobs(together), _jobs(alone)
    assert list(jobs) == list(expected_jobs) and jobs
    for name, job in jobs.items():
        expected_job = expected_jobs[name]
        summary, expected = (json.loads((d / "summary.json").read_text()) for d in (job, expected_job))
        for key in ("status", "diverged_at_epoch", "epochs", "steps", "lr", "max_epochs", "seed", "optimal_loss"):
            assert summary[key] == expected[key], (name, key)
        for key in ("final_loss", "weights", "bias", "val_loss"):
            assert _flat(summary[key]) == pytest.approx(_flat(expected[key]), rel=rel, abs=1e-6), (name, key)
        scalars, expected_scalars = read_scalars(job), read_scalars(expected_job)
        assert set(scalars) == set(expected_scalars), name
        for tag, series in expected_scalars.items():
            assert [step for step, _ in scalars[tag]] == [step for step, _ in series], (name, tag)
            assert _flat([v for _, v in scalars[tag]]) == pytest.approx(
                _flat([v for _, v in series]), rel=rel, abs=1e-6
            )
        history, expected_history = (read_history(d).rows for d in (job, expected_job))
        assert list(history) == list(expected_history), name  # the same epochs, thinned alike
        for epoch, row in expected_history.items():
            assert list(history[epoch]) == list(row), (name, epoch)
            assert _flat(list(history[epoch].values())) == pytest.approx(_flat(list(row.values())), rel=rel, abs=1e-6)
        assert yaml.safe_load((job / "hparams.yaml").read_text()) == yaml.safe_load(
            (expected_job / "hparams.yaml").read_text()
        )
        checkpoint, expected_checkpoint = (
            torch.load(d / "checkpoints" / "last.ckpt", weights_only=True) for d in (job, expected_job)
        )
        for key in ("hyper_parameters", "model_kind", "RegressionDataModule", "epoch"):
            assert checkpoint[key] == expected_checkpoint[key], (name, key)
        for key, tensor in expected_checkpoint["state_dict"].items():
            torch.testing.assert_close(checkpoint["state_dict"][key], tensor, rtol=rel, atol=1e-6)
        (optimizer,), (expected_optimizer,) = checkpoint["optimizer_states"], expected_checkpoint["optimizer_states"]
        assert optimizer["state"].keys() == expected_optimizer["state"].keys(), name
        for parameter, state in expected_optimizer["state"].items():
            assert optimizer["state"][parameter].keys() == state.keys(), name
            for entry, tensor in state.items():
                torch.testing.assert_close(optimizer["state"][parameter][entry], tensor, rtol=rel, atol=1e-6)
        assert optimizer["param_groups"][0]["lr"] == expected_optimizer["param_groups"][0]["lr"]
        assert _image_tags(job) == _image_tags(expected_job), name
        landscape, expected_landscape = (json.loads((d / "landscape.json").read_text()) for d in (job, expected_job))
        assert (landscape["each"], landscape["points"]) == (expected_landscape["each"], expected_landscape["points"])
        for target, expected_surface in expected_landscape["targets"].items():
            surface = landscape["targets"][target]
            assert (
                surface["center"] == expected_surface["center"]
                and surface["curvature"] == expected_surface["curvature"]
            )
            assert _flat(surface["path"]) == pytest.approx(_flat(expected_surface["path"]), rel=rel, abs=1e-6), name


def _image_tags(run_dir: Path) -> list[str]:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    return events.Tags()["images"]


def _flat(value) -> list[float]:
    """Numbers nested in lists, non-finite ones (a diverged run's) as a marker pytest.approx compares exactly."""
    if isinstance(value, list):
        return [x for item in value for x in _flat(item)]
    return [value if value is not None and math.isfinite(value) else -1e300]


SWEEPS = {
    "scratch model, gradient descent, lr x epochs, one diverging, fit pictures": [
        "model=scratch",
        "optim=gd",
        "optim.lr=1e-5,1e-4,1e-2",
        "trainer.max_epochs=3,8",
        "fit_picture=true",
    ],
    "shuffled mini-batches x seeds, SGD with momentum and dampening": [
        "data.batch_size=5",
        "data.shuffle=true",
        "seed=1,2",
        "optim.lr=1e-5",
        "optim.momentum=0,0.9",
        "optim.dampening=0,0.3",
        "trainer.max_epochs=4",
    ],
    "SGD with Nesterov momentum and weight decay, in float64": [
        "data.standardize=true",
        "optim.nesterov=true",
        "optim.lr=0.01,0.1",
        "optim.momentum=0.5,0.9",
        "optim.weight_decay=0,0.1",
        "trainer.precision=64",
        "trainer.max_epochs=4",
    ],
    "Adam on standardized data, held-out rows": [
        "optim=adam",
        "data.standardize=true",
        "data.val_fraction=0.2",
        "optim.lr=0.01,0.1",
        "optim.weight_decay=0,0.01",
        "trainer.max_epochs=5",
    ],
    "AMSGrad over betas and eps": [
        "optim=adam",
        "optim.amsgrad=true",
        "optim.betas=[0.9,0.999],[0.8,0.99]",
        "optim.eps=1e-8,1e-3",
        "optim.lr=0.1",
        "trainer.max_epochs=4",
    ],
    "synthetic data: each seed draws its own rows": [
        "data=synthetic",
        "data.n=500",
        "data.num_features=3",
        "data.batch_size=64",
        "seed=1,2",
        "optim.lr=0.01,0.05",
        "trainer.max_epochs=3",
    ],
    "an LBFGS job among SGD ones, in float64": ["optim=sgd,lbfgs", "trainer.precision=64", "trainer.max_epochs=3"],
    "an Optuna search, 4 trials proposed at once": [
        "experiment=search_lr",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=4",
        "trainer.max_epochs=5",
    ],
}


def run_sweep(hydra_sweep_runner, sweep_dir: Path, *overrides: str):
    """`python train.py -m *overrides` in this process (Hydra's own test runner), into `sweep_dir`."""
    from experiments.cli import train_task

    sweep = hydra_sweep_runner(
        calling_file=str(REPO / "train.py"),
        calling_module=None,
        task_function=train_task,
        config_path="conf",
        config_name="config",
        overrides=[*overrides, "hydra.mode=MULTIRUN"],  # what -m sets on the command line
        temp_dir=sweep_dir,
    )
    sweep.train_together = train_task.train_together  # the runner hands Hydra itself as the task
    return sweep


@pytest.mark.parametrize("name", SWEEPS)
def test_jobs_trained_together_match_jobs_run_one_by_one(name, hydra_sweep_runner, tmp_path, capsys):
    with contextlib.ExitStack() as sweeps:  # Hydra's runner removes the sweep folder when it is left
        for launcher, folder in (("batched", "together"), ("basic", "alone")):
            sweeps.enter_context(
                run_sweep(hydra_sweep_runner, tmp_path / folder, *SWEEPS[name], f"hydra/launcher={launcher}")
            )
            if launcher == "batched":
                plan = capsys.readouterr().out
        assert ("; 1 one at a time." in plan) == ("LBFGS" in name)
        assert_same_jobs(tmp_path / "together", tmp_path / "alone")


def test_a_failing_group_is_recorded_for_each_of_its_jobs_and_the_sweep_goes_on(
    hydra_sweep_runner, tmp_path, monkeypatch
):
    import experiments.group

    train_group = experiments.group.train_group

    def fail_for_adam(jobs, *args):
        if jobs[0].values["optim"]["_target_"] == "torch.optim.Adam":
            raise RuntimeError("a bug in the group")
        return train_group(jobs, *args)

    monkeypatch.setattr(experiments.group, "train_group", fail_for_adam)
    sweep = run_sweep(hydra_sweep_runner, tmp_path, "optim=sgd,adam", "optim.lr=1e-5,1e-6", "trainer.max_epochs=2")
    with pytest.raises(SystemExit) as exit_status, sweep:  # the sweep summary exits 1: jobs failed
        pass
    assert exit_status.value.code == 1
    summaries = {job.name: json.loads((job / "summary.json").read_text()) for job in _jobs(tmp_path).values()}
    assert [s["status"] for s in summaries.values()] == ["ok", "ok", "failed", "failed"]
    for name, summary in summaries.items():
        if summary["status"] == "failed":
            assert summary["error"] == "RuntimeError: a bug in the group"
            assert "Traceback" in (tmp_path / name / "error.txt").read_text()


def test_a_failure_late_in_a_group_keeps_the_jobs_that_had_finished(hydra_sweep_runner, tmp_path, monkeypatch):
    from experiments.group import GroupRecorder

    save_checkpoint = GroupRecorder._save_checkpoint

    def fail_at_epoch_4(self, trainer, module, t, job, *args):
        if job.values["trainer"]["max_epochs"] == 4:
            raise RuntimeError("a bug in saving")
        save_checkpoint(self, trainer, module, t, job, *args)

    monkeypatch.setattr(GroupRecorder, "_save_checkpoint", fail_at_epoch_4)
    sweep = run_sweep(hydra_sweep_runner, tmp_path, "optim.lr=1e-5", "trainer.max_epochs=2,4,6")
    with pytest.raises(SystemExit), sweep:
        pass
    statuses = {job.name: json.loads((job / "summary.json").read_text())["status"] for job in _jobs(tmp_path).values()}
    assert list(statuses.values()) == ["ok", "failed", "failed"]
    (first,) = [name for name in statuses if name.startswith("0_")]
    assert read_scalars(tmp_path / first)["train/full_loss"][-1][0] == 2  # its events were written
    for name, last_epoch in zip(sorted(statuses)[1:], (4, 3)):  # so were the others', up to the failure
        assert [step for step, _ in read_scalars(tmp_path / name)["train/full_loss"]] == list(range(last_epoch + 1))


def test_ctrl_c_before_a_group_trains_leaves_no_half_made_jobs(hydra_sweep_runner, tmp_path, monkeypatch):
    from experiments.datamodule import RegressionDataModule

    def interrupted(self, stage):
        raise KeyboardInterrupt

    monkeypatch.setattr(RegressionDataModule, "setup", interrupted)
    sweep = run_sweep(hydra_sweep_runner, tmp_path, "optim.lr=1e-5,1e-6", "trainer.max_epochs=2")
    with pytest.raises(stopping.Stopped) as stopped, sweep:
        pass
    assert stopped.value.exit_status == 130
    assert _jobs(tmp_path) == {}  # Hydra's copies of the configs of jobs that never trained are removed


def _values(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    from experiments.config import compose_run

    cfg = compose_run(overrides, "/tmp/unused")
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key != "hydra"
    }


def test_what_trains_together():
    from experiments.group import can_train_together, group_key

    base = _values()
    assert can_train_together(base) and can_train_together(_values("optim=adam"))
    for alone in ("optim=lbfgs", "+optim.maximize=true", "+trainer.gradient_clip_val=1", "+optim.foreach=true"):
        assert not can_train_together(_values(alone)), alone
    for together in ("optim.lr=0.1", "optim.momentum=0.9", "optim.weight_decay=0.1", "seed=7", "trainer.max_epochs=3"):
        assert group_key(_values(together)) == group_key(base), together
    for apart in ("data.batch_size=5", "data.standardize=true", "optim.nesterov=true", "trainer.precision=64"):
        assert group_key(_values(apart)) != group_key(base), apart
    for data in ("data=synthetic", "data.val_fraction=0.2"):  # the seed draws or splits the rows
        assert group_key(_values(data, "seed=1")) != group_key(_values(data, "seed=2")), data
