"""TensorBoard logging at one event per epoch, written on the logger's own schedule, in the caller's thread."""

import functools
import io
import math
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import google_crc32c
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

from experiments.config import to_yaml


def masked_crc32c(data: bytes) -> int:
    """The checksum of a TensorBoard record, as TensorBoard's own `masked_crc32c`, but computed in C."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


FLOAT32_MAX = 3.4028234663852886e38


def _varint(value: int) -> bytes:
    """A non-negative whole number as protobuf writes it."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@functools.lru_cache(maxsize=65536)
def _scalar_prefix(tag: str) -> bytes:
    """A `Summary.value` entry with `tag` up to its `simple_value`'s four bytes (fields 1 and 2 of `Summary.Value`)."""
    name = tag.encode()
    value = b"\x0a" + _varint(len(name)) + name + b"\x15"
    return b"\x0a" + _varint(len(value) + 4) + value


def _float32s(values: list[float]) -> bytes:
    """`values` as float32s, as protobuf stores a `float`: one too large for it becomes infinite."""
    try:
        return struct.pack(f"<{len(values)}f", *values)
    except OverflowError:
        return b"".join(struct.pack("<f", math.copysign(math.inf, v) if abs(v) > FLOAT32_MAX else v) for v in values)


def read_scalar_series(path: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of each `tag` scalar in one event file, records checked by their checksums;
    reading stops at the first incomplete or damaged record (a run still being written)."""
    data, position, series = path.read_bytes(), 0, []
    name = tag.encode()
    while position + 12 <= len(data):
        header = data[position : position + 8]
        (length,) = struct.unpack("<Q", header)
        end = position + 12 + length
        if struct.unpack("<I", data[position + 8 : position + 12])[0] != masked_crc32c(header) or end + 4 > len(data):
            break
        record = data[position + 12 : end]
        if struct.unpack("<I", data[end : end + 4])[0] != masked_crc32c(record):
            break
        position = end + 4
        if name not in record:
            continue
        event = Event.FromString(record)
        series.extend((event.step, value.simple_value) for value in event.summary.value if value.tag == tag)
    return series


class EventFile:
    """One TensorBoard event file, written synchronously: TensorBoard's own writer hands every record
    to a thread of its own and checksums it in pure Python, each costing more than a small-data step.
    It offers what `TensorBoardLogger` and this project write through: summaries, figures, flush, close."""

    def __init__(self, folder: str | Path) -> None:
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = Path(folder) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Event) -> None:
        self._write_record(event.SerializeToString())

    def _write_record(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._file.write(
            b"".join([header, struct.pack("<I", masked_crc32c(header)), data, struct.pack("<I", masked_crc32c(data))])
        )

    def add_scalars(self, metrics: Mapping[str, float], step: int, wall_time: float) -> None:
        """One event of scalars, encoded here: building it as protobuf objects costs several times more."""
        packed = _float32s(list(metrics.values()))
        summary = b"".join(_scalar_prefix(tag) + packed[4 * i : 4 * i + 4] for i, tag in enumerate(metrics))
        self._write_record(
            b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + b"\x2a" + _varint(len(summary)) + summary
        )

    def add_summary(self, summary: Summary, global_step: int | None = None, walltime: float | None = None) -> None:
        self._write(Event(summary=summary, step=global_step or 0, wall_time=walltime or time.time()))

    def _get_file_writer(self) -> "EventFile":
        """What `TensorBoardLogger.log_hyperparams` writes its HPARAMS summaries through (SummaryWriter's name)."""
        return self

    def add_figure(self, tag: str, figure: Any, global_step: int | None = None) -> None:
        """A matplotlib figure as an image (TensorBoard's IMAGES tab)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        png = buffer.getvalue()
        width, height = struct.unpack(">II", png[16:24])  # from the PNG's header
        image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
        self.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), global_step)

    def flush(self) -> None:
        if not self._file.closed:  # Lightning saves, and so flushes, after it has closed the experiment
            self._file.flush()

    def close(self) -> None:
        self._file.close()


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
            path.write_text(to_yaml(dict(self.hparams)), encoding="utf-8")

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.write_pending()
        super().finalize(status)
