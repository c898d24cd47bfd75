"""TensorBoard logging at one event per epoch (thinned out in long runs), written on the logger's own
schedule, in the caller's thread, and the same epochs kept in the run's history.csv."""

import math
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from experiments.config import to_yaml
from experiments.dashboards import hparams_summaries, layout_summary
from experiments.events import EventFile, drop_events_after, read_scalars
from experiments.files import write_whole
from experiments.history import History
from experiments.naming import trial_name


class Thinning:
    """Which epochs a run of `epochs` epochs logs: every one up to `EVERY_EPOCH_UNTIL`, then every
    `stride`-th, so that a curve has at most about `MAX_POINTS` points however long the run. The
    last epoch (the result, or where a run diverged) is always logged (see `EpochLogger.finalize`)."""

    EVERY_EPOCH_UNTIL = 1000
    MAX_POINTS = 10_000

    def __init__(self, epochs: int | None) -> None:
        later = (epochs or 0) - self.EVERY_EPOCH_UNTIL
        self.stride = max(1, math.ceil(later / (self.MAX_POINTS - self.EVERY_EPOCH_UNTIL)))

    def keeps(self, epoch: int) -> bool:
        return epoch <= self.EVERY_EPOCH_UNTIL or epoch % self.stride == 0


class EpochLogger(TensorBoardLogger):
    """A TensorBoardLogger whose one event file lies directly in `run_dir` (TensorBoard names the run
    by that folder), and whose `log_metrics` turns each call's metrics into a single event, where
    Lightning's writes one per number. Of a run of `epochs` epochs it keeps the epochs `Thinning`
    keeps, in the event file and in `history` (history.csv, written by `write_history` and at the end).

    Events are kept and written together every `WRITE_SECONDS` (or `MAX_PENDING` events), on
    `write_pending()` and at `finalize`, so they are on disk within a second.
    """

    WRITE_SECONDS = 1.0
    MAX_PENDING = 1000

    def __init__(self, run_dir: str | Path, epochs: int | None = None) -> None:
        super().__init__(save_dir=run_dir, name="", version="", default_hp_metric=False)
        self._pending: deque[tuple[int | None, float, Mapping[str, float]]] = deque()  # (step, wall time, metrics)
        self._write_after = 0.0
        self.thinning = Thinning(epochs)
        self.history = History()
        self._unkept: tuple[int, float, Mapping[str, float]] | None = None  # the last epoch logged, if not kept

    @property
    @rank_zero_experiment
    def experiment(self) -> EventFile:
        if self._experiment is None:
            self._experiment = EventFile(self.log_dir)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        step = step or 0
        if not self.thinning.keeps(step):
            self._unkept = (step, time.time(), metrics)
            return
        self._unkept = None
        self._keep(step, time.time(), metrics)
        if len(self._pending) >= self.MAX_PENDING or time.perf_counter() >= self._write_after:
            self.write_pending()

    def _keep(self, step: int, wall_time: float, metrics: Mapping[str, float]) -> None:
        self._pending.append((step, wall_time, metrics))
        self.history.add(step, metrics)

    @rank_zero_only
    def log_layout(self, target_names: list[str], held_out: bool) -> None:
        """The CUSTOM SCALARS layout (see `experiments.dashboards`), at step 0."""
        self.experiment.add_summary(layout_summary(tuple(target_names), held_out), 0)

    @rank_zero_only
    def log_session(self, settings: Mapping[str, Any], status: str, step: int) -> None:
        """The run's row of the HPARAMS tab, its settings (also hparams.yaml) and how it ended (ok,
        diverged, interrupted); its metrics are the last values of the tags in `dashboards.METRICS`."""
        self.log_hyperparams(dict(settings))
        for summary in hparams_summaries(settings, status, trial_name(Path(self.log_dir))):
            self.experiment.add_summary(summary, step)

    def write_last(self) -> None:
        """Log the last epoch logged if the thinning left it out: it is the run's result."""
        if self._unkept is not None:
            self._keep(*self._unkept)
            self._unkept = None

    @rank_zero_only
    def write_history(self) -> None:
        """history.csv, whole, with the epochs kept so far."""
        if self.history.rows:
            write_whole(Path(self.log_dir) / "history.csv", self.history.write_text())

    def continue_from(self, last_epoch: int) -> None:
        """Continue a run from its checkpoint at `last_epoch`: its event file without what it logged
        after it, and its history up to it (from its history.csv, or from the event file of a run made
        before runs kept one)."""
        from experiments.runs import read_history

        run_dir = Path(self.log_dir)
        events = sorted(run_dir.glob("events.out.tfevents.*"))
        for path in events:
            drop_events_after(path, last_epoch)
        recorded = read_history(run_dir)
        if recorded is None:
            recorded = History(read_scalars(events))
        self.history = recorded.up_to(last_epoch)

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
        self.write_last()
        self.write_pending()
        self.write_history()
        super().finalize(status)
