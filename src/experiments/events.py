"""TensorBoard's event-file format, written and read here without TensorBoard's machinery: records
with their CRC32C checksums computed in C, scalar events encoded directly, and scalar series read
back for the sweep summary and compare.py (reading a run folder runs no code: its files are data)."""

import functools
import io
import math
import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import google_crc32c
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

from experiments import stopping
from experiments.files import naming, write_whole


def masked_crc32c(data: bytes) -> int:
    """The checksum of a TensorBoard record, as TensorBoard's own `masked_crc32c`, but computed in C."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


FLOAT32_MAX = 3.4028234663852886e38
# What a run logs once, at its end (final/: runs made before the HPARAMS tab read the last epoch's values).
END_TAGS = ("_hparams_/", "final/", "fit", "weights/fit", "weights/landscape")


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


def _records(data: bytes) -> Iterator[bytes]:
    """The records of an event file's bytes, each checked by its checksums; stops at the first
    incomplete or damaged one (a file still being written, or cut short)."""
    position = 0
    while position + 12 <= len(data):
        header = data[position : position + 8]
        (length,) = struct.unpack("<Q", header)
        end = position + 12 + length
        if struct.unpack("<I", data[position + 8 : position + 12])[0] != masked_crc32c(header) or end + 4 > len(data):
            return
        record = data[position + 12 : end]
        if struct.unpack("<I", data[end : end + 4])[0] != masked_crc32c(record):
            return
        position = end + 4
        yield record


def _framed(record: bytes) -> bytes:
    """A record as the file holds it: its length, the length's checksum, the record, its checksum."""
    header = struct.pack("<Q", len(record))
    return b"".join(
        [header, struct.pack("<I", masked_crc32c(header)), record, struct.pack("<I", masked_crc32c(record))]
    )


def read_scalar_series(path: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of each `tag` scalar in one event file (see `_records`)."""
    name, series = tag.encode(), []
    for record in _records(path.read_bytes()):
        if name not in record:
            continue
        event = Event.FromString(record)
        series.extend((event.step, value.simple_value) for value in event.summary.value if value.tag == tag)
    return series


def read_scalars(paths: list[Path]) -> dict[int, dict[str, float]]:
    """Every scalar in event files, by step and tag: the history of a run made before history.csv."""
    steps: dict[int, dict[str, float]] = {}
    for path in paths:
        for record in _records(path.read_bytes()):
            event = Event.FromString(record)
            scalars = {value.tag: value.simple_value for value in event.summary.value if value.HasField("simple_value")}
            if scalars and not any(tag.startswith(END_TAGS) for tag in scalars):
                steps.setdefault(event.step, {}).update(scalars)
    return steps


def drop_events_after(path: Path, last_step: int) -> None:
    """Rewrite an event file (whole) without its events after `last_step`, those a run writes at its
    end (HPARAMS, `final/`, the `fit` picture: a resumed run writes its own) and any damaged tail:
    what a resumed run continues from."""
    kept = []
    for record in _records(path.read_bytes()):
        event = Event.FromString(record)
        if event.step <= last_step and not any(value.tag.startswith(END_TAGS) for value in event.summary.value):
            kept.append(_framed(record))
    write_whole(path, b"".join(kept))


class EventFile:
    """One TensorBoard event file, written synchronously: TensorBoard's own writer hands every record
    to a thread of its own and checksums it in pure Python, each costing more than a small-data step.
    It offers what `TensorBoardLogger` and this project write through: summaries, figures, flush, close.
    Records wait in memory until `flush`, which opens the file only to append them: a sweep group
    writes a thousand runs' files at once, more than the usual limit of open files (1024)."""

    def __init__(self, folder: str | Path) -> None:
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = Path(folder) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending = bytearray()
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def _write(self, event: Event) -> None:
        self._write_record(event.SerializeToString())

    def _write_record(self, data: bytes) -> None:
        self._pending += _framed(data)

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
        self.add_png(tag, buffer.getvalue(), global_step)

    def add_png(self, tag: str, png: bytes, global_step: int | None = None) -> None:
        """A PNG image (TensorBoard's IMAGES tab)."""
        width, height = struct.unpack(">II", png[16:24])  # from the PNG's header
        image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
        self.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), global_step)

    def flush(self) -> None:
        if self._pending:
            with stopping.whole():  # appended whole: a signal cuts no record in two
                try:
                    with self.path.open("ab") as file:
                        file.write(self._pending)
                except OSError as error:
                    raise naming(error, self.path) if error.filename is None else error from None
                self._pending.clear()

    def close(self) -> None:
        self.flush()
