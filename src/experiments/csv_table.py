"""A user's CSV file as a `Table`, or one clear error that says where the file is wrong.

Every check names the file and, where it applies, the line, the column and the value, so a bad
file never turns silently into a bad model.
"""

import csv
import math
import os
import stat
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments.errors import UserError
from experiments.tables import Table

FLOAT32_MAX = float(torch.finfo(torch.float32).max)

# Memory a CSV file may need, as a multiple of its size on disk: its bytes and text, then 16 bytes for
# each number of at least 2 bytes ("5,") while reading (up to 11x), then training's copies (up to 8x more).
MEMORY_PER_BYTE = 16

# Characters that end a line for str.splitlines (each "\r\n" is one line end).
_LINE_ENDS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"

_KINDS = [
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
]


def available_memory() -> int | None:
    """Bytes of memory this process can still take without swapping: Linux's MemAvailable (else
    os.sysconf's available pages), less if a cgroup's limit (a container's) leaves less; None where
    nothing says."""
    known = [n for n in (_meminfo_available(), _cgroup_left()) if n is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:")) * 1024
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_left() -> int | None:
    """What this process's cgroup (v2, else v1) may still use, where it has a limit."""
    for limit, usage in [
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ]:
        try:
            text = (Path("/sys/fs/cgroup") / limit).read_text().strip()
            if text == "max" or int(text) >= 1 << 60:  # no limit (v1 writes a huge number)
                return None
            return max(int(text) - int((Path("/sys/fs/cgroup") / usage).read_text()), 0)
        except (OSError, ValueError):
            continue
    return None


def _size(n: float) -> str:
    """A number of bytes in words: 512 bytes, 3.2 MiB."""
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _check_kind_and_size(path: Path, key: str, info: os.stat_result) -> None:
    """Refuse what is not a regular file (a FIFO or /dev/zero never ends), and a file too large for the
    memory available, before a byte of it is read."""
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{key}: {path} is a directory; give the CSV file inside it.")
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise UserError(f"{key}: {path} is {kind}, not a file that can be read to its end; give a regular CSV file.")
    available = available_memory()
    needed = info.st_size * MEMORY_PER_BYTE
    if available is not None and needed > available:
        raise UserError(
            f"{key}: {path} is {_size(info.st_size)} on disk; as numbers in memory it may take up to "
            f"{MEMORY_PER_BYTE}x that ({_size(needed)}), and this machine has {_size(available)} of memory "
            f"available. Use a smaller CSV file (fewer rows), or free memory."
        )


def _read_bytes(path: Path, key: str) -> bytes:
    """The bytes of the regular file at `path`, at most as many as it held when it was checked."""
    try:
        _check_kind_and_size(path, key, path.stat())  # before opening: opening a FIFO waits for a writer
        # O_NONBLOCK: should the path have become a FIFO since, opening it does not wait either.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{key}: there is no file {path}.") from None
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        raise UserError(f"{key}: cannot read {path}: {getattr(error, 'strerror', None) or error}.") from None
    with open(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        _check_kind_and_size(path, key, info)
        try:
            return file.read(info.st_size)
        except OSError as error:
            raise UserError(f"{key}: cannot read {path}: {error.strerror or error}.") from None


def _split_lines(text: str, block: int = 1 << 16) -> Iterator[str]:
    """`text.splitlines()`, a block at a time: a list of every line would cost about 50 bytes a line."""
    start, carry = 0, ""
    while start < len(text):
        step = max(block, 2 * len(carry))  # a line longer than a block doubles the next one: linear time
        lines = (carry + text[start : start + step]).splitlines(keepends=True)
        start += step
        carry = lines.pop()  # perhaps unfinished (or a "\r" whose "\n" comes next): read again with the next block
        for line in lines:
            yield line.rstrip(_LINE_ENDS)
    if carry:
        yield carry.rstrip(_LINE_ENDS)


def _rows(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """The text's non-blank lines as (line number, fields)."""
    reader = csv.reader(_split_lines(text))
    line = 0
    while True:
        line += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise UserError(f"{path}, line {line}: {error}; every cell must be a number or a column name.") from None
        if row:
            yield line, row


def _read_text(path: Path, key: str) -> str:
    """The file's text, or one error if it is not a regular file, too large, not UTF-8 or empty."""
    raw = _read_bytes(path, key)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path} is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start}); save it as UTF-8 CSV."
        ) from None
    del raw
    if not text or text.isspace():
        raise UserError(f"{path} is empty; it needs a header row naming the columns, then one row per sample.")
    return text


@dataclass
class _Shape:
    """What the header checks need to know of every data line, gathered in one pass without keeping them."""

    rows: int = 0
    all_end_empty: bool = True  # every data line as long as the header and its last field empty
    all_one_more_empty: bool = True  # every data line one field longer than the header, that field empty


