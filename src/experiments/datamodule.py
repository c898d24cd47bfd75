"""Regression data for Lightning: a table on the training device, its mini-batches and its Evaluator."""

import sys

import lightning.pytorch as pl
import torch

from experiments.batches import EpochBatches, MemberBatches
from experiments.csv_table import available_memory as _available_ram
from experiments.csv_table import read_csv
from experiments.errors import UserError
from experiments.evaluation import Evaluator
from experiments.least_squares import QRFactor
from experiments.scaling import Scaler
from experiments.synthetic import Synthetic
from experiments.tables import Table, builtin_table


class RegressionDataModule(pl.LightningDataModule):
    """A data source (a `Table`, or the recipe of a `Synthetic` one) as training batches on the
    device the Trainer trains on, and the `evaluator` that measures the model on it.

    The table is made in `setup`, once the device is known. `batch_size=None` is full-batch gradient
    descent, as in the tutorials' hand-written loops. `val_fraction` holds out a seeded random share
    of the rows. `standardize` trains on z-scores of the training split (`scaler`), `whiten` on its
    decorrelated z-scores (see `Scaler.whiten`); the evaluator measures in the data's units.
    """

    def __init__(
        self,
        source: Table | Synthetic,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        val_fraction: float = 0.0,
        standardize: bool = False,
        whiten: bool = False,
    ) -> None:
        super().__init__()
        self.source = source
        self.feature_names, self.target_names = source.feature_names, source.target_names
        self.val_fraction, self.seed = val_fraction, seed
        self.rows = len(source) - _val_rows(len(source), val_fraction)  # training rows
        self.batch_size = min(batch_size or self.rows, self.rows)
        self.shuffle = shuffle
        self.whiten = whiten  # standardizes too: the whitened features are decorrelated z-scores
        self.scaler = Scaler(self.num_features, self.num_targets, whiten) if standardize or whiten else None
        self.evaluator: Evaluator | None = None  # made in setup, with the data
        self.member_seeds: list[int] | None = None  # a sweep group's: one shuffle order for each

    @classmethod
    def from_builtin(cls, name: str, **kwargs) -> "RegressionDataModule":
        """A datamodule over one of the tutorials' tables (see `experiments.tables`)."""
        return cls(builtin_table(name), **kwargs)

    @classmethod
    def from_csv(
        cls, path: str, targets: list[str] | str, features: list[str] | None = None, **kwargs
    ) -> "RegressionDataModule":
        """A datamodule over a CSV file with a header row (see `experiments.csv_table`). A relative
        `path` is taken from the folder the command was run in."""
        from hydra.utils import to_absolute_path

        return cls(
            read_csv(to_absolute_path(path), _names(targets), None if features is None else _names(features)), **kwargs
        )

    @classmethod
    def from_synthetic(
        cls, n: int, num_features: int, num_targets: int, noise: float, seed: int = 0, **kwargs
    ) -> "RegressionDataModule":
        """A datamodule over a generated table (see `experiments.synthetic`), drawn from `seed`."""
        return cls(Synthetic(n, num_features, num_targets, noise, seed), seed=seed, **kwargs)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    @property
    def num_targets(self) -> int:
        return len(self.target_names)

    def setup(self, stage: str) -> None:
        """Make the table on the Trainer's device (float64 under `trainer.precision=64`), split and
        standardize (or whiten) it, build its evaluator, and keep the training rows as the model sees them."""
        device, dtype = placement(self.trainer)
        table, val_table = _split(self.source.on(device, dtype), self.val_fraction, self.seed)
        train_qr = QRFactor(table.features, table.targets)
        if self.scaler is not None:
            self.scaler.fit(table)
            if self.whiten:
                self.scaler.whiten(train_qr, self.feature_names)
            self.scaler.to(device)
        true_weights = self.source.true_weights() if isinstance(self.source, Synthetic) else None
        self.evaluator = Evaluator(table, val_table, self.scaler, true_weights, train_qr)
        warning = self.evaluator.conditioning_warning()
        if warning:
            print(warning, file=sys.stderr)
        self.train_rows = _joined(table, self.scaler)

    def check_memory(self, trainer: pl.Trainer) -> None:
        """Refuse, before anything is made or written, a synthetic table too big for the device's free
        memory (it is held twice while set-up makes the training rows)."""
        if not isinstance(self.source, Synthetic):
            return
        device, dtype = placement(trainer)
        needed = 2 * self.source.nbytes(dtype)
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else _available_ram()
        if free is not None and needed > 0.9 * free:
            raise UserError(
                f"the synthetic table needs about {needed / 2**30:.1f} GiB and the {device.type} has "
                f"{free / 2**30:.1f} GiB free; use a smaller data.n or data.num_features."
            )

    def train_dataloader(self) -> EpochBatches | MemberBatches:
        if self.member_seeds is None:
            return self._batches(self.seed)
        return MemberBatches([self._batches(seed) for seed in self.member_seeds])

    def _batches(self, seed: int) -> EpochBatches:
        generator = torch.Generator(device=self.train_rows.device).manual_seed(seed)
        return EpochBatches(self.train_rows, self.num_features, self.batch_size, self.shuffle, generator)

    def state_dict(self) -> dict:
        """What a checkpoint needs to be used on new inputs: the column names (the standardization
        statistics travel with the model)."""
        return {"feature_names": self.feature_names, "target_names": self.target_names}


def _names(columns) -> list[str]:
    """Column names as given on the command line: `[price]`, a lone `price`, or numbers like `[2020]`."""
    return [str(columns)] if isinstance(columns, (str, int, float)) else [str(name) for name in columns]


def _joined(table: Table, scaler: Scaler | None, block_rows: int = 1 << 18) -> torch.Tensor:
    """`[features | targets]` in one tensor, standardized if `scaler` is given, made a block of rows at a time."""
    rows = table.features.new_empty(len(table), table.features.shape[1] + table.targets.shape[1])
    for start in range(0, len(table), block_rows):
        x, y = table.features[start : start + block_rows], table.targets[start : start + block_rows]
        if scaler is not None:
            x, y = scaler.scale_features(x), scaler.scale_targets(y)
        torch.cat([x, y], dim=1, out=rows[start : start + block_rows])
    return rows


def _val_rows(rows: int, val_fraction: float) -> int:
    """How many of `rows` a `val_fraction` holds out: at least one, and never all."""
    if not val_fraction:
        return 0
    if rows < 2:
        raise UserError(
            f"data.val_fraction={val_fraction} needs at least 2 rows, one to train on and one to hold "
            f"out; the data has {rows}."
        )
    return min(max(round(rows * val_fraction), 1), rows - 1)


def _split(table: Table, val_fraction: float, seed: int) -> tuple[Table, Table | None]:
    """A seeded random split into training and validation rows; no split for a fraction of 0."""
    n_val = _val_rows(len(table), val_fraction)
    if not n_val:
        return table, None
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).to(table.features.device)
    val, train = order[:n_val].sort().values, order[n_val:].sort().values
    return (
        Table(table.features[train], table.targets[train], table.feature_names, table.target_names),
        Table(table.features[val], table.targets[val], table.feature_names, table.target_names),
    )


def placement(trainer: pl.Trainer | None) -> tuple[torch.device, torch.dtype]:
    """Where the data goes and as what: the Trainer's device, float64 under `trainer.precision=64`."""
    if trainer is None:
        return torch.device("cpu"), torch.float32
    return trainer.strategy.root_device, torch.float64 if str(trainer.precision).startswith("64") else torch.float32
