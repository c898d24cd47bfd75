"""TensorBoard logging at one event per epoch, written on the logger's own schedule, in the caller's thread."""

import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from experiments.config import to_yaml
from experiments.events import EventFile
from experiments.files import write_whole


class EpochLogger(TensorBoardLogger):
    """A TensorBoardLogger whose one event file lies directly in `run_dir` (TensorBoard names the run
    by that folder), and whose `log_metrics` turns each call's metrics into a single event, where
    Lightning's writes one per number.

    Events are kept and written together every `WRITE_SECONDS` (or `MAX_PENDING` events), on
    `write_pending()` and at `finalize`, so they are on disk within a second.
    """

    WRITE_SECONDS = 1.0
    MAX_PENDING = 1000

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(save_dir=run_dir, name="", version="", default_hp_metric=False)
        self._pending: deque[tuple[int | None, float, Mapping[str, float]]] = deque()  # (step, wall time, metrics)
        self._write_after = 0.0

    @property
    @rank_zero_experiment
    def experiment(self) -> EventFile:
        if self._experiment is None:
            self._experiment = EventFile(self.log_dir)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._pending.append((step, time.time(), metrics))
        if len(self._pending) >= self.MAX_PENDING or time.perf_counter() >= self._write_after:
            self.write_pending()

    @rank_zero_only
    def write_pending(self) -> None:
        """Write the events logged since the last write. Each leaves the queue before it is written,
        so an interrupted write never writes one twice (TensorBoard would show its step twice)."""
        if self._pending:
            while self._pending:
                step, wall_time, metrics = self._pending.popleft()
                self.experiment.add_scalars(metrics, step or 0, wall_time)
            self.experiment.flush()
        self._write_after = time.perf_counter() + self.WRITE_SECONDS

    @rank_zero_only
    def save(self) -> None:
        """hparams.yaml as Lightning writes it (OmegaConf's YAML of the hparams), without making a DictConfig."""
        path = Path(self.log_dir) / self.NAME_HPARAMS_FILE
        if path.parent.is_dir() and not path.is_file():
            write_whole(path, to_yaml(dict(self.hparams)))

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.write_pending()
        super().finalize(status)
