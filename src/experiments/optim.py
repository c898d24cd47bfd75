"""The tutorials' hand-written update rule as a torch optimizer."""

from collections.abc import Iterable

import torch


class GradientDescent(torch.optim.Optimizer):
    """Exactly the tutorials' step, for any model:

        with torch.no_grad():
            w -= w.grad * lr
            w.grad.zero_()

    Unlike `torch.optim.SGD` it has no momentum, weight decay or other options: this is the
    update the notebooks write by hand, made pluggable so a Trainer can drive it.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p -= p.grad * group["lr"]
                    p.grad.zero_()
        return loss
