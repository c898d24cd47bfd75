"""Compare finished runs: one table row per run and one plot of every loss curve.

`python compare.py PATH...` takes run folders, sweep folders or all of `outputs/`; the sweep summary
written at the end of every multirun (`experiments.sweep`) is the same table for one sweep. Runs are
read by `experiments.runs`, as data: a run whose summary.json or .hydra/overrides.yaml cannot be read
is listed as such, with one warning line on stderr, and the others are compared as usual.
"""

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

from experiments import stopping
from experiments.files import write_whole
from experiments.runs import Run, load_runs, read_landscape

COLUMNS = [
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
    # Runs made by the same overrides (repeated runs, two sweeps) are told apart by their folders.
    return [f"{label} ({run.path.name})" if labels.count(label) > 1 else label for run, label in zip(runs, labels)]


def table_rows(runs: list[Run]) -> list[dict[str, str]]:
    """One row per run, as text; the best ok run is marked with `*`."""
    rows = []
    for rank, (run, overrides) in enumerate(zip(runs, distinct_overrides(runs))):
        row = {column: _cell(run.summary.get(column)) for column in COLUMNS}
        row["best"] = "*" if rank == 0 and run.sort_key[0] == 0 else ""
        row["overrides"] = overrides
        row["path"] = str(run.path)
        if run.summary.get("status") == "diverged":
            row["error"] = f"diverged at epoch {run.summary.get('diverged_at_epoch')}"
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    """A plain-text table for the terminal (the path column left out: it is long)."""
    shown = [c for c in COLUMNS if c != "path" and (c != "error" or any(r["error"] for r in rows))]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in shown}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in shown) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def write_csv(rows: list[dict[str, str]], path: Path) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_whole(path, text.getvalue())


def write_markdown(rows: list[dict[str, str]], path: Path) -> None:
    shown = [c for c in COLUMNS if c != "path"]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(r[c].replace("|", "\\|") for c in shown) + " |" for r in rows]
    write_whole(path, "\n".join(lines) + "\n")


def write_comparison(runs: list[Run], out_dir: Path, print_table: bool = True) -> list[dict[str, str]]:
    """Write summary.csv, summary.md, loss_curves.png, and lr_curve.png when the runs try several
    learning rates, and trajectories.png when they recorded their paths on the loss surface, to
    `out_dir`, and print the table."""
    from experiments.figures import landscape_figure, loss_curves_figure, lr_curve_figure, save_png, varies_lr

    rows = table_rows(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "summary.csv")
    write_markdown(rows, out_dir / "summary.md")
    labels = distinct_overrides(runs)
    save_png(loss_curves_figure(runs, labels), out_dir / "loss_curves.png")
    if varies_lr(runs):
        save_png(lr_curve_figure(runs), out_dir / "lr_curve.png")
    in_job_order = sorted(zip(labels, runs), key=lambda pair: _job_order(pair[1].path))  # a sweep's grid, row by row
    paths = [(label, landscape) for label, run in in_job_order if (landscape := read_landscape(run.path))]
    if paths:
        title = f"The paths of {len(paths)} runs on the loss surface"
        save_png(landscape_figure(paths, title), out_dir / "trajectories.png")
    if print_table:
        print(format_table(rows))
    return rows


def _job_order(run_dir: Path) -> tuple:
    """Sweep jobs by their number (`3_optim.lr=...`), then other runs by name."""
    number = run_dir.name.split("_", 1)[0]
    return (str(run_dir.parent), 0, int(number), "") if number.isdigit() else (str(run_dir.parent), 1, 0, run_dir.name)


def main(argv: list[str] | None = None) -> int:
    """`python compare.py PATH... [--out DIR]`; its exit status. A signal ends it with 128 + its
    number and no traceback (what it writes is written whole)."""
    stopping.install_in_command()
    try:
        return _compare(argv)
    except stopping.Stopped as stop:
        return stop.exit_status


def _compare(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="compare.py", description="Compare runs: a table sorted by final loss and a plot of every loss curve."
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run folders, sweep folders, or outputs/")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        help="folder for summary.csv, summary.md and the pictures (default: here)",
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"Error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = load_runs(args.paths)
    if not runs:
        print(f"Error: no runs (folders with a summary.json) under {', '.join(map(str, args.paths))}.", file=sys.stderr)
        return 2
    try:
        write_comparison(runs, args.out)
    except OSError as error:  # --out is a file, or a folder that cannot be made or written
        where = error.filename or args.out
        print(
            f"Error: cannot write the comparison to {where}: {error.strerror or error}; give --out a folder "
            f"you can write to.",
            file=sys.stderr,
        )
        return 2
    pictures = [name for name in ("loss_curves.png", "lr_curve.png", "trajectories.png") if (args.out / name).is_file()]
    print(f"\n{len(runs)} runs. Wrote summary.csv, summary.md, {', '.join(pictures)} in {args.out}.")
    return 0
