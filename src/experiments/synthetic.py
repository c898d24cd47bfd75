"""`data=synthetic`: a linear regression of any size, for measuring speed and checking convergence.

The rows are generated from the seed on the device that trains, a block of rows at a time, so memory
holds the table and nothing more: `y = x @ true_weights.T + true_bias + noise * e`, with x and e
standard normal. The true weights are drawn first, on the CPU, so they are the same on every device
(the rows are not: CPU and GPU generators differ) and are logged with the run, to check it against.
"""

from dataclasses import dataclass

import torch

from experiments.tables import Table

BLOCK_ROWS = 1 << 18


@dataclass
class Synthetic:
    """The recipe for a synthetic table; `on(device, dtype)` makes it."""

    n: int
    num_features: int
    num_targets: int
    noise: float
    seed: int = 0

    @property
    def feature_names(self) -> list[str]:
        return [f"x{i}" for i in range(1, self.num_features + 1)]

    @property
    def target_names(self) -> list[str]:
        return [f"y{i}" for i in range(1, self.num_targets + 1)]

    def __len__(self) -> int:
        return self.n

    def nbytes(self, dtype: torch.dtype) -> int:
        """The memory the table takes as `dtype`."""
        return self.n * (self.num_features + self.num_targets) * torch.empty((), dtype=dtype).element_size()

    def true_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights (targets x features) and bias the data is generated from, standard normal, float64."""
        generator = torch.Generator().manual_seed(self.seed)
        weights = torch.randn(self.num_targets, self.num_features, generator=generator, dtype=torch.float64)
        return weights, torch.randn(self.num_targets, generator=generator, dtype=torch.float64)

    def on(self, device: torch.device, dtype: torch.dtype) -> Table:
        """Generate the table on `device` as `dtype`: drawn in float32 a block of rows at a time, so that the
        same seed gives the same rows in either precision."""
        weights, bias = (t.to(device, torch.float32) for t in self.true_weights())
        features = torch.empty(self.n, self.num_features, device=device, dtype=dtype)
        targets = torch.empty(self.n, self.num_targets, device=device, dtype=dtype)
        generator = torch.Generator(device=device).manual_seed(self.seed)
        for start in range(0, self.n, BLOCK_ROWS):
            rows = min(BLOCK_ROWS, self.n - start)
            x = torch.randn(rows, self.num_features, generator=generator, device=device)
            noise = torch.randn(rows, self.num_targets, generator=generator, device=device)
            features[start : start + rows] = x
            targets[start : start + rows] = torch.addmm(bias, x, weights.T).add_(noise, alpha=self.noise)
        return Table(features, targets, self.feature_names, self.target_names)
