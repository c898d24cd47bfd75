"""A run's history.csv: one row per epoch that TensorBoard keeps (see `experiments.logger.Thinning`),
one column per tag (`train/full_loss`, `weights/apples/temp`, ...), the same numbers as the event
file's but at full precision. It is what compare.py, the sweep summary and the Python API read of a
run's curves: a few thousand rows however long the run was. Reading it never runs code."""

import csv
import io
from collections.abc import Mapping

HISTORY = "history.csv"


class History:
    """The rows of a run's history, by epoch: a row holds everything logged at that epoch."""

    def __init__(self, rows: dict[int, Mapping[str, float]] | None = None) -> None:
        self.rows: dict[int, Mapping[str, float]] = rows if rows is not None else {}

    def add(self, epoch: int, metrics: Mapping[str, float]) -> None:
        row = self.rows.get(epoch)
        self.rows[epoch] = metrics if row is None else {**row, **metrics}  # logged metrics are never changed

    def up_to(self, last_epoch: int) -> "History":
        """The rows of the epochs up to `last_epoch` (what a resumed run continues from)."""
        return History({epoch: row for epoch, row in self.rows.items() if epoch <= last_epoch})

    def write_text(self) -> str:
        """history.csv's text: the columns in the order they were first logged, a blank where an epoch has none."""
        key_lists = dict.fromkeys(tuple(row) for row in self.rows.values())  # a few: epoch 0 lacks some tags
        columns = list(dict.fromkeys(tag for keys in key_lists for tag in keys))
        columns.sort(key=lambda tag: tag.startswith(("weights/", "true/")))  # the losses first, then the weights
        lines = [",".join(["epoch", *columns])]
        lines += [f"{epoch}," + ",".join(map(repr, map(self.rows[epoch].get, columns))) for epoch in sorted(self.rows)]
        return "\n".join(lines).replace("None", "") + "\n"  # None: a tag the epoch did not log


def parse(text: str, columns: list[str] | None = None) -> History:
    """A history.csv's text as a History (only `columns`, if given); ValueError if it is not one."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0] != "epoch":
        raise ValueError("its first column is not epoch")
    wanted = [(i, tag) for i, tag in enumerate(header) if i and (columns is None or tag in columns)]
    rows = {}
    try:
        for line in reader:
            rows[int(line[0])] = {tag: float(line[i]) for i, tag in wanted if line[i]}
    except IndexError:
        raise ValueError(f"line {reader.line_num} has fewer cells than the header") from None
    return History(rows)


def curve(history: History, tag: str = "train/full_loss") -> list[tuple[int, float]]:
    """(epoch, value) of `tag`, in epoch order."""
    return [(epoch, row[tag]) for epoch, row in sorted(history.rows.items()) if tag in row]
