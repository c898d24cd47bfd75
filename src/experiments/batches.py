"""Shuffled mini-batches served straight from one tensor on the training device.

A per-sample `DataLoader(TensorDataset)` collates every batch row by row, which at millions of rows
costs far more than the training step itself. Here an epoch is one seeded `randperm`,
and each mini-batch is gathered by it into one reused buffer just before its step: no second copy
of the data, and the gathered rows are still in cache when the step reads them.

Lightning's per-batch machinery costs more than a whole optimizer step on small data, so what
Lightning sees as one batch is a *bundle* of up to `STEPS_PER_BUNDLE` mini-batches, which
`RegressionModule.training_step` steps through in a plain loop.
"""

import math
from collections.abc import Iterator

import torch

STEPS_PER_BUNDLE = 256

Bundle = Iterator[tuple[torch.Tensor, torch.Tensor]]  # mini-batches of (features, targets)


class EpochBatches:
    """One epoch over `rows` (each `[features | targets]`) in mini-batches of `(x, y)` views,
    reshuffled on every `iter()`, served as bundles of up to `steps_per_bundle` mini-batches.
    Features and targets share one row so that a shuffled mini-batch is one gather, into a
    buffer that the next one overwrites: take each one's step before asking for the next.
    """

    def __init__(
        self,
        rows: torch.Tensor,
        num_features: int,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator,
        steps_per_bundle: int = STEPS_PER_BUNDLE,
    ) -> None:
        self.rows, self.num_features = rows, num_features
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        self.steps_per_bundle = steps_per_bundle
        self._buffer = rows.new_empty(batch_size, rows.shape[1]) if shuffle else None
        if self._buffer is not None:  # its views, made once: slicing anew every step costs more than the gather
            self._buffer_features, self._buffer_targets = self._buffer[:, :num_features], self._buffer[:, num_features:]

    @property
    def steps_per_epoch(self) -> int:
        """Mini-batches (optimizer steps) per epoch."""
        return math.ceil(len(self.rows) / self.batch_size)

    def __len__(self) -> int:
        """Bundles per epoch: the number of batches Lightning sees."""
        return math.ceil(self.steps_per_epoch / self.steps_per_bundle)

    def __iter__(self) -> Iterator[Bundle]:
        order = None
        if self.shuffle:  # int32 indices: half the memory traffic of int64, and a faster randperm
            dtype = torch.int32 if len(self.rows) < 2**31 else torch.int64
            order = torch.randperm(len(self.rows), generator=self.generator, device=self.rows.device, dtype=dtype)
        rows_per_bundle = self.batch_size * self.steps_per_bundle
        for start in range(0, len(self.rows), rows_per_bundle):
            yield self._bundle(order, start, min(start + rows_per_bundle, len(self.rows)))

    def _bundle(self, order: torch.Tensor | None, start: int, stop: int) -> Bundle:
        features = self.num_features
        for first in range(start, stop, self.batch_size):
            last = min(first + self.batch_size, stop)
            if order is None:
                batch = self.rows[first:last]
                yield batch[:, :features], batch[:, features:]
            elif last - first == self.batch_size:
                torch.index_select(self.rows, 0, order[first:last], out=self._buffer)
                yield self._buffer_features, self._buffer_targets
            else:  # the epoch's last, shorter mini-batch
                batch = torch.index_select(self.rows, 0, order[first:last], out=self._buffer[: last - first])
                yield batch[:, :features], batch[:, features:]


class MemberBatches:
    """The mini-batches of several seeds' shuffle orders at once, for a sweep group whose members
    differ in seed: each step is a tuple of one `(x, y)` per seed's `EpochBatches`."""

    def __init__(self, batches: list[EpochBatches]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches[0])

    def __iter__(self) -> Iterator[Iterator[tuple[tuple[torch.Tensor, torch.Tensor], ...]]]:
        return (zip(*bundles) for bundles in zip(*self.batches))
