"""Learning-rate schedules: each logs the rates of its formula as `train/lr`, trains as a plain PyTorch
loop with the same scheduler, trains the same in a batched sweep as job by job, and continues
exactly when resumed; the run's settings name the schedule and the optimizer's options."""

import contextlib
import json
import math
import signal
from pathlib import Path

import pytest
import torch
import yaml
from test_launcher import _flat, _jobs, assert_same_jobs, hydra_without_a_version_base, run_sweep  # noqa: F401
from test_stopping import STATEFUL, resume_cfg, stop_at, summary_of  # noqa: F401

from experiments import stopping
from experiments.config import check
from experiments.errors import UserError
from experiments.tables import BUILTIN_TABLES
from experiments.training import train
from helpers import read_scalars

LR = 1e-5
EPOCHS = 6


def cosine(epoch: int) -> float:  # T_max = EPOCHS, eta_min = 0
    return LR * (1 + math.cos(math.pi * (epoch - 1) / EPOCHS)) / 2


# Each schedule's rate in epoch e (1, 2, ...), written from its definition, not from torch.
FORMULAS = {
    "schedule=constant": lambda e: LR,
    "schedule=step schedule.step_size=2 schedule.gamma=0.5": lambda e: LR * 0.5 ** ((e - 1) // 2),
    "schedule=exponential schedule.gamma=0.8": lambda e: LR * 0.8 ** (e - 1),
    "schedule=cosine": cosine,
    "schedule=cosine schedule.eta_min=1e-6": lambda e: 1e-6 + (LR - 1e-6) * (1 + math.cos(math.pi * (e - 1) / 6)) / 2,
    "schedule=warmup schedule.start_factor=0.25 schedule.total_iters=3": lambda e: (
        LR * (0.25 + 0.75 * min(e - 1, 3) / 3)
    ),
}


@pytest.mark.parametrize("schedule", FORMULAS)
def test_each_schedule_logs_the_rates_of_its_formula(make_cfg, schedule):
    cfg = make_cfg(*schedule.split(), f"optim.lr={LR}", f"trainer.max_epochs={EPOCHS}")
    train(cfg)
    logged = read_scalars(Path(cfg.output_dir))["train/lr"]
    assert [step for step, _ in logged] == list(range(1, EPOCHS + 1))  # beside each epoch's loss
    expected = [FORMULAS[schedule](epoch) for epoch in range(1, EPOCHS + 1)]
    assert [lr for _, lr in logged] == pytest.approx(expected, rel=1e-6)  # TensorBoard keeps float32


@pytest.mark.parametrize("schedule", ["constant", "exponential", "warmup"])
def test_a_schedule_trains_as_a_plain_pytorch_loop_with_its_scheduler(make_cfg, schedule):
    """The tutorials' loop with `scheduler.step()` after each epoch, from the run's first weights: the
    same weights, bit for bit."""
    cfg = make_cfg(f"schedule={schedule}", "optim.momentum=0.9", "trainer.max_epochs=8")
    summary = train(cfg)
    scalars = read_scalars(Path(cfg.output_dir))
    crops = BUILTIN_TABLES["crops"]()
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():  # where the run started: its weights at step 0 (float32, as TensorBoard keeps them)
        for target, name in enumerate(crops.target_names):
            model.bias[target] = scalars[f"weights/{name}/bias"][0][1]
            for feature, column in enumerate(crops.feature_names):
                model.weight[target, feature] = scalars[f"weights/{name}/{column}"][0][1]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    scheduler = {
        "constant": lambda: None,
        "exponential": lambda: torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.95),
        "warmup": lambda: torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=5),
    }[schedule]()
    for _ in range(8):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(crops.features), crops.targets).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    assert summary["weights"] == model.weight.detach().double().tolist()
    assert summary["bias"] == model.bias.detach().double().tolist()


