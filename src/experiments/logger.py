"""TensorBoard logging at one event per epoch, written on the logger's own schedule."""

import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path

import google_crc32c
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer import record_writer


def masked_crc32c(data: bytes) -> int:
    """The checksum of a TensorBoard record, as TensorBoard's own `masked_crc32c`, but computed in C."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# TensorBoard's writer checksums every record in pure Python, which costs more than a small-data step.
record_writer.masked_crc32c = masked_crc32c


class EpochLogger(TensorBoardLogger):
    """A TensorBoardLogger whose event file lies directly in `run_dir` (TensorBoard names the run by
    that folder), and whose `log_metrics` turns each call's metrics into a single event, where
    Lightning's writes one per number.

    Events are kept and written together every `WRITE_SECONDS` (or `MAX_PENDING` events), on
    `write_pending()` and at `finalize`, and the writer is waited for: its thread, woken every
    epoch, held small-data training up. Waiting also puts the events on disk within a second.
    """

    WRITE_SECONDS = 1.0
    MAX_PENDING = 1000  # the writer's queue is made as long, so handing events over never waits

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(save_dir=run_dir, name="", version="", default_hp_metric=False, max_queue=self.MAX_PENDING)
        self._pending: deque[tuple[int | None, float, Mapping[str, float]]] = deque()  # (step, wall time, metrics)
        self._write_after = 0.0

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._pending.append((step, time.time(), metrics))
        if len(self._pending) >= self.MAX_PENDING or time.perf_counter() >= self._write_after:
            self.write_pending()

    @rank_zero_only
    def write_pending(self) -> None:
        """Write the events logged since the last write, and wait for the writer. Each leaves the queue
        once handed over, so a Ctrl-C in the wait never gets one written twice."""
        if self._pending:
            writer = self.experiment.file_writer
            while self._pending:
                step, wall_time, metrics = self._pending[0]
                values = [Summary.Value(tag=tag, simple_value=value) for tag, value in metrics.items()]
                writer.add_summary(Summary(value=values), global_step=step, walltime=wall_time)
                self._pending.popleft()
            self.experiment.flush()
        self._write_after = time.perf_counter() + self.WRITE_SECONDS

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.write_pending()
        super().finalize(status)