def _scan(path: Path, text: str) -> tuple[list[str], _Shape]:
    header: list[str] | None = None
    shape = _Shape()
    for _, row in _rows(path, text):
        if header is None:
            header = [name.strip() for name in row]
            continue
        shape.rows += 1
        empty_end = row[-1].strip() == ""
        shape.all_end_empty &= len(row) == len(header) and empty_end
        shape.all_one_more_empty &= len(row) == len(header) + 1 and empty_end
    if header is None:  # only blank lines
        raise UserError(f"{path} is empty; it needs a header row naming the columns, then one row per sample.")
    return header, shape


def _check_header(path: Path, header: list[str], shape: _Shape) -> list[str]:
    for other in (";", "\t"):
        if len(header) == 1 and other in header[0]:
            raise UserError(
                f"{path} looks separated by {other!r}, not ','. Its header is one column named "
                f"{header[0]!r}; save it with commas between the columns."
            )
    if shape.rows and header[-1] == "" and shape.all_end_empty:
        raise UserError(f"{path}: every line ends with a ',' (an empty last column); remove the trailing commas.")
    if shape.rows and shape.all_one_more_empty:
        raise UserError(
            f"{path}: every data line ends with a ',' (one field more than the header); remove the trailing commas."
        )
    for i, name in enumerate(header):
        if name == "":
            raise UserError(f"{path}: column {i + 1} of the header has no name; every column needs one.")
        if header.index(name) != i:
            raise UserError(f"{path}: the header names column {name!r} twice; column names must be unique.")
    if not shape.rows:
        raise UserError(f"{path} has a header but no data rows.")
    return header


def _columns(path: Path, text: str, header: list[str], rows: int, names: list[str]) -> torch.Tensor:
    """The columns `names` of every data line, as a (rows, len(names)) float64 tensor over an array
    of the numbers (8 bytes each, where a list of floats would take 32)."""
    index = [header.index(name) for name in names]
    values = array("d")
    lines = _rows(path, text)
    next(lines)  # the header
    for line, row in lines:
        if len(row) != len(header):
            raise UserError(f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}.")
        values.extend(_parse(path, line, name, row[i]) for name, i in zip(names, index))
    return torch.frombuffer(values, dtype=torch.float64).view(rows, len(names))  # shares the array's memory


def _parse(path: Path, line: int, column: str, cell: str) -> float:
    where = f"{path}, line {line}, column {column!r}"
    if cell.strip() == "":
        raise UserError(f"{where}: the cell is empty; every cell needs a number.")
    try:
        value = float(cell)
    except ValueError:
        raise UserError(f"{where}: {cell.strip()!r} is not a number.") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: {cell.strip()!r} is not a finite number.")
    if abs(value) > FLOAT32_MAX:
        raise UserError(
            f"{where}: {cell.strip()} is too large for float32 (at most {FLOAT32_MAX:.3g}); rescale the column."
        )
    return value


def _choose_columns(
    path: Path, header: list[str], targets: list[str], features: list[str] | None
) -> tuple[list[str], list[str]]:
    if not targets:
        raise UserError(f"data.targets is empty; name the column(s) to predict, e.g. data.targets=[{header[-1]}].")
    named = list(targets) + list(features or [])
    unknown = [name for name in named if name not in header]
    if unknown:
        raise UserError(f"{path} has no column {', '.join(map(repr, unknown))}; its columns are {', '.join(header)}.")
    both = [name for name in targets if name in (features or [])]
    if both:
        raise UserError(
            f"column {both[0]!r} is both a feature and a target; a model cannot be given what it "
            f"should predict. Remove it from data.features or data.targets."
        )
    features = list(features) if features is not None else [name for name in header if name not in targets]
    if not features:
        raise UserError(f"{path}: every column is a target, so nothing is left to predict them from.")
    return features, list(targets)


def read_csv(path: str | Path, targets: list[str], features: list[str] | None = None) -> Table:
    """The table in `path` (a header row, then numbers), with `targets` as the columns to predict
    and `features` (default: every other column) as the inputs. Only a regular file is read, and only
    one the memory available can hold (see `MEMORY_PER_BYTE`)."""
    path = Path(path)
    text = _read_text(path, "data.path")
    header, shape = _scan(path, text)
    _check_header(path, header, shape)
    features, targets = _choose_columns(path, header, targets, features)
    values = _columns(path, text, header, shape.rows, features + targets)
    # Kept in float64, as written: training casts to its precision (float32 unless trainer.precision=64).
    return Table(values[:, : len(features)].clone(), values[:, len(features) :].clone(), features, targets)


def read_features(path: str | Path, names: list[str]) -> torch.Tensor:
    """The columns `names` of the CSV file at `path`, in that order (other columns are ignored):
    inputs to predict from. Read as `read_csv` reads, with the same limits."""
    path = Path(path)
    text = _read_text(path, "input_csv")
    header, shape = _scan(path, text)
    _check_header(path, header, shape)
    missing = [name for name in names if name not in header]
    if missing:
        raise UserError(
            f"{path} has no column {', '.join(map(repr, missing))}, which the model needs; its "
            f"columns are {', '.join(header)}."
        )
    return _columns(path, text, header, shape.rows, names).clone()