SWEEPS = {
    # cosine follows trainer.max_epochs: jobs that differ in it cannot share a trajectory
    "cosine x lr x epochs, SGD with momentum": (
        ["schedule=cosine", "optim.lr=1e-5,2e-5", "optim.momentum=0.9", "trainer.max_epochs=3,5"],
        "4 together in 1 group, as 4 trajectories.",
    ),
    # warmup does not: the 3-epoch jobs are the first 3 epochs of the 6-epoch ones
    "warmup x momentum x epochs, shuffled mini-batches": (
        [
            "schedule=warmup",
            "schedule.total_iters=4",
            "data.batch_size=5",
            "data.shuffle=true",
            "optim.momentum=0,0.9",
            "trainer.max_epochs=3,6",
        ],
        "4 together in 1 group, as 2 trajectories (jobs that differ only in epochs share one).",
    ),
    "step x gamma, Adam on standardized data": (
        [
            "schedule=step",
            "schedule.step_size=2",
            "schedule.gamma=0.5,0.9",
            "optim=adam",
            "optim.lr=0.1",
            "data.standardize=true",
            "trainer.max_epochs=5",
        ],
        "2 together in 1 group, as 2 trajectories.",
    ),
    "constant and exponential x lr, gradient descent": (
        ["schedule=constant,exponential", "optim=gd", "optim.lr=1e-5,2e-5", "trainer.max_epochs=4"],
        "4 together in 2 groups, as 4 trajectories.",
    ),
}


@pytest.mark.usefixtures("hydra_without_a_version_base")
@pytest.mark.parametrize("name", SWEEPS)
def test_a_batched_sweep_with_schedules_equals_its_jobs_run_one_by_one(name, hydra_sweep_runner, tmp_path, capsys):
    overrides, plan = SWEEPS[name]
    with contextlib.ExitStack() as sweeps:  # Hydra's runner removes the sweep folder when it is left
        for launcher, folder in (("batched", "together"), ("basic", "alone")):
            sweep = run_sweep(hydra_sweep_runner, tmp_path / folder, *overrides, f"hydra/launcher={launcher}")
            sweeps.enter_context(sweep)
            if launcher == "batched":
                assert plan in capsys.readouterr().out
        assert_same_jobs(tmp_path / "together", tmp_path / "alone")
        for job, alone in zip(_jobs(tmp_path / "together").values(), _jobs(tmp_path / "alone").values()):
            assert read_scalars(job)["train/lr"] == read_scalars(alone)["train/lr"]  # the rates, bit for bit
            checkpoint, expected = (torch.load(d / "checkpoints/last.ckpt", weights_only=True) for d in (job, alone))
            assert checkpoint["lr_schedulers"] == expected["lr_schedulers"]
            assert bool(checkpoint["lr_schedulers"]) == ("constant" not in job.name)
            group, expected_group = (c["optimizer_states"][0]["param_groups"][0] for c in (checkpoint, expected))
            assert group["lr"] == expected_group["lr"] and group.get("initial_lr") == expected_group.get("initial_lr")


def test_what_trains_together_with_a_schedule():
    from test_launcher import _values

    from experiments.group import can_train_together, group_key

    cosine = _values("schedule=cosine")
    assert can_train_together(cosine) and can_train_together(_values("schedule=warmup", "optim=adam"))
    for together in ("optim.lr=0.1", "trainer.max_epochs=3", "schedule.eta_min=1e-7"):
        assert group_key(_values("schedule=cosine", together)) == group_key(cosine), together
    assert group_key(_values("schedule=step")) != group_key(cosine)  # a group's jobs share their config choices
    plateau = _values("schedule=exponential")
    plateau["schedule"]["_target_"] = "torch.optim.lr_scheduler.ReduceLROnPlateau"  # steps on a metric: alone
    assert not can_train_together(plateau)


@pytest.mark.parametrize("schedule", ["schedule=cosine", "schedule=step schedule.step_size=3", "schedule=warmup"])
def test_a_run_resumed_mid_schedule_ends_where_the_run_never_stopped_ends(make_cfg, stop_at, schedule):  # noqa: F811
    settings = (*STATEFUL, *schedule.split(), "trainer.max_epochs=8")
    whole = make_cfg(*settings)
    expected = train(whole)

    stop_at("epoch_end", signal.SIGTERM, count=4)
    stopped = make_cfg(*settings)
    with pytest.raises(stopping.Stopped):
        train(stopped)
    stopping.reset()
    run_dir = Path(stopped.output_dir)
    assert summary_of(run_dir)["epochs"] == 4
    resumed = train(resume_cfg(run_dir, *settings))
    assert resumed["weights"] == expected["weights"] and resumed["bias"] == expected["bias"]  # bit for bit
    assert read_scalars(run_dir)["train/lr"] == read_scalars(Path(whole.output_dir))["train/lr"]
    checkpoints = [
        torch.load(d / "checkpoints/last.ckpt", weights_only=True) for d in (run_dir, Path(whole.output_dir))
    ]
    assert checkpoints[0]["lr_schedulers"] == checkpoints[1]["lr_schedulers"]


