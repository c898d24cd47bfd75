"""A sweep group: jobs that differ only in their learning rate, epochs, seed or optimizer settings,
trained as one batched model in one Lightning fit, each written as its own ordinary run.

Jobs that differ only in `trainer.max_epochs` share a trajectory: a 50-epoch job is the first 50
epochs of the 200-epoch one, so it is recorded when the trajectory reaches its epoch (unless their
schedule follows `trainer.max_epochs`, as cosine's `T_max` does). Every job
gets the folder, summary.json, TensorBoard file, hparams and checkpoint a single run would leave.
"""

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import OmegaConf

from experiments import stopping
from experiments.batches import MemberBatches
from experiments.callbacks import diverged, draw_landscape, epoch_metrics, log_true_weights, weight_tags
from experiments.config import TrainerConfig, Values
from experiments.evaluation import ParameterMeter
from experiments.files import write_whole
from experiments.jobs import Job
from experiments.landscape import WeightPath, every_step, landscape_record, write_landscape
from experiments.logger import EpochLogger
from experiments.members import BATCHED_OPTIMIZERS, MembersModule
from experiments.schedules import BATCHED_SCHEDULES, MemberSchedules, scheduler_factory
from experiments.summary import run_settings, summary_of, write_summary
from experiments.training import build, draws_fit_picture, make_trainer

# Each member's update is applied by MembersModule itself, not by a torch optimizer; nothing to act on.
warnings.filterwarnings("ignore", message=r".*configure_optimizers` returned `None`")

BATCHED_MODELS = {"torch.nn.Linear", "experiments.models.ScratchLinear"}  # their config's _target_
# The config keys of an optimizer that are not its options.
INSTANTIATION_KEYS = {"_target_", "_partial_", "_convert_"}


def can_train_together(values: dict[str, Any]) -> bool:
    """Whether a job's config is one a group can train faithfully: a linear model, an optimizer
    with a batched update rule and exactly the options that rule reads, a schedule each member
    can step on its own, and only the Trainer settings this tool declares."""
    optim = values["optim"]
    if values["model"].get("_target_") not in BATCHED_MODELS or optim.get("_target_") not in BATCHED_OPTIMIZERS:
        return False
    if (values.get("schedule") or {}).get("_target_") not in BATCHED_SCHEDULES:
        return False
    per_member, shared = BATCHED_OPTIMIZERS[optim["_target_"]]
    options = {"betas" if name.startswith("beta") else name for name in per_member} | set(shared)
    return set(optim) - INSTANTIATION_KEYS == options and set(values["trainer"]) <= set(
        TrainerConfig.__dataclass_fields__
    )


def group_key(values: dict[str, Any]) -> str:
    """What jobs must share to train together: everything but their learning rate, optimizer
    settings, schedule settings, epochs and seed (the seed too where it draws or splits the data)."""
    per_member = BATCHED_OPTIMIZERS[values["optim"]["_target_"]][0]
    skipped = ("output_dir", "seed", "optim", "trainer", "schedule")
    shared = {key: value for key, value in values.items() if key not in skipped}
    # One kind of schedule a group, as the group's choices name it; each member steps its own settings.
    shared["schedule"] = (values.get("schedule") or {}).get("_target_")
    shared["optim"] = {key: value for key, value in values["optim"].items() if key not in per_member and key != "betas"}
    shared["trainer"] = {key: value for key, value in values["trainer"].items() if key != "max_epochs"}
    data = values["data"]
    if "n" in data or data.get("val_fraction"):  # synthetic rows are drawn from the seed; a held-out split is seeded
        shared["seed"] = values["seed"]
    return json.dumps(shared, sort_keys=True, default=str)


def member_settings(optim: dict[str, Any]) -> dict[str, float]:
    """A job's optimizer settings as its member's update rule reads them."""
    settings = {key: optim[key] for key in BATCHED_OPTIMIZERS[optim["_target_"]][0] if key in optim}
    if "betas" in optim:
        settings["beta1"], settings["beta2"] = optim["betas"]
    return settings


