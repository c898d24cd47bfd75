"""A user's CSV file as a `Table`, or one clear error that says where the file is wrong.

Every check names the file and, where it applies, the line, the column and the value, so a bad
file never turns silently into a bad model.
"""

import csv
import math
from pathlib import Path

import torch

from experiments.errors import UserError
from experiments.tables import Table

FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _read_lines(path: Path) -> list[tuple[int, list[str]]]:
    """The file's non-blank lines as (line number, fields)."""
    if not path.exists():
        raise UserError(f"data.path: there is no file {path}.")
    if path.is_dir():
        raise UserError(f"data.path: {path} is a directory; give the CSV file inside it.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path} is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start}); save it as UTF-8 CSV."
        ) from None
    if not text.strip():
        raise UserError(f"{path} is empty; it needs a header row naming the columns, then one row per sample.")
    return [(line, row) for line, row in enumerate(csv.reader(text.splitlines()), start=1) if row]


def _check_header(path: Path, rows: list[tuple[int, list[str]]]) -> list[str]:
    header = [name.strip() for name in rows[0][1]]
    for other in (";", "\t"):
        if len(header) == 1 and other in header[0]:
            raise UserError(
                f"{path} looks separated by {other!r}, not ','. Its header is one column named "
                f"{header[0]!r}; save it with commas between the columns."
            )
    data_rows = [row for _, row in rows[1:]]
    if data_rows and header[-1] == "" and all(len(row) == len(header) and row[-1].strip() == "" for row in data_rows):
        raise UserError(f"{path}: every line ends with a ',' (an empty last column); remove the trailing commas.")
    if data_rows and all(len(row) == len(header) + 1 and row[-1].strip() == "" for row in data_rows):
        raise UserError(
            f"{path}: every data line ends with a ',' (one field more than the header); remove the trailing commas."
        )
    for i, name in enumerate(header):
        if name == "":
            raise UserError(f"{path}: column {i + 1} of the header has no name; every column needs one.")
        if header.index(name) != i:
            raise UserError(f"{path}: the header names column {name!r} twice; column names must be unique.")
    if not data_rows:
        raise UserError(f"{path} has a header but no data rows.")
    return header


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
    and `features` (default: every other column) as the inputs."""
    path = Path(path)
    rows = _read_lines(path)
    header = _check_header(path, rows)
    features, targets = _choose_columns(path, header, targets, features)
    index = {name: i for i, name in enumerate(header)}
    values = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise UserError(f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}.")
        values.append({name: _parse(path, line, name, row[index[name]]) for name in features + targets})
    # Kept in float64, as written: training casts to its precision (float32 unless trainer.precision=64).
    return Table(
        torch.tensor([[v[n] for n in features] for v in values], dtype=torch.float64),
        torch.tensor([[v[n] for n in targets] for v in values], dtype=torch.float64),
        features,
        targets,
    )


def read_features(path: str | Path, names: list[str]) -> torch.Tensor:
    """The columns `names` of the CSV file at `path`, in that order (other columns are ignored):
    inputs to predict from."""
    path = Path(path)
    rows = _read_lines(path)
    header = _check_header(path, rows)
    missing = [name for name in names if name not in header]
    if missing:
        raise UserError(
            f"{path} has no column {', '.join(map(repr, missing))}, which the model needs; its "
            f"columns are {', '.join(header)}."
        )
    index = {name: i for i, name in enumerate(header)}
    values = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise UserError(f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}.")
        values.append([_parse(path, line, name, row[index[name]]) for name in names])
    return torch.tensor(values, dtype=torch.float64)
