"""Regression data for Lightning, served straight from tensors on the training device.

A per-sample `DataLoader(TensorDataset)` collates every batch row by row: at 2 million rows that
is tens of times slower than the training step itself. Here an epoch is one seeded `randperm`,
and each mini-batch is gathered by it into one reused buffer, just before its step: no second
copy of the data, and the gathered rows are still in cache when the step reads them.

Lightning's per-batch machinery (hooks, progress tracking) costs more than a whole optimizer
step on small data, so a Lightning batch here is a *chunk*: up to `STEPS_PER_CHUNK` mini-batches,
which `RegressionModule.training_step` steps through in a plain PyTorch loop.
"""

import math
from collections.abc import Iterator

import lightning.pytorch as pl
import torch

from experiments.csv_table import read_csv
from experiments.datasets import BUILTIN, Table, builtin
from experiments.errors import UserError
from experiments.reference import Moments, Reference, reference
from experiments.scaling import Scaler
from experiments.synthetic import Synthetic

STEPS_PER_CHUNK = 256
SAMPLE_ROWS = 2000  # rows kept for the picture of the fit

MiniBatches = Iterator[tuple[torch.Tensor, torch.Tensor]]


class Batches:
    """One pass over `rows`, each `[features | targets]`, in mini-batches of `(x, y)` views,
    reshuffled on every `iter()`, served as chunks of up to `steps_per_chunk` mini-batches (each
    chunk an iterator). Features and targets share one row so that a shuffled mini-batch is one
    gather, into a buffer that the next one overwrites: take each one's step before asking for the
    next, as a training loop does.
    """

    def __init__(self, rows: torch.Tensor, num_features: int, batch_size: int, shuffle: bool,
                 generator: torch.Generator, steps_per_chunk: int = STEPS_PER_CHUNK) -> None:
        self.rows, self.num_features = rows, num_features
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        self.steps_per_chunk = steps_per_chunk
        self._buffer: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        """Mini-batches per epoch."""
        return math.ceil(len(self.rows) / self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.steps / self.steps_per_chunk)

    def __iter__(self) -> Iterator[MiniBatches]:
        order = None
        if self.shuffle:  # int32 indices: half the memory traffic of int64, and a faster randperm
            dtype = torch.int32 if len(self.rows) < 2**31 else torch.int64
            order = torch.randperm(len(self.rows), generator=self.generator, device=self.rows.device, dtype=dtype)
        rows_per_chunk = self.batch_size * self.steps_per_chunk
        for start in range(0, len(self.rows), rows_per_chunk):
            yield self._mini_batches(order, start, min(start + rows_per_chunk, len(self.rows)))

    def _mini_batches(self, order: torch.Tensor | None, start: int, stop: int) -> MiniBatches:
        for first in range(start, stop, self.batch_size):
            last = min(first + self.batch_size, stop)
            if order is None:
                batch = self.rows[first:last]
            else:
                if self._buffer is None:
                    self._buffer = self.rows.new_empty(self.batch_size, self.rows.shape[1])
                batch = torch.index_select(self.rows, 0, order[first:last], out=self._buffer[:last - first])
            yield batch[:, :self.num_features], batch[:, self.num_features:]


