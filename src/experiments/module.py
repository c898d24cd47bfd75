"""The LightningModule: mean squared error on an injected model, stepped by an injected optimizer."""

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from experiments import stopping
from experiments.batches import Bundle
from experiments.landscape import WeightPath
from experiments.optim import Newton
from experiments.scaling import Scaler
from experiments.schedules import SchedulerFactory

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class RegressionModule(pl.LightningModule):
    """Trains `model` to minimise the mean squared error, the tutorials' loss
    (`torch.sum(diff * diff) / diff.numel()` is exactly `F.mse_loss`), with the optimizer that
    `make_optimizer` (the configured partial) builds over its parameters.

    `make_scheduler` (the configured schedule, if any) sets the learning rate of each epoch (see
    `experiments.schedules`).

    `settings` are what the run was set to do, recorded as its hyperparameters. With a `scaler`
    the model sees standardized batches, and `predict` and `original_weights` answer in the
    data's units. Each Lightning batch is a bundle of mini-batches (see
    `experiments.batches`) that `training_step` steps through in the tutorials' own loop: zero the
    gradients, forward, loss, backward, step.
    """

    def __init__(
        self,
        model: nn.Module,
        make_optimizer: OptimizerFactory | None = None,
        scaler: Scaler | None = None,
        settings: dict[str, Any] | None = None,
        make_scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        if settings is not None:  # what Lightning logs as the run's hparams (hparams.yaml, HPARAMS tab)
            self.save_hyperparameters(settings)
        self.automatic_optimization = False
        self.model = model
        self.make_optimizer = make_optimizer
        self.make_scheduler = make_scheduler
        self.scaler = scaler
        self.steps = 0  # optimizer steps taken
        self._needs_closure = False
        self._bundle_losses: list[torch.Tensor] = []  # this epoch's, one sum a bundle
        self._epoch_steps = 0
        self.step_path: WeightPath | None = None  # where each step's weights go, when the path keeps every step

    def __setattr__(self, name: str, value: Any) -> None:
        # Plain attributes skip nn.Module's search of parameters and submodules: Lightning sets one around every hook.
        if name in self.__dict__ and not isinstance(value, (torch.Tensor, nn.Module)):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Predictions in the data's units for features in the data's units."""
        if self.scaler is None:
            return self.model(features)
        return self.scaler.unscale_targets(self.model(self.scaler.scale_features(features)))

    def original_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's weight (targets x features) and bias in the data's units."""
        weight, bias = self.model.weight.detach(), self.model.bias.detach()
        return self.scaler.original_weights(weight, bias) if self.scaler is not None else (weight, bias)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer = self.make_optimizer(self.model.parameters())
        if isinstance(optimizer, Newton):  # the whole training split's curvature, which no batch gives
            optimizer.set_hessian(self.trainer.datamodule.evaluator.hessian_factor())
        self._needs_closure = _requires_closure(optimizer)
        if self.make_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.make_scheduler(optimizer)}

    def on_train_epoch_start(self) -> None:
        if self.make_scheduler is not None and self.steps:  # an epoch has trained, here or in the run this resumes
            self.lr_schedulers().step()
        self._bundle_losses, self._epoch_steps = [], 0

    def training_step(self, bundle: Bundle, bundle_index: int) -> None:
        # The raw optimizer and loss.backward(): Lightning's wrappers run hooks per step that cost more
        # than a whole small-data step, and nothing here needs them (one device, no AMP, no clipping).
        optimizer = self.optimizers(use_pl_optimizer=False)
        losses = []
        for features, targets in bundle:
            losses.append(self._step(optimizer, features, targets))
            if self.step_path is not None:
                self.step_path.add(self.model.weight, self.model.bias)
        if losses:  # one sum a bundle: adding up every step's loss as it comes costs a tensor op a step
            self._bundle_losses.append(torch.stack(losses).sum())
        self._epoch_steps += len(losses)
        self.steps += len(losses)
        stopping.moment("step")

    def _step(self, optimizer: torch.optim.Optimizer, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One optimizer step on one mini-batch; returns its loss before the step (see `_evaluate`).
        An optimizer whose step takes a closure (LBFGS) evaluates the loss as often as it needs."""
        if not self._needs_closure:
            _, reported = self._evaluate(optimizer, features, targets)
            optimizer.step()
            return reported
        first: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            loss, reported = self._evaluate(optimizer, features, targets)
            if not first:
                first.append(reported)
            return loss

        optimizer.step(closure)
        return first[0]

    def _evaluate(
        self, optimizer: torch.optim.Optimizer, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero the gradients, then the loss and its gradients; returns the loss to minimise and the
        loss to report (in the data's units if standardized: the mean over targets of each one's
        mean squared error)."""
        optimizer.zero_grad()
        predictions = self.model(features)
        loss = F.mse_loss(predictions, targets)
        loss.backward()
        if self.scaler is None:
            return loss, loss.detach()
        return loss, (((predictions.detach() - targets) ** 2).mean(dim=0) * self.scaler.target_std**2).mean()

    def mean_epoch_loss(self) -> float:
        """The epoch's mean mini-batch loss, in the data's units."""
        if not self._bundle_losses:
            return math.nan
        return sum(loss.item() for loss in self._bundle_losses) / self._epoch_steps

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["model_kind"] = type(self.model).__name__  # how predict.py rebuilds it, without running config
        checkpoint["steps"] = self.steps


def _requires_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `optimizer.step` must be given a closure that re-evaluates the loss (LBFGS)."""
    closure = inspect.signature(optimizer.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty
