"""Compare finished runs: a table per data set, best first, and a picture of their loss curves.

`python compare.py [PATH...] [name=value...] [--last N] [--since WHEN] [--out DIR]` takes run folders,
sweep folders or all of `outputs/` (the default), keeps the runs the filters select, and writes into a
folder of its own (`outputs/compare/<stamp>/`); the sweep summary written at the end of every multirun
(`experiments.sweeps`) is the same comparison for one sweep. Runs are grouped by the data they trained on
(`Run.data_set`): losses on different data are in different units, so each data set has its own table,
its own best run and its own panel. Runs are read by `experiments.runs`, as data: a run whose
summary.json or .hydra/overrides.yaml cannot be read is listed as such, with one warning line on stderr,
and the others are compared as usual."""

import argparse
import csv
import io
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from experiments import stopping
from experiments.errors import UserError
from experiments.files import write_whole
from experiments.naming import job_number
from experiments.runs import Run, load_runs, read_landscape, read_loss_curve
from experiments.selection import SETTING, WHEN_EXAMPLES, select, since_time

COLUMNS = [
    "data_set",
    "best",
    "overrides",
    "status",
    "final_loss",
    "optimal_loss",
    "loss_ratio",
    "epochs",
    "lr",
    "seconds",
    "error",
    "path",
]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def distinct_overrides(runs: list[Run]) -> list[str]:
    """Each run's overrides without those every run shares (such as experiment=sweep_lr_epochs):
    what tells the runs apart."""
    items = [run.overrides.split(",") for run in runs]
    shared = set.intersection(*map(set, items)) if len(runs) > 1 else set()
    labels = [",".join(i for i in run_items if i not in shared) or run.overrides for run, run_items in zip(runs, items)]
    # Runs made by the same overrides (repeated runs, two sweeps) are told apart by their folders: a
    # sweep job's by its number (its name repeats the overrides), another's by its name.
    return [f"{label} ({_folder(run.path)})" if labels.count(label) > 1 else label for run, label in zip(runs, labels)]


def _folder(run_dir: Path) -> str:
    number = job_number(run_dir)
    return f"job {number} of {run_dir.parent.name}" if number is not None else run_dir.name


@dataclass
class DataSet:
    """The runs on one data set, best first, and the data set's name in tables and pictures."""

    name: str
    runs: list[Run]


UNKNOWN_DATA = "unknown data"  # the runs whose summary says nothing of their data, beside several data sets
MAX_PANELS = 6  # data sets drawn (those with the most runs); the tables list every one


