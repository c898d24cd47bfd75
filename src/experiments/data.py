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
from experiments.scaling import Scaler


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
    `val_fraction` holds out a seeded random share of the rows; `table` is then the training split.
    `standardize` trains on z-scores computed from the training split (`scaler`); `features` and
    `targets` stay in the data's units, for measuring, while the batches are standardized.
    """

    def __init__(self, table: Table, batch_size: int | None = None, shuffle: bool = False, seed: int = 0,
                 val_fraction: float = 0.0, standardize: bool = False) -> None:
        super().__init__()
        self.table, self.val_table = _split(table, val_fraction, seed)
        self.batch_size = min(batch_size or len(self.table), len(self.table))
        self.shuffle = shuffle
        self.seed = seed
        self.scaler = Scaler.fit(self.table) if standardize else None
        self.features, self.targets = self.table.features, self.table.targets
        self.val_features = self.val_targets = None

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

        return cls(read_csv(to_absolute_path(path), _names(targets), None if features is None else _names(features)),
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
        if self.val_table is not None:
            self.val_features = self.val_table.features.to(device, dtype)
            self.val_targets = self.val_table.targets.to(device, dtype)
        self.train_features, self.train_targets = self.features, self.targets
        if self.scaler is not None:
            self.scaler.to(device)
            self.train_features = self.scaler.scale_features(self.features)
            self.train_targets = self.scaler.scale_targets(self.targets)

    def train_dataloader(self) -> Batches:
        generator = torch.Generator(device=self.features.device).manual_seed(self.seed)
        return Batches(self.train_features, self.train_targets, self.batch_size, self.shuffle, generator)

    def state_dict(self) -> dict:
        """What a checkpoint needs to be used on new inputs: the column names (the standardization
        statistics travel with the model)."""
        return {"feature_names": self.table.feature_names, "target_names": self.table.target_names}


def _names(columns) -> list[str]:
    """Column names as given on the command line: `[price]`, a lone `price`, or numbers like `[2020]`."""
    return [str(columns)] if isinstance(columns, (str, int, float)) else [str(name) for name in columns]


def _split(table: Table, val_fraction: float, seed: int) -> tuple[Table, Table | None]:
    """A seeded random split into training and validation rows; no split for a fraction of 0."""
    if not val_fraction:
        return table, None
    if len(table) < 2:
        raise UserError(f"data.val_fraction={val_fraction} needs at least 2 rows, one to train on and one to hold "
                        f"out; the data has {len(table)}.")
    n_val = min(max(round(len(table) * val_fraction), 1), len(table) - 1)
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val].sort().values, order[n_val:].sort().values
    return (Table(table.features[train], table.targets[train], table.feature_names, table.target_names),
            Table(table.features[val], table.targets[val], table.feature_names, table.target_names))