class RegressionDataModule(pl.LightningDataModule):
    """A data source (a `Table`, or the recipe of a `Synthetic` one) as training batches on the
    device the Trainer trains on, with the closed-form optimum of the training rows (`reference`).

    The table is made in `setup`, once the device is known. `batch_size=None` is full-batch gradient
    descent, as in the tutorials' hand-written loops. `val_fraction` holds out a seeded random share
    of the rows; `table` is then the training split. `standardize` trains on z-scores of the training
    split (`scaler`); `features` and `targets` stay in the data's units, for measuring, while the
    batches are standardized.
    """

    def __init__(self, source: Table | Synthetic, batch_size: int | None = None, shuffle: bool = False,
                 seed: int = 0, val_fraction: float = 0.0, standardize: bool = False) -> None:
        super().__init__()
        self.source = source
        self.feature_names, self.target_names = source.feature_names, source.target_names
        self.val_fraction, self.seed = val_fraction, seed
        train_rows = len(source) - _val_rows(len(source), val_fraction)
        self.batch_size = min(batch_size or train_rows, train_rows)
        self.shuffle = shuffle
        self.scaler = Scaler(self.num_features, self.num_targets) if standardize else None
        self.rows = train_rows
        self.reference: Reference | None = None  # made in setup, with the data

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

    @classmethod
    def from_synthetic(cls, n: int, num_features: int, num_targets: int, noise: float, seed: int = 0,
                       **kwargs) -> "RegressionDataModule":
        """A datamodule over a generated table (see `experiments.synthetic`), drawn from `seed`."""
        return cls(Synthetic(n, num_features, num_targets, noise, seed), seed=seed, **kwargs)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    @property
    def num_targets(self) -> int:
        return len(self.target_names)

    def setup(self, stage: str) -> None:
        """Make the table on the Trainer's device, in float64 under `trainer.precision=64`, split it,
        standardize it and summarise it (`moments`, `reference`); keep the training rows as the
        model sees them, and a sample of them for the picture of the fit."""
        device, dtype = placement(self.trainer)
        table, val_table = _split(self.source.on(device, dtype), self.val_fraction, self.seed)
        self.rows = len(table)
        if self.scaler is not None:
            self.scaler.fit(table).to(device)
        self.moments = Moments(table.features, table.targets)
        self.val_moments = Moments(val_table.features, val_table.targets) if val_table is not None else None
        stats = (self.scaler.feature_mean, self.scaler.feature_std) if self.scaler is not None else ()
        self.reference = reference(self.moments, *stats)
        sample = spread_rows(len(table), SAMPLE_ROWS).to(device)
        self.sample = Table(table.features[sample], table.targets[sample], table.feature_names, table.target_names)
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
            raise UserError(f"the synthetic table needs about {needed / 2**30:.1f} GiB and the {device.type} has "
                            f"{free / 2**30:.1f} GiB free; use a smaller data.n or data.num_features.")

    def train_dataloader(self) -> Batches:
        generator = torch.Generator(device=self.train_rows.device).manual_seed(self.seed)
        return Batches(self.train_rows, self.num_features, self.batch_size, self.shuffle, generator)

    def state_dict(self) -> dict:
        """What a checkpoint needs to be used on new inputs: the column names (the standardization
        statistics travel with the model)."""
        return {"feature_names": self.feature_names, "target_names": self.target_names}


def _names(columns) -> list[str]:
    """Column names as given on the command line: `[price]`, a lone `price`, or numbers like `[2020]`."""
    return [str(columns)] if isinstance(columns, (str, int, float)) else [str(name) for name in columns]


def _joined(table: Table, scaler: Scaler | None, chunk_rows: int = 1 << 18) -> torch.Tensor:
    """`[features | targets]` in one tensor, standardized if `scaler` is given, made a chunk at a time."""
    rows = table.features.new_empty(len(table), table.features.shape[1] + table.targets.shape[1])
    for start in range(0, len(table), chunk_rows):
        x, y = table.features[start:start + chunk_rows], table.targets[start:start + chunk_rows]
        if scaler is not None:
            x, y = scaler.scale_features(x), scaler.scale_targets(y)
        torch.cat([x, y], dim=1, out=rows[start:start + chunk_rows])
    return rows


def _val_rows(rows: int, val_fraction: float) -> int:
    """How many of `rows` a `val_fraction` holds out: at least one, and never all."""
    if not val_fraction:
        return 0
    if rows < 2:
        raise UserError(f"data.val_fraction={val_fraction} needs at least 2 rows, one to train on and one to hold "
                        f"out; the data has {rows}.")
    return min(max(round(rows * val_fraction), 1), rows - 1)


def _split(table: Table, val_fraction: float, seed: int) -> tuple[Table, Table | None]:
    """A seeded random split into training and validation rows; no split for a fraction of 0."""
    n_val = _val_rows(len(table), val_fraction)
    if not n_val:
        return table, None
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).to(table.features.device)
    val, train = order[:n_val].sort().values, order[n_val:].sort().values
    return (Table(table.features[train], table.targets[train], table.feature_names, table.target_names),
            Table(table.features[val], table.targets[val], table.feature_names, table.target_names))


def spread_rows(rows: int, count: int) -> torch.Tensor:
    """Indices of up to `count` of `rows` rows spread evenly from the first to the last (all of
    them if there are no more); whole-number arithmetic, exact at any size."""
    count = min(rows, count)
    return torch.arange(count, dtype=torch.int64) * (rows - 1) // max(count - 1, 1)


def placement(trainer: pl.Trainer | None) -> tuple[torch.device, torch.dtype]:
    """Where the data goes and as what: the Trainer's device, float64 under `trainer.precision=64`."""
    if trainer is None:
        return torch.device("cpu"), torch.float32
    return trainer.strategy.root_device, torch.float64 if str(trainer.precision).startswith("64") else torch.float32


def _available_ram() -> int | None:
    """The memory the system can give without swapping (Linux's MemAvailable); None elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return kib * 1024
