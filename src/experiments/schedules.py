"""Learning-rate schedules (the `schedule` config group): a `torch.optim.lr_scheduler` class over the
run's optimizer, stepped once per epoch.

The scheduler steps at the start of every epoch after the first rather than at the end of each: the
rate is the same, and a checkpoint taken after an epoch then holds the optimizer and the scheduler
as that epoch used them, so a resumed run's first step is the one the uninterrupted run takes next.
A sweep group gives each member its own scheduler over a stand-in optimizer holding only the
member's learning rate: the same Python float arithmetic as its single run, so the same rates, bit for bit.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.utils import get_class
from torch.optim.lr_scheduler import LRScheduler

SchedulerFactory = Callable[[torch.optim.Optimizer], LRScheduler]

# The schedules a sweep group can step member by member, by their config's _target_ (None: a constant
# rate): each reads and sets nothing but its optimizer's learning rate and its own count of epochs.
BATCHED_SCHEDULES = {
    None,
    "torch.optim.lr_scheduler.StepLR",
    "torch.optim.lr_scheduler.ExponentialLR",
    "torch.optim.lr_scheduler.CosineAnnealingLR",
    "torch.optim.lr_scheduler.LinearLR",
}


def scheduler_factory(schedule: Mapping[str, Any]) -> SchedulerFactory | None:
    """A `schedule` config as the partial Hydra would make of it, called with an optimizer; None for a constant rate."""
    if schedule.get("_target_") is None:
        return None
    options = {key: value for key, value in schedule.items() if not key.startswith("_")}
    return functools.partial(get_class(schedule["_target_"]), **options)


class MemberSchedules:
    """Each member's learning rate, epoch by epoch, from its own scheduler (None: a constant rate)
    over a stand-in optimizer that holds just that rate."""

    def __init__(self, lrs: list[float], factories: list[SchedulerFactory | None]) -> None:
        self.optimizers = [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr) for lr in lrs]
        self.schedulers = [make(opt) if make else None for make, opt in zip(factories, self.optimizers)]
        for optimizer in self.optimizers:
            optimizer.step()  # a step of nothing (no gradients): torch warns of a scheduler stepped first

    @property
    def lrs(self) -> list[float]:
        """Each member's learning rate in the current epoch."""
        return [optimizer.param_groups[0]["lr"] for optimizer in self.optimizers]

    def step(self) -> None:
        for scheduler in self.schedulers:
            if scheduler is not None:
                scheduler.step()

    def param_group(self, member: int) -> dict[str, float]:
        """Member `member`'s `lr` and (once scheduled) `initial_lr`, as its optimizer's param group holds them."""
        group = self.optimizers[member].param_groups[0]
        return {key: group[key] for key in ("lr", "initial_lr") if key in group}

    def state_dicts(self, member: int) -> list[dict[str, Any]]:
        """Member `member`'s scheduler state, as a single run's checkpoint holds it under `lr_schedulers`."""
        scheduler = self.schedulers[member]
        return [] if scheduler is None else [scheduler.state_dict()]