def test_a_batched_sweep_stopped_mid_schedule_resumes_each_job_on_its_schedule(tmp_path, make_cfg):
    """The group's checkpoints hold each member's scheduler: a job continued alone keeps to its schedule."""
    from test_stopping import run_stopped

    from helpers import run_cli

    args = ("-m", "schedule=cosine", "optim.momentum=0.9", "optim.lr=1e-5,2e-5", "trainer.max_epochs=6")
    result = run_stopped(*args, "hydra.sweep.dir=sweep", cwd=tmp_path, at="epoch_end:3=SIGINT")
    assert result.returncode == 130, result.stderr
    assert {summary_of(job)["status"] for job in _jobs(tmp_path / "sweep").values()} == {"interrupted"}
    resumed = run_cli("resume=sweep", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for lr, job in zip(("1e-5", "2e-5"), _jobs(tmp_path / "sweep").values()):
        alone = make_cfg("schedule=cosine", "optim.momentum=0.9", f"optim.lr={lr}", "trainer.max_epochs=6")
        expected = train(alone)
        assert read_scalars(job)["train/lr"] == read_scalars(Path(alone.output_dir))["train/lr"]
        assert _flat(summary_of(job)["weights"]) == pytest.approx(_flat(expected["weights"]), rel=1e-5)


def test_a_cosine_run_cannot_be_trained_longer_but_one_with_its_own_length_can(make_cfg):
    follows = make_cfg("schedule=cosine", "trainer.max_epochs=3")
    train(follows)
    with pytest.raises(UserError, match=r"schedule.T_max=3, which would now be 5 .*cannot change in mid-run"):
        train(resume_cfg(Path(follows.output_dir), "schedule=cosine", "trainer.max_epochs=5"))
    own = make_cfg("schedule=cosine", "schedule.T_max=5", "trainer.max_epochs=3")
    train(own)
    longer = train(resume_cfg(Path(own.output_dir), "schedule=cosine", "schedule.T_max=5", "trainer.max_epochs=5"))
    expected = make_cfg("schedule=cosine", "schedule.T_max=5", "trainer.max_epochs=5")
    assert longer["weights"] == train(expected)["weights"]


def test_the_settings_name_the_schedule_and_the_optimizer_options(make_cfg):
    cfg = make_cfg("schedule=cosine", "optim.momentum=0.9", "optim.nesterov=true", "trainer.max_epochs=2")
    train(cfg)
    summary = json.loads((Path(cfg.output_dir) / "summary.json").read_text())
    assert summary["optim"] == "sgd" and summary["lr"] == 1e-5
    assert (summary["momentum"], summary["nesterov"], summary["dampening"], summary["weight_decay"]) == (
        0.9,
        True,
        0,
        0,
    )
    assert (summary["schedule"], summary["T_max"], summary["eta_min"]) == ("cosine", 2, 0.0)
    hparams = yaml.safe_load((Path(cfg.output_dir) / "hparams.yaml").read_text())
    assert {key: hparams[key] for key in ("momentum", "nesterov", "schedule", "T_max")} == {
        "momentum": 0.9,
        "nesterov": True,
        "schedule": "cosine",
        "T_max": 2,
    }
    adam = make_cfg("optim=adam", "trainer.max_epochs=1")
    train(adam)
    summary = json.loads((Path(adam.output_dir) / "summary.json").read_text())
    assert (summary["betas"], summary["amsgrad"], summary["schedule"]) == ([0.9, 0.999], False, "constant")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ("schedule=step schedule.gamma=0", "schedule.gamma must be a positive number"),
        ("schedule=exponential schedule.gamma=-0.5", "schedule.gamma must be a positive number"),
        ("schedule=step schedule.step_size=0", "schedule.step_size must be a whole number of epochs, at least 1"),
        ("schedule=cosine schedule.eta_min=-1", "schedule.eta_min must be a number of at least 0"),
        ("schedule=warmup schedule.start_factor=0", "schedule.start_factor must be a number above 0 and at most 1"),
        ("schedule=warmup schedule.total_iters=0", "schedule.total_iters must be a whole number of epochs"),
    ],
)
def test_a_schedule_setting_that_cannot_work_is_refused_in_one_line(make_cfg, overrides, message):
    with pytest.raises(UserError, match=message):
        check(make_cfg(*overrides.split()))