def group_by_data(runs: list[Run]) -> list[DataSet]:
    """`runs` (best first) grouped by the data they trained on (`Run.data_set`), the data sets with the
    most runs first. Runs whose summary says nothing of their data (a failed job) join the data set
    when there is only one, else they make a last group, `UNKNOWN_DATA`."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.data_set is not None:
            groups.setdefault(run.data_set, []).append(run)
    if len(groups) <= 1:
        return [DataSet(next(iter(data_set_names(list(groups)).values()), UNKNOWN_DATA), runs)]
    names = data_set_names(list(groups))
    data_sets = sorted(
        (DataSet(names[key], members) for key, members in groups.items()), key=lambda d: (-len(d.runs), d.name)
    )
    unknown = [run for run in runs if run.data_set is None]
    return data_sets + ([DataSet(UNKNOWN_DATA, unknown)] if unknown else [])


def data_set_names(keys: list[tuple]) -> dict[tuple, str]:
    """Each data set's name: its `data` choice (crops, toy, csv...), and, for two that share it, what
    tells them apart: their columns, rows or optimum ("csv: 3 features → yield, 120 rows")."""

    def columns(key: tuple) -> str:
        features, targets = key[1] or (), key[2] or ()
        named = ", ".join(targets) if len(targets) <= 3 else f"{len(targets)} targets"
        return f"{len(features)} feature{'s' * (len(features) != 1)} → {named}" if features or targets else ""

    details = (
        columns,
        lambda key: f"{key[3]} rows" if key[3] else "",
        lambda key: f"optimum {key[4]:.6g}" if key[4] else "",
    )
    names = {}
    for key in keys:
        alike = [other for other in keys if other[0] == key[0]]
        telling: list = []  # the first details that tell them apart
        for detail in details:
            if len({tuple(told(other) for told in telling) for other in alike}) == len(alike):
                break
            if len({detail(other) for other in alike}) > 1:
                telling.append(detail)
        shown = [detail(key) for detail in telling]
        names[key] = ": ".join(filter(None, [key[0] or "unnamed data", ", ".join(filter(None, shown))]))
    shown_alike = {key: [other for other in keys if names[other] == names[key]] for key in keys}
    for key, alike in shown_alike.items():  # alike in all that is shown (column names that differ): numbered
        if len(alike) > 1:
            names[key] += f" #{alike.index(key) + 1}"
    return names


def table_rows(runs: list[Run], data_set: str = "") -> list[dict[str, str]]:
    """One row per run (runs on one data set, best first), as text; the best ok run is marked with `*`."""
    rows = []
    for rank, (run, overrides) in enumerate(zip(runs, distinct_overrides(runs))):
        row = {column: _cell(run.summary.get(column)) for column in COLUMNS}
        row["data_set"] = data_set
        row["best"] = "*" if rank == 0 and run.sort_key[0] == 0 else ""
        row["overrides"] = overrides
        row["path"] = str(run.path)
        if run.summary.get("status") == "diverged":
            row["error"] = f"diverged at epoch {run.summary.get('diverged_at_epoch')}"
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    """A plain-text table for the terminal (the path column left out: it is long; the data set is a heading)."""
    shown = [c for c in COLUMNS if c not in ("path", "data_set") and (c != "error" or any(r["error"] for r in rows))]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in shown}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in shown) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _heading(data_set: DataSet) -> str:
    return f"{data_set.name} — {len(data_set.runs)} run{'s' * (len(data_set.runs) != 1)}, best first"


def format_tables(data_sets: list[DataSet]) -> str:
    """A table per data set for the terminal, each under a heading that names it when there are several."""
    if len(data_sets) == 1:
        return format_table(table_rows(data_sets[0].runs, data_sets[0].name))
    return "\n\n".join(f"{_heading(d)}\n{format_table(table_rows(d.runs, d.name))}" for d in data_sets)


def which_data(data_sets: list[DataSet]) -> str:
    """The data the runs trained on, in a few words: "crops", or "3 data sets"."""
    return data_sets[0].name if len(data_sets) == 1 else f"{len(data_sets)} data sets"


def write_csv(rows: list[dict[str, str]], path: Path) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_whole(path, text.getvalue())


def write_markdown(tables: list[tuple[DataSet, list[dict[str, str]]]], path: Path) -> None:
    """A section per data set: a heading that names it, and its table."""
    shown = [c for c in COLUMNS if c not in ("path", "data_set")]
    lines = []
    for data_set, rows in tables:
        lines += [f"## {_heading(data_set)}", "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        lines += ["| " + " | ".join(r[c].replace("|", "\\|") for c in shown) + " |" for r in rows]
        lines.append("")
    write_whole(path, "\n".join(lines))


def write_comparison(
    runs: list[Run], out_dir: Path, print_table: bool = True, named: frozenset[Path] = frozenset()
) -> list[str]:
    """Write summary.csv and summary.md (a table per data set), loss_curves.png (a panel per data set,
    at most `MAX_PANELS`), and for each data set drawn lr_curve.png when its runs try several learning
    rates and trajectories.png when they recorded their paths on the loss surface (named
    `lr_curve_<data set>.png`... when there are several data sets) to `out_dir`, and print the tables;
    the names of the files written. `named`: run folders the user gave, named in the legend."""
    from experiments.figures import landscape_figure, loss_curves_figure, lr_curve_figure, save_png, varies_lr

    data_sets = group_by_data(runs)
    tables = [(data_set, table_rows(data_set.runs, data_set.name)) for data_set in data_sets]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv([row for _, rows in tables for row in rows], out_dir / "summary.csv")
    write_markdown(tables, out_dir / "summary.md")
    known = data_sets if len(data_sets) == 1 else [d for d in data_sets if d.name != UNKNOWN_DATA]
    with_curves = [d for d in known if any(run.curve for run in d.runs)]
    panels = [(d.name, d.runs, distinct_overrides(d.runs)) for d in with_curves[:MAX_PANELS]]
    left_out = len(with_curves) - len(panels)
    save_png(loss_curves_figure(panels, named, left_out), out_dir / "loss_curves.png")
    written = ["summary.csv", "summary.md", "loss_curves.png"]
    for data_set, suffix in zip(known[:MAX_PANELS], _suffixes(known) if len(data_sets) > 1 else [""]):
        on = f" on {data_set.name}" if len(data_sets) > 1 else ""
        if varies_lr(data_set.runs):
            save_png(lr_curve_figure(data_set.runs, on), out_dir / f"lr_curve{suffix}.png")
            written.append(f"lr_curve{suffix}.png")
        labels = distinct_overrides(data_set.runs)
        in_job_order = sorted(zip(labels, data_set.runs), key=lambda pair: _job_order(pair[1].path))  # a sweep's grid
        paths = [(label, landscape) for label, run in in_job_order if (landscape := read_landscape(run.path))]
        if paths:
            title = f"The paths of {len(paths)} run{'s' * (len(paths) != 1)}{on} on the loss surface"
            save_png(landscape_figure(paths, title), out_dir / f"trajectories{suffix}.png")
            written.append(f"trajectories{suffix}.png")
    if print_table:
        counted = f"{len(runs)} run{'s' * (len(runs) != 1)}"
        print(f"{counted} on {which_data(data_sets)}, best first:\n{format_tables(data_sets)}")
        if left_out:
            print(
                f"\nloss_curves.png draws the {len(panels)} data sets with the most runs; the tables list all "
                f"{len(known)}."
            )
    return written


def _suffixes(data_sets: list[DataSet]) -> list[str]:
    """A file-name suffix per data set, from its name: `_crops`, `_csv-3-features-yield`."""
    suffixes: list[str] = []
    for data_set in data_sets:
        slug = re.sub(r"[^a-z0-9.]+", "-", data_set.name.lower()).strip("-")[:60] or "data"
        suffixes.append(f"_{slug}" + (f"-{len(suffixes) + 1}" if f"_{slug}" in suffixes else ""))
    return suffixes


def _job_order(run_dir: Path) -> tuple:
    """Sweep jobs by their number (`3_optim.lr=...`), then other runs by name."""
    number = job_number(run_dir)
    return (str(run_dir.parent), 0, number, "") if number is not None else (str(run_dir.parent), 1, 0, run_dir.name)


def main(argv: list[str] | None = None) -> int:
    """`python compare.py [PATH...] [name=value...] [--last N] [--since WHEN] [--out DIR]`; its exit
    status. A signal ends it with 128 + its number and no traceback (what it writes is written whole)."""
    stopping.install_in_command()
    try:
        compare_runs(argv)
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except stopping.Stopped as stop:
        return stop.exit_status
    return 0


def compare_runs(argv: list[str] | None) -> Path:
    """Compare the runs that the command line `argv` selects, as `main` does; the folder written.
    UserError for a selection that cannot be compared."""
    parser = argparse.ArgumentParser(
        prog="compare.py",
        description="Compare runs: a table per data set, best first, and a picture of their loss curves.",
        epilog="examples: python compare.py --last 5;  python compare.py outputs optim=adam data=toy --since 2h",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH or name=value",
        help="run folders, sweep folders, or outputs/ (the default); name=value, a setting as train.py takes it "
        "(optim=adam, optim.lr=1e-5), keeps the runs made with it",
    )
    parser.add_argument("--last", metavar="N", help="only the N runs written most recently")
    parser.add_argument("--since", metavar="WHEN", help=f"only the runs written since WHEN: {WHEN_EXAMPLES}")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for summary.csv, summary.md and the pictures (default: outputs/compare/<time>)",
    )
    args = parser.parse_args(argv)
    settings = [arg for arg in args.paths if SETTING.fullmatch(arg)]
    paths = [Path(arg) for arg in args.paths if not SETTING.fullmatch(arg)] or [Path("outputs")]
    if args.last is not None and not (args.last.isdigit() and int(args.last) > 0):
        raise UserError(f"--last {args.last!r} is not a number of runs; give one such as --last 5.")
    since = None if args.since is None else since_time(args.since, time.time())
    if args.since is not None and since is None:
        raise UserError(f"--since {args.since!r} is not a time; give {WHEN_EXAMPLES}.")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"no such folder: {', '.join(missing)}")
    found = load_runs(paths, curves=False)
    if not found:
        raise UserError(f"no runs (folders with a summary.json) under {', '.join(map(str, paths))}.")
    runs = select(found, settings, since, None if args.last is None else int(args.last))
    selection = " ".join(settings + [f"--{o} {getattr(args, o)}" for o in ("since", "last") if getattr(args, o)])
    if not runs:
        raise UserError(
            f"no run matches {selection}, of the {len(found)} runs under {', '.join(map(str, paths))}; "
            f"a setting matches a run's overrides or its summary.json (optim=adam, optim.lr=1e-5)."
        )
    if selection:
        print(f"{len(runs)} of the {len(found)} runs match {selection}.")
    for run in runs:
        run.curve = read_loss_curve(run.path)
    given = frozenset(p.resolve() for p in paths if (p / "summary.json").is_file())  # run folders, named in the legend
    try:
        out = args.out or _new_folder(Path("outputs", "compare"))
        written = write_comparison(runs, out, named=given)
    except OSError as error:  # --out is a file, or a folder that cannot be made or written
        where = error.filename or args.out or Path("outputs", "compare")
        raise UserError(
            f"cannot write the comparison to {where}: {error.strerror or error}; give --out a folder you can write to."
        ) from None
    print(f"\nWrote {', '.join(written)} in {out}")
    return out


def _new_folder(parent: Path) -> Path:
    """A new folder below `parent` named by the time (`2026-12-01_20-15-03`), made here."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1, 1000):
        folder = parent / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent} holds a thousand folders named {stamp}")
