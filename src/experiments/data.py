"""Regression data for Lightning, served straight from tensors in memory.

A per-sample `DataLoader(TensorDataset)` collates every batch row by row: at 2 million
rows that is tens of times slower than the training step itself. Here an epoch is one
seeded `randperm` gather into a reused buffer, then contiguous slices of it.
"""

import math
from collections.abc import Iterator

import lightning.pytorch as pl
import torch

from experiments.csv_table import read_csv
from experiments.datasets import BUILTIN, Table, builtin
from experiments.errors import UserError


class Batches:
    """One pass over `(features, targets)` in mini-batches, reshuffled on every `iter()`."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor, batch_size: int, shuffle: bool,
                 generator: torch.Generator) -> None:
        self.features, self.targets = features, targets
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.features) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        features, targets = self.features, self.targets
        if self.shuffle:
            if self._buffers is None:
                self._buffers = (torch.empty_like(features), torch.empty_like(targets))
            order = torch.randperm(len(features), generator=self.generator, device=features.device)
            features = torch.index_select(self.features, 0, order, out=self._buffers[0])
            targets = torch.index_select(self.targets, 0, order, out=self._buffers[1])
        for start in range(0, len(features), self.batch_size):
            yield features[start:start + self.batch_size], targets[start:start + self.batch_size]


class RegressionDataModule(pl.LightningDataModule):
    """A `Table` as training batches, moved once to the device the Trainer trains on.

    `batch_size=None` is full-batch gradient descent, as in the tutorials' hand-written loops.
    """

    def __init__(self, table: Table, batch_size: int | None = None, shuffle: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.table = table
        self.batch_size = min(batch_size or len(table), len(table))
        self.shuffle = shuffle
        self.seed = seed
        self.features, self.targets = table.features, table.targets

    @classmethod
    def from_builtin(cls, name: str, **kwargs) -> "RegressionDataModule":
        """A datamodule over one of the tutorials' tables (see `experiments.datasets`)."""
        if name not in BUILTIN:
            raise UserError(f"data.name={name!r} is not a built-in data set; choose one of {sorted(BUILTIN)}.")
        return cls(builtin(name), **kwargs)

    @classmethod
    def from_csv(cls, path: str, targets: list[str], features: list[str] | None = None,
                 **kwargs) -> "RegressionDataModule":
        """A datamodule over a CSV file with a header row (see `experiments.csv_table`). A relative
        `path` is taken from the folder the command was run in."""
        from hydra.utils import to_absolute_path

        return cls(read_csv(to_absolute_path(path), list(targets), None if features is None else list(features)),
                   **kwargs)

    @property
    def num_features(self) -> int:
        return self.table.features.shape[1]

    @property
    def num_targets(self) -> int:
        return self.table.targets.shape[1]

    def setup(self, stage: str) -> None:
        """Put the data on the Trainer's device, in float64 under `trainer.precision=64`."""
        device, dtype = torch.device("cpu"), torch.float32
        if self.trainer is not None:
            device = self.trainer.strategy.root_device
            dtype = torch.float64 if str(self.trainer.precision).startswith("64") else torch.float32
        self.features = self.table.features.to(device, dtype)
        self.targets = self.table.targets.to(device, dtype)

    def train_dataloader(self) -> Batches:
        generator = torch.Generator(device=self.features.device).manual_seed(self.seed)
        return Batches(self.features, self.targets, self.batch_size, self.shuffle, generator)
