"""The tutorials' hand-written update rule, Newton's method, and LBFGS made to reach float64's
round-off, as torch optimizers."""

from collections.abc import Iterable

import torch

from experiments.errors import UserError
from experiments.least_squares import dependent_column


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


class Newton(torch.optim.Optimizer):
    """Newton's method for a linear model's mean squared error: `[W b] -= lr * H⁻¹ ∇`, with H the exact
    Hessian of the loss on the whole training split and ∇ the batch's gradient. The loss is quadratic,
    so with lr 1 and full batches one step lands on the optimum, to the gradient's round-off (about
    eps · cond(design)² relative; a second step refines it).

    The parameters are a linear model's weight (targets x features) and bias (targets). The module
    hands over H with `set_hessian`, as the upper-triangular S with SᵀS = H for each target's
    [weights, bias]; a step solves with S twice (triangular solves), never forming SᵀS, whose
    condition number is the square of S's.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.0) -> None:
        super().__init__(params, {"lr": lr})
        self.hessian_factor: torch.Tensor | None = None

    def set_hessian(self, factor: torch.Tensor) -> None:
        if dependent_column(factor) is not None:
            raise UserError(
                "optim=newton needs features that are linearly independent in the training rows, but one is (to "
                "float64's precision) constant or a combination of the others, or the rows are too few: the loss's "
                "Hessian cannot be inverted. Leave such columns out with data.features=[...], or use optim=lbfgs."
            )
        self.hessian_factor = factor

    @torch.no_grad()
    def step(self, closure=None):
        if self.hessian_factor is None:
            raise RuntimeError("Newton.step needs the loss's Hessian first: call set_hessian")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            weight, bias = group["params"]
            gradient = torch.cat([weight.grad, bias.grad[:, None]], dim=1).T.double()  # (features + 1, targets)
            self.hessian_factor = factor = self.hessian_factor.to(gradient.device)
            step = torch.cholesky_solve(gradient, factor, upper=True).T * group["lr"]
            weight -= step[:, :-1].to(weight.dtype)
            bias -= step[:, -1].to(bias.dtype)
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
