"""The tutorials' hand-made linear model."""

import torch
from torch import nn


class ScratchLinear(nn.Module):
    """Linear regression "from scratch", as in the tutorials: `w = torch.randn(out, in)`,
    `b = torch.randn(out)` (or zeros, as tutorial 003 starts it) and `x @ w.T + b`.

    The parameters are called `weight` and `bias`, like `torch.nn.Linear`'s, so the two models
    share state dicts and everything downstream (logging, checkpoints) treats them alike.
    """

    def __init__(self, in_features: int, out_features: int, bias_init: str = "randn") -> None:
        super().__init__()
        if bias_init not in ("randn", "zeros"):
            raise ValueError(f"bias_init must be 'randn' or 'zeros', not {bias_init!r}")
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features) if bias_init == "randn" else torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


# The model kinds a checkpoint may hold, by class name: predict.py rebuilds from these and nothing else.
MODEL_KINDS = {"Linear": nn.Linear, "ScratchLinear": ScratchLinear}