class GroupRecorder(pl.Callback):
    """Every job of a group as its own run: measures all trajectories after each epoch, writes each
    running job's TensorBoard event, and finishes a job (summary, checkpoint, hparams, picture)
    when its trajectory reaches its epoch count or diverges. Stops the fit when every job is done."""

    def __init__(
        self,
        trajectories: list[list[Job]],
        settings: list[dict[str, Any]],
        model_kind: str,
        progress: Callable[[int], None],
        results: dict[int, dict[str, Any]],
        checkpoint_minutes: float | None = None,
    ) -> None:
        self.trajectories, self.settings, self.model_kind, self.progress = trajectories, settings, model_kind, progress
        self.fit_picture = draws_fit_picture(Values(trajectories[0][0].values), multirun=True)
        self.results = results  # each finished job's summary, by job index, as it finishes
        self.loggers: dict[int, EpochLogger] = {}
        self._meter: ParameterMeter | None = None  # made when training starts
        self.losses: list[list[float]] = [[] for _ in trajectories]
        self.path = WeightPath()  # every member's (see experiments.landscape)
        self.diverged_at: list[int | None] = [None] * len(trajectories)
        self.started = time.perf_counter()
        self._checkpoint_seconds = 60 * checkpoint_minutes if checkpoint_minutes else math.inf
        self._save_after = time.monotonic() + self._checkpoint_seconds

    def on_train_start(self, trainer: pl.Trainer, module: MembersModule) -> None:
        stopping.training_started()
        datamodule = trainer.datamodule
        self.evaluator = evaluator = datamodule.evaluator
        self._meter = evaluator.meter(module.weight, module.bias)
        self._plane = evaluator.plane()
        steps_per_epoch = math.ceil(datamodule.rows / datamodule.batch_size)
        self._each = "step" if every_step(steps_per_epoch) else "epoch"
        self._points_per_epoch = steps_per_epoch if self._each == "step" else 1
        module.step_path = self.path if self._each == "step" else None
        self._tags = weight_tags("weights", evaluator.feature_names, evaluator.target_names)
        for jobs in self.trajectories:
            for job in jobs:
                self.loggers[job.index] = logger = EpochLogger(job.output_dir, job.values["trainer"]["max_epochs"])
                logger.log_layout(evaluator.target_names, held_out=bool(datamodule.val_fraction))
                log_true_weights(logger, evaluator)
        self._record(trainer, module, epoch=0)
        stopping.moment("fit_start")

    def on_train_epoch_end(self, trainer: pl.Trainer, module: MembersModule) -> None:
        values, losses = self._record(trainer, module, trainer.current_epoch + 1)
        stopping.moment("epoch_end")
        if len(self.results) == sum(map(len, self.trajectories)) or stopping.requested():
            trainer.should_stop = True
        elif time.monotonic() >= self._save_after:  # every unfinished job's checkpoint, for resume=
            for t, jobs in enumerate(self.trajectories):
                for job in jobs:
                    if job.index not in self.results:
                        self.loggers[job.index].write_pending()
                        self.loggers[job.index].write_history()
                        self._save_checkpoint(trainer, module, t, job, self._hparams(t, job), losses[t])
            self._save_after = time.monotonic() + self._checkpoint_seconds

    def _record(
        self, trainer: pl.Trainer, module: MembersModule, epoch: int
    ) -> tuple[list[list[float]], list[list[float]]]:
        """Measure every trajectory, log each running job's epoch and finish the jobs that are done;
        returns what was measured (weights and losses, by trajectory)."""
        values, losses = self._meter.read()
        lrs = module.lrs() if epoch else None
        train_losses = (module.epoch_loss_sum / max(module.epoch_steps, 1)).tolist() if epoch else None
        if epoch == 0 or self._each == "epoch":  # else the module adds each step
            self.path.add(module.weight, module.bias)
        running = 0
        for t, jobs in enumerate(self.trajectories):
            if self.diverged_at[t] is not None:
                continue
            self.losses[t].append(losses[t][0])
            metrics = epoch_metrics(
                self._tags, values[t], losses[t], self.evaluator, train_losses and train_losses[t], lrs and lrs[t]
            )
            if epoch and diverged(losses[t][0], self.losses[t][0]):
                self.diverged_at[t] = epoch
            for job in jobs:
                if job.index in self.results:
                    continue
                self.loggers[job.index].log_metrics(metrics, step=epoch)
                running += 1
                if epoch == job.values["trainer"]["max_epochs"] or self.diverged_at[t] is not None:
                    self._finish(trainer, module, t, job, values[t], losses[t], "ok")
        if epoch:
            self.progress(running)
        return values, losses

    def finish_interrupted(self, trainer: pl.Trainer, module: MembersModule, checkpoints: bool) -> None:
        """When stopped: every job not yet finished, recorded as interrupted at the epoch it reached
        (none, if training had not started)."""
        if self._meter is None:
            return
        values, losses = self._meter.read()
        for t, jobs in enumerate(self.trajectories):
            for job in jobs:
                if job.index not in self.results and self.losses[t]:
                    self._finish(trainer, module, t, job, values[t], losses[t], "interrupted", checkpoints)

    def close_unfinished(self) -> None:
        """Write what the jobs not finished have logged (after a failure)."""
        for index, logger in self.loggers.items():
            if index not in self.results:
                logger.finalize("failed")

    def _finish(
        self,
        trainer: pl.Trainer,
        module: MembersModule,
        t: int,
        job: Job,
        values: list[float],
        losses: list[float],
        status: str,
        checkpoint: bool = True,
    ) -> None:
        """Write job `job` of trajectory `t` as a finished run: its checkpoint, hparams, picture and summary."""
        evaluator = self.evaluator
        curve = self.losses[t]
        epochs = len(curve) - 1
        if status == "ok" and self.diverged_at[t] is not None:
            status = "diverged"
        features = len(evaluator.feature_names)
        rows = [values[i : i + features + 1] for i in range(0, len(values), features + 1)]
        logger = self.loggers[job.index]
        hparams = self._hparams(t, job)
        logger.log_session(hparams, status, step=epochs)
        path = self._member_path(module, t)
        landscape = landscape_record(
            self._plane, path["indices"], path["parameters"], evaluator.target_names, self._each
        )
        if self.fit_picture:
            if status == "ok":
                self._draw_fit(logger, module, t, epochs)
            draw_landscape(logger, job.output_dir, landscape, epochs)
        logger.finalize("success")
        if checkpoint:
            self._save_checkpoint(trainer, module, t, job, hparams, losses)
        seconds = time.perf_counter() - self.started
        datamodule = trainer.datamodule
        self.results[job.index] = summary = summary_of(
            status=status,
            diverged_at_epoch=self.diverged_at[t],
            losses=curve,
            val_loss=losses[1] if len(losses) > 1 else None,
            weights=[row[:features] for row in rows],
            bias=[row[features] for row in rows],
            datamodule=datamodule,
            steps=epochs * math.ceil(datamodule.rows / datamodule.batch_size),
            seconds=seconds,
            train_seconds=seconds,
            settings=hparams,
            device=trainer.strategy.root_device.type,
        )
        write_summary(job.output_dir, summary)
        write_landscape(job.output_dir, landscape)

    def _member_path(self, module: MembersModule, t: int) -> dict[str, Any]:
        """Trajectory `t`'s path up to where it is now (see `WeightPath.state`)."""
        final = torch.cat([module.weight[t].detach(), module.bias[t].detach()[:, None]], dim=1)
        count = 1 + (len(self.losses[t]) - 1) * self._points_per_epoch
        return self.path.state(final, member=t, count=count)

    def _hparams(self, t: int, job: Job) -> dict[str, Any]:
        return {**self.settings[t], "max_epochs": job.values["trainer"]["max_epochs"], "seed": job.values["seed"]}

    def _draw_fit(self, logger: EpochLogger, module: MembersModule, t: int, epoch: int) -> None:
        from experiments.figures import fit_figure  # matplotlib is imported only here

        sample = self.evaluator.sample
        with torch.no_grad():
            x = sample.features.to(module.weight.dtype)
            scaler = module.scaler
            if scaler is not None:
                x = scaler.scale_features(x)
            predictions = x @ module.weight[t].T + module.bias[t]
            if scaler is not None:
                predictions = scaler.unscale_targets(predictions)
        figure = fit_figure(sample.features, sample.targets, predictions, sample.feature_names, sample.target_names)
        logger.experiment.add_figure("weights/fit", figure, global_step=epoch)

    def _save_checkpoint(
        self, trainer: pl.Trainer, module: MembersModule, t: int, job: Job, hparams: dict, losses: list[float]
    ) -> None:
        """The checkpoint a single run of this job writes, with this member's tensors, optimizer state
        and what `resume=` continues from (see `EpochRecorder.state_dict`)."""
        state = {"model.weight": module.weight[t].detach().clone(), "model.bias": module.bias[t].detach().clone()}
        if module.scaler is not None:
            state.update({f"scaler.{name}": tensor.clone() for name, tensor in module.scaler.state_dict().items()})
        optim = job.values["optim"]
        param_group = {key: value for key, value in optim.items() if not key.startswith("_")}
        schedules = module.schedules
        if schedules is not None:
            param_group.update(schedules.param_group(t))
        epochs = len(self.losses[t]) - 1
        batches = trainer.train_dataloader
        generator = (
            batches.batches[int(module.seed_of[t])] if isinstance(batches, MemberBatches) else batches
        ).generator
        checkpoint = {
            "epoch": epochs,
            "global_step": trainer.global_step,
            "steps": epochs * math.ceil(trainer.datamodule.rows / trainer.datamodule.batch_size),
            "pytorch-lightning_version": pl.__version__,
            "state_dict": state,
            "optimizer_states": [
                {"state": module.member_optimizer_state(t), "param_groups": [{**param_group, "params": [0, 1]}]}
            ],
            "lr_schedulers": schedules.state_dicts(t) if schedules is not None else [],
            "hparams_name": "settings",
            "hyper_parameters": hparams,
            "RegressionDataModule": trainer.datamodule.state_dict(),
            "model_kind": self.model_kind,
            "callbacks": {
                "EpochRecorder": {
                    "losses": self.losses[t],
                    "val_loss": losses[1] if len(losses) > 1 else None,
                    "train_seconds": time.perf_counter() - self.started,
                    "seconds": time.perf_counter() - self.started,
                    "generator": generator.get_state(),
                    "path": self._member_path(module, t),
                }
            },
        }
        path = job.output_dir / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, lambda file: torch.save(checkpoint, file))


def train_group(
    jobs: list[Job], choices: dict[str, str], progress: Callable[[int], None], results: dict[int, dict[str, Any]]
) -> bool:
    """Train `jobs` (one group, see `group_key`) together, putting each job's summary into `results`
    by its index as it finishes; returns whether a signal stopped the fit, in which case the
    unfinished jobs are recorded as interrupted. `progress(n)`: n jobs have trained one more epoch."""
    first = OmegaConf.create(jobs[0].values)
    by_settings: dict[str, list[Job]] = {}
    for job in jobs:
        # With the schedule as resolved: one that follows trainer.max_epochs (cosine's T_max) parts such jobs.
        settings = [job.values["seed"], member_settings(job.values["optim"]), job.values.get("schedule")]
        key = json.dumps(settings, sort_keys=True)
        by_settings.setdefault(key, []).append(job)
    trajectories = sorted(by_settings.values(), key=lambda trajectory: trajectory[0].values["seed"])
    seeds = sorted({trajectory[0].values["seed"] for trajectory in trajectories})
    shuffle = bool(first.data.get("shuffle"))

    pl.seed_everything(seeds[0], verbose=False)
    datamodule = build(first, "data", seed=seeds[0])
    datamodule.member_seeds = seeds if shuffle else seeds[:1]
    weights, biases = [], []
    make_model = build(
        first, "model", _partial_=True, in_features=datamodule.num_features, out_features=datamodule.num_targets
    )
    for trajectory in trajectories:
        pl.seed_everything(trajectory[0].values["seed"], verbose=False)  # each member starts as its single run does
        model = make_model()
        weights.append(model.weight.detach())
        biases.append(model.bias.detach())
    optim = first.optim
    per_member = [member_settings(trajectory[0].values["optim"]) for trajectory in trajectories]
    factories = [scheduler_factory(trajectory[0].values.get("schedule") or {}) for trajectory in trajectories]
    lrs = [settings["lr"] for settings in per_member]
    module = MembersModule(
        torch.stack(weights),
        torch.stack(biases),
        optim._target_,
        {name: [settings[name] for settings in per_member] for name in per_member[0]},
        seed_of=[seeds.index(trajectory[0].values["seed"]) if shuffle else 0 for trajectory in trajectories],
        scaler=datamodule.scaler,
        nesterov=bool(optim.get("nesterov")),
        amsgrad=bool(optim.get("amsgrad")),
        schedules=MemberSchedules(lrs, factories) if any(factories) else None,
    )
    settings = [run_settings(trajectory[0].values, choices, datamodule) for trajectory in trajectories]
    recorder = GroupRecorder(
        trajectories, settings, type(model).__name__, progress, results, first.get("checkpoint_minutes")
    )
    max_epochs = max(job.values["trainer"]["max_epochs"] for job in jobs)
    trainer_cfg = OmegaConf.create({"trainer": {**first.trainer, "max_epochs": max_epochs}})
    trainer = make_trainer(trainer_cfg, Path(jobs[0].output_dir).parent, [recorder], logger=False)
    datamodule.check_memory(trainer)
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:  # Lightning exits after its shutdown on a signal that stops at once
        if not trainer.interrupted:
            raise
        stopping.note_interrupt()
    except BaseException:
        recorder.close_unfinished()
        raise
    finally:
        stopping.training_ended()
        stopping.install()  # Lightning leaves Ctrl-C ignored after its shutdown
    if stopping.requested():
        with stopping.whole():  # after a second signal, mid-epoch: no checkpoint to resume from
            recorder.finish_interrupted(trainer, module, checkpoints=not trainer.interrupted)
    return stopping.requested()
