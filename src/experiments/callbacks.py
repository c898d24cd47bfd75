"""What a run does once per epoch besides training: measure, stop on divergence, draw, show progress."""

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from tqdm.auto import tqdm

from experiments import stopping
from experiments.evaluation import Evaluator
from experiments.files import write_whole
from experiments.landscape import WeightPath, every_step, landscape_record
from experiments.module import RegressionModule

if TYPE_CHECKING:
    from experiments.logger import EpochLogger


class EpochRecorder(pl.Callback):
    """Measures the model on the whole training set before training and after every epoch (the
    number the tutorials print) with the data's `Evaluator`, and logs it beside the least-squares
    optimum, their ratio, the epoch's mean mini-batch loss, the held-out loss and every weight and
    bias by name (`weights/apples/temp`, `weights/apples/bias`). At the end, or when stopped, logs the
    run's settings and how it ended (TensorBoard's HPARAMS tab, whose metrics are the last epoch's).

    It also stops the fit at the end of the epoch in which a signal arrived (`experiments.stopping`),
    saves a checkpoint every `checkpoint_minutes`, and continues a `resumed` checkpoint: what it
    has measured and the shuffle's random state travel in the checkpoint as its `state_dict`.
    """

    def __init__(self, resumed: dict[str, Any] | None = None, checkpoint_minutes: float | None = None) -> None:
        state = resumed["callbacks"]["EpochRecorder"] if resumed else {}
        self.earlier_seconds = state.get("seconds", 0.0)  # of the fits this one continues
        # The whole-data loss: [0] before training, [e] after epoch e.
        self.losses: list[float] = list(state.get("losses", []))
        self.val_loss: float | None = state.get("val_loss")  # on the held-out rows, after the last epoch
        self.train_seconds = state.get("train_seconds", 0.0)  # in the epochs, with their measuring and logging
        self.first_epoch = max(len(self.losses) - 1, 0)  # the epoch this fit starts after
        # The weights' path (see experiments.landscape); None when continuing a checkpoint made before paths were kept.
        self.path = WeightPath(state.get("path")) if state.get("path") is not None or not state else None
        self._resumed = resumed
        self._checkpoint_seconds = 60 * checkpoint_minutes if checkpoint_minutes else math.inf
        self._epoch_started = 0.0
        self._final_logged = False
        self.started = False  # training has started: the fit got past Lightning's set-up

    @property
    def epochs(self) -> int:
        """Epochs trained so far, in this fit and any before it that it resumes."""
        return len(self.losses) - 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "losses": self.losses,
            "val_loss": self.val_loss,
            "train_seconds": self.train_seconds,
            "seconds": self.earlier_seconds + time.perf_counter() - self._fit_started,
            "generator": self._generator.get_state(),
            "path": self.path.state(self._parameters()) if self.path is not None else None,
        }

    def _parameters(self) -> torch.Tensor:
        """The model's `[W | b]` now."""
        model = self._module.model
        return torch.cat([model.weight.detach(), model.bias.detach()[:, None]], dim=1)

    def landscape(self) -> dict[str, Any] | None:
        """What landscape.json records of the run: its path on the loss surface (None if not recorded)."""
        if self.path is None or not self.path.count:
            return None
        state = self.path.state(self._parameters())
        return landscape_record(
            self._plane, state["indices"], state["parameters"], self._evaluator.target_names, self._each
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        self.started = True
        stopping.training_started()  # also in place of Lightning's SIGTERM handler, which ends a fit with an error
        self._evaluator = evaluator = trainer.datamodule.evaluator
        self._generator = trainer.train_dataloader.generator
        self._meter = evaluator.meter(pl_module.model.weight[None], pl_module.model.bias[None])
        self._plane = evaluator.plane()
        datamodule = trainer.datamodule
        self._each = "step" if every_step(math.ceil(datamodule.rows / datamodule.batch_size)) else "epoch"
        pl_module.step_path = self.path if self._each == "step" else None
        self._module = pl_module
        self._tags = weight_tags("weights", evaluator.feature_names, evaluator.target_names)
        self._save_after = time.monotonic() + self._checkpoint_seconds
        self._fit_started = time.perf_counter()
        if self._resumed:
            self._continue(trainer, pl_module)
        else:
            trainer.logger.log_layout(evaluator.target_names, held_out=bool(datamodule.val_fraction))
            log_true_weights(trainer.logger, evaluator)
            self._record(trainer, pl_module, epoch=0)
        stopping.moment("fit_start")

    def _continue(self, trainer: pl.Trainer, module: RegressionModule) -> None:
        """Where the resumed checkpoint left off: its weights (loaded now that the model has the
        Trainer's precision, so that float64 weights are not rounded through float32), optimizer
        state, steps and random state, and TensorBoard and the history without what they logged after it."""
        resumed = self._resumed
        state = {
            name.removeprefix("model."): t for name, t in resumed["state_dict"].items() if name.startswith("model.")
        }
        module.model.load_state_dict(state)
        module.steps = resumed["steps"]
        trainer.optimizers[0].load_state_dict(resumed["optimizer_states"][0])
        for config, state in zip(trainer.lr_scheduler_configs, resumed.get("lr_schedulers", [])):
            config.scheduler.load_state_dict(state)
        self._generator.set_state(resumed["callbacks"]["EpochRecorder"]["generator"])
        trainer.logger.continue_from(self.first_epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        self._record(trainer, pl_module, self.epochs + 1)  # reading waits for the device to finish
        self.train_seconds += time.perf_counter() - self._epoch_started
        stopping.moment("epoch_end")
        if stopping.requested():
            trainer.should_stop = True
        elif time.monotonic() >= self._save_after:
            trainer.logger.write_pending()  # every epoch up to the checkpoint's is on disk, for resume=
            trainer.logger.write_history()
            trainer.save_checkpoint(Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt", weights_only=False)
            self._save_after = time.monotonic() + self._checkpoint_seconds

    def _record(self, trainer: pl.Trainer, module: RegressionModule, epoch: int) -> None:
        (values,), (losses,) = self._meter.read()
        self.losses.append(losses[0])
        if self.path is not None and (epoch == 0 or self._each == "epoch"):  # else the module adds each step
            self.path.add(module.model.weight, module.model.bias)
        if len(losses) > 1:
            self.val_loss = losses[1]
        train_loss = module.mean_epoch_loss() if epoch > 0 else None
        # The epoch's own rate: a schedule steps at the start of the next one (see experiments.schedules).
        lr = trainer.optimizers[0].param_groups[0]["lr"] if epoch > 0 else None
        metrics = epoch_metrics(self._tags, values, losses, self._evaluator, train_loss, lr)
        trainer.logger.log_metrics(metrics, step=epoch)

    def _log_final(self, trainer: pl.Trainer, module: RegressionModule, interrupted: bool) -> None:
        """The epochs not yet written, waited for as part of training, then the run's settings and how it ended."""
        if self._final_logged:
            return
        self._final_logged = True
        started = time.perf_counter()
        trainer.logger.write_last()
        trainer.logger.write_pending()
        self.train_seconds += time.perf_counter() - started
        status = "diverged" if diverged(self.losses[-1], self.losses[0]) else "interrupted" if interrupted else "ok"
        trainer.logger.log_session(module.hparams, status, step=self.epochs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        stopped = stopping.requested() and trainer.current_epoch < trainer.max_epochs
        self._log_final(trainer, pl_module, interrupted=stopped)

    def on_exception(self, trainer: pl.Trainer, pl_module: RegressionModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and self.losses:
            self._log_final(trainer, pl_module, interrupted=True)


def log_true_weights(logger: "EpochLogger", evaluator: Evaluator) -> None:
    """Synthetic data: log the weights training should find (`true/weights/...`) at step 0."""
    if evaluator.true_weights is None:
        return
    true = torch.cat([evaluator.true_weights[0], evaluator.true_weights[1][:, None]], dim=1)
    tags = weight_tags("true/weights", evaluator.feature_names, evaluator.target_names)
    logger.log_metrics(dict(zip(tags, true.view(-1).tolist())), step=0)


def epoch_metrics(
    tags: list[str],
    values: list[float],
    losses: list[float],
    evaluator: Evaluator,
    train_loss: float | None,
    lr: float | None = None,
) -> dict[str, float]:
    """What TensorBoard shows of a model after an epoch: its weights by name, its loss on the whole
    training set beside the optimum and their ratio, its epoch's mean mini-batch loss (`train_loss`,
    none before training), its held-out loss (the second of `losses`, if there are held-out rows)
    and the learning rate it trained with (`lr`, none before training)."""
    metrics = dict(zip(tags, values))
    metrics["train/full_loss"] = losses[0]
    metrics["train/optimal_loss"] = evaluator.optimum.loss
    metrics["train/loss_ratio"] = evaluator.ratio(losses[0])
    if train_loss is not None:
        metrics["train/loss"] = train_loss
    if len(losses) > 1:
        metrics["val/loss"] = losses[1]
    if lr is not None:
        metrics["train/lr"] = lr
    return metrics


def diverged(loss: float, initial_loss: float) -> bool:
    """Whether a loss has stopped being finite or grown to `StopOnDivergence.GROWTH` times its value before training."""
    return not math.isfinite(loss) or loss > StopOnDivergence.GROWTH * initial_loss


class StopOnDivergence(pl.Callback):
    """Ends training at the epoch whose loss stops being finite or grows to `GROWTH` times its value
    before training: a diverged run is a result. (With a stable learning rate the loss never comes
    near that; with a slightly too large one it grows geometrically and would take many epochs to
    overflow.)"""

    GROWTH = 1e3

    def __init__(self, recorder: EpochRecorder) -> None:
        self.recorder = recorder
        self.diverged_at_epoch: int | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if diverged(self.recorder.losses[-1], self.recorder.losses[0]):
            self.diverged_at_epoch = self.recorder.epochs
            trainer.should_stop = True


class RunPictures(pl.Callback):
    """At the end of a run, the picture of its fit (`fit` in TensorBoard's IMAGES tab; not for a run
    that diverged) and of its path on the loss surface (`landscape`, also landscape.png)."""

    def __init__(self, divergence: StopOnDivergence) -> None:
        self.divergence = divergence

    @torch.no_grad()
    def on_train_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        stopping.moment("fit_picture")
        from experiments.figures import fit_figure  # matplotlib is imported only here

        recorder = self.divergence.recorder
        if self.divergence.diverged_at_epoch is None:
            sample = trainer.datamodule.evaluator.sample
            figure = fit_figure(
                sample.features,
                sample.targets,
                pl_module.predict(sample.features),
                sample.feature_names,
                sample.target_names,
            )
            trainer.logger.experiment.add_figure("weights/fit", figure, global_step=recorder.epochs)
        landscape = recorder.landscape()
        if landscape is not None:
            draw_landscape(trainer.logger, Path(trainer.default_root_dir), landscape, recorder.epochs)


def draw_landscape(logger: "EpochLogger", run_dir: Path, landscape: dict[str, Any], epoch: int) -> None:
    """The run's path on its loss surface: landscape.png in `run_dir`, and `weights/landscape` in TensorBoard."""
    from experiments.figures import landscape_figure, png_of

    figure = landscape_figure(
        [("", landscape)],
        title=f"The path of the weights on the loss surface ({epoch} epoch{'s' if epoch != 1 else ''})",
    )
    png = png_of(figure)  # drawn once for both
    write_whole(run_dir / "landscape.png", png)
    logger.experiment.add_png("weights/landscape", png, global_step=epoch)


def weight_tags(prefix: str, feature_names: list[str], target_names: list[str]) -> list[str]:
    """Tags for `[w_1 ... w_f, b]` of each target in turn: `{prefix}/{target}/{feature}`, then
    `{prefix}/{target}/bias` (`(bias)` where a feature is called bias)."""
    bias = "(bias)" if "bias" in feature_names else "bias"
    return [f"{prefix}/{target}/{name}" for target in target_names for name in [*feature_names, bias]]


class EpochProgressBar(pl.callbacks.ProgressBar):
    """One bar over the epochs, showing the whole-data loss. Lightning's default bar redraws
    per step, which on the tutorials' data (one to three steps an epoch) is mostly flicker."""

    def __init__(self, recorder: EpochRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        first = self.recorder.first_epoch
        self.bar = tqdm(
            initial=first,
            total=first + trainer.max_epochs,
            desc="Training",
            unit="epoch",
            disable=not self.enabled,
            dynamic_ncols=True,
            leave=False,
            bar_format="{l_bar}{bar}| {n:.6g}/{total} epochs [{elapsed}<{remaining}{postfix}]",
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Big data: move through the epoch a bundle of mini-batches at a time."""
        if batch_idx + 1 < trainer.num_training_batches:
            self.bar.update(self.recorder.epochs + (batch_idx + 1) / trainer.num_training_batches - self.bar.n)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.set_postfix_str(f"loss {self.recorder.losses[-1]:.5g}", refresh=False)
        self.bar.update(self.recorder.epochs - self.bar.n)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.bar is not None:
            self.bar.close()  # the line the error is printed on is the bar's
