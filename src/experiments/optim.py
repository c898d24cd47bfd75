"""The tutorials' hand-written update rule, and LBFGS made to reach float64's round-off, as torch optimizers."""

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


class LBFGS(torch.optim.LBFGS):
    """`torch.optim.LBFGS`, minimizing the loss times `float32's eps / the parameters' eps` (2^29 in
    float64, 1 in float32): a power of two, so the arithmetic is exact and only the scale changes.

    torch keeps a curvature pair (s, y) only if yᵀs > 1e-10, in the loss's own units: a threshold that
    suits float32's round-off. In float64, near the optimum of badly conditioned data (polynomial
    features), every new pair falls below it, LBFGS stops learning the curvature and crawls, its loss
    stuck near 1e-6 of the targets' variance. Scaled, the threshold stands at float64's round-off.
    """

    @torch.no_grad()
    def step(self, closure):
        dtype = self.param_groups[0]["params"][0].dtype
        scale = torch.finfo(torch.float32).eps / torch.finfo(dtype).eps

        def scaled_closure() -> torch.Tensor:
            loss = closure()
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(scale)
            return loss * scale

        return super().step(scaled_closure) / scale
