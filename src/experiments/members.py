"""Many linear models trained as one: the members of a sweep group, stepped together.

Member `t` has its own weight `W[t]` (targets x features) and bias `b[t]`, its own learning rate
and optimizer settings, and sees the mini-batches of its own seed. One step computes every
member's mean squared error and its gradient in a few batched tensor operations (the gradient of
a linear model's MSE is `2/n * err^T [x 1]`, written out rather than taped), then applies each
member's update rule as `torch.optim`'s single-tensor SGD and Adam write it, with its settings as
tensors. Members never mix: each one's numbers are a single run's with its settings, to round-off.
"""

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from experiments import stopping
from experiments.landscape import WeightPath
from experiments.scaling import Scaler
from experiments.schedules import MemberSchedules

# The optimizers a group can train, by their config's _target_: the per-member settings each update
# reads, and the options that must be the same for a whole group. A job setting any other option trains alone.
BATCHED_OPTIMIZERS = {
    "experiments.optim.GradientDescent": (("lr",), ()),
    "torch.optim.SGD": (("lr", "momentum", "dampening", "weight_decay"), ("nesterov",)),
    "torch.optim.Adam": (("lr", "beta1", "beta2", "eps", "weight_decay"), ("amsgrad",)),
}


class MembersModule(pl.LightningModule):
    """`weight` (members x targets x features) and `bias` (members x targets), trained by each
    member's own update rule. `seed_of[t]` says which of the batches' seeds member `t` sees (fastest
    with the members in order of their seed, as many for each).
    `settings` holds each member's optimizer settings by name (see `BATCHED_OPTIMIZERS`); `schedules`,
    if any member has one, set each member's learning rate epoch by epoch."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        optimizer: str,
        settings: dict[str, list[float]],
        seed_of: list[int],
        scaler: Scaler | None = None,
        nesterov: bool = False,
        amsgrad: bool = False,
        schedules: MemberSchedules | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)
        self.optimizer, self.nesterov, self.amsgrad = optimizer, nesterov, amsgrad
        self.scaler, self.schedules = scaler, schedules
        self.settings = {
            name: torch.tensor(values, dtype=torch.float64)[:, None, None] for name, values in settings.items()
        }
        self.nonzero = {name for name, values in settings.items() if any(values)}
        # Made in on_train_start, on the device: the settings and what derives from them (1-beta1), in
        # the parameters' precision, and in float64 for what torch.optim computes in Python floats.
        self.as_params: dict[str, torch.Tensor] = {}
        self.as_float64: dict[str, torch.Tensor] = {}
        self.register_buffer("seed_of", torch.tensor(seed_of), persistent=False)
        counts = [seed_of.count(seed) for seed in range(max(seed_of) + 1)]
        # Members in order of their seed, as many for each: the batched product needs no gathered copies.
        self.seed_major = seed_of == sorted(seed_of) and len(set(counts)) == 1
        self.state: dict[str, torch.Tensor] = {}  # optimizer state, as for torch.optim: momentum_buffer, exp_avg, ...
        self.steps = 0
        self.epoch_loss_sum: torch.Tensor | None = None  # each member's sum of mini-batch losses this epoch
        self.epoch_steps = 0
        self.step_path: WeightPath | None = None  # where each step's weights go, when the path keeps every step

    def configure_optimizers(self) -> None:
        return None  # each member's update is applied in `_update`

    def on_train_start(self) -> None:
        """Each member's settings on the device, in the parameters' precision, each derived value
        (1 - beta1) computed in float64 first, as torch.optim computes it from Python floats."""
        self.as_float64 = {name: values.to(self.weight.device) for name, values in self.settings.items()}
        derived = dict(self.as_float64)
        for name in ("dampening", "beta1", "beta2"):
            if name in derived:
                derived[f"1-{name}"] = 1 - derived[name]
        self.as_params = {name: values.to(self.weight.dtype) for name, values in derived.items()}
        if self.schedules is not None:
            self._set_lrs(self.schedules.lrs)

    def lrs(self) -> list[float]:
        """Each member's learning rate in the current epoch."""
        return self.schedules.lrs if self.schedules is not None else self.settings["lr"].view(-1).tolist()

    def _set_lrs(self, lrs: list[float]) -> None:
        self.as_float64["lr"] = torch.tensor(lrs, dtype=torch.float64, device=self.weight.device)[:, None, None]
        self.as_params["lr"] = self.as_float64["lr"].to(self.weight.dtype)

    def on_train_epoch_start(self) -> None:
        if self.schedules is not None and self.steps:  # after the first epoch: the next one's rates
            self.schedules.step()
            self._set_lrs(self.schedules.lrs)
        # In float64: a single run adds up its steps' losses in float64 too, a bundle of steps at a time.
        self.epoch_loss_sum = torch.zeros(len(self.weight), dtype=torch.float64, device=self.weight.device)
        self.epoch_steps = 0

    @torch.no_grad()
    def training_step(self, bundle: Iterator[tuple[tuple[torch.Tensor, torch.Tensor], ...]], index: int) -> None:
        stopping.moment("step")
        for per_seed in bundle:
            weight_grad, bias_grad, losses = self._gradients(per_seed)
            self.epoch_loss_sum += losses.double()
            self.epoch_steps += 1
            self.steps += 1
            self._update(self.weight, weight_grad, "weight")
            self._update(self.bias, bias_grad[:, :, None], "bias")
            if self.step_path is not None:
                self.step_path.add(self.weight, self.bias)

    def _gradients(
        self, per_seed: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each member's gradient of its mean squared error, and that error as a single run
        reports it (in the data's units if standardized)."""
        members, targets, features = self.weight.shape
        seeds = len(per_seed)
        if self.seed_major:  # each seed's members side by side: one product per seed's batch, read once
            xs = per_seed[0][0][None] if seeds == 1 else torch.stack([x for x, _ in per_seed])
            ys = per_seed[0][1][None] if seeds == 1 else torch.stack([y for _, y in per_seed])
            width = members // seeds * targets
            weights = self.weight.view(seeds, width, features)
            predictions = torch.baddbmm(self.bias.view(seeds, 1, width), xs, weights.transpose(1, 2))
            rows = xs.shape[1]
            errors = predictions.view(seeds, rows, -1, targets) - ys[:, :, None, :]  # seed, row, member, target
            weight_grad = torch.bmm(errors.view(seeds, rows, width).transpose(1, 2), xs).view(
                members, targets, features
            )
            bias_grad = errors.sum(dim=1).view(members, targets)
            squared = errors.square().mean(dim=1).view(members, targets)
        else:  # uneven numbers of members per seed: each member's batch gathered for it
            xs = torch.stack([x for x, _ in per_seed])[self.seed_of]
            ys = torch.stack([y for _, y in per_seed])[self.seed_of]
            errors = torch.baddbmm(self.bias[:, None, :], xs, self.weight.transpose(1, 2)) - ys
            rows = xs.shape[1]
            weight_grad = torch.bmm(errors.transpose(1, 2), xs)
            bias_grad = errors.sum(dim=1)
            squared = errors.square().mean(dim=1)
        scale = 2.0 / (rows * targets)
        if self.scaler is not None:
            squared = squared * self.scaler.target_std.to(squared.dtype) ** 2
        return weight_grad * scale, bias_grad * scale, squared.mean(dim=1)

    def _update(self, parameter: torch.Tensor, grad: torch.Tensor, name: str) -> None:
        """One step of each member's optimizer on `parameter`, as `torch.optim` takes it.
        The bias arrives with a trailing axis, so the per-member settings broadcast over both."""
        view = parameter if parameter.dim() == 3 else parameter[:, :, None]
        if self.optimizer == "experiments.optim.GradientDescent":
            view -= grad * self.as_params["lr"]
        elif self.optimizer == "torch.optim.SGD":
            view -= self._sgd_direction(view, grad, name) * self.as_params["lr"]
        else:
            self._adam(view, grad, name)

    def _sgd_direction(self, parameter: torch.Tensor, grad: torch.Tensor, name: str) -> torch.Tensor:
        if "weight_decay" in self.nonzero:
            grad = grad + parameter * self.as_params["weight_decay"]
        if "momentum" not in self.nonzero:
            return grad
        key = f"{name}.momentum_buffer"
        buffer = self.state.get(key)
        if buffer is None:
            buffer = self.state[key] = grad.clone()
        else:
            buffer.mul_(self.as_params["momentum"]).add_(grad * self.as_params["1-dampening"])
        direction = grad + buffer * self.as_params["momentum"] if self.nesterov else buffer
        return torch.where(
            self.as_params["momentum"] == 0, grad, direction
        )  # torch.optim.SGD keeps no buffer at momentum 0

    def _adam(self, parameter: torch.Tensor, grad: torch.Tensor, name: str) -> None:
        if "weight_decay" in self.nonzero:
            grad = grad + parameter * self.as_params["weight_decay"]
        if f"{name}.exp_avg" not in self.state:
            self.state[f"{name}.exp_avg"] = torch.zeros_like(parameter)
            self.state[f"{name}.exp_avg_sq"] = torch.zeros_like(parameter)
            if self.amsgrad:
                self.state[f"{name}.max_exp_avg_sq"] = torch.zeros_like(parameter)
        exp_avg, exp_avg_sq = self.state[f"{name}.exp_avg"], self.state[f"{name}.exp_avg_sq"]
        step = self.steps
        k = self.as_params
        exp_avg.lerp_(grad, k["1-beta1"])
        exp_avg_sq.mul_(k["beta2"]).add_(grad * grad * k["1-beta2"])
        bias_correction1 = 1 - self.as_float64["beta1"] ** step
        bias_correction2_sqrt = (1 - self.as_float64["beta2"] ** step).sqrt()
        if self.amsgrad:
            maximum = self.state[f"{name}.max_exp_avg_sq"]
            torch.maximum(maximum, exp_avg_sq, out=maximum)
            exp_avg_sq = maximum
        denominator = exp_avg_sq.sqrt() / bias_correction2_sqrt.to(grad.dtype) + k["eps"]
        parameter -= exp_avg / denominator * (self.as_float64["lr"] / bias_correction1).to(grad.dtype)

    def member_optimizer_state(self, member: int) -> dict[str, dict[str, Any]]:
        """Member `member`'s optimizer state as `torch.optim`'s state_dict holds it: by parameter (0 weight, 1 bias)."""
        state: dict[int, dict[str, Any]] = {}
        if "momentum" in self.settings and self.settings["momentum"][member].item() == 0:
            return state  # torch.optim.SGD keeps no state without momentum
        for key, tensor in self.state.items():
            name, _, entry = key.partition(".")
            value = tensor[member] if name == "weight" else tensor[member, :, 0]
            state.setdefault(0 if name == "weight" else 1, {})[entry] = value.clone()
        if self.optimizer == "torch.optim.Adam":
            for entries in state.values():
                entries["step"] = torch.tensor(float(self.steps), dtype=self.weight.dtype)
        return state
