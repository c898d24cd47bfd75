"""Compare finished runs: one table row per run and one plot of every loss curve.

`python compare.py PATH...` takes run folders, sweep folders or all of `outputs/`; the sweep summary
written at the end of every multirun (`experiments.sweep`) is the same table for one sweep. A run is
a folder with a `summary.json`; its loss curve is read from its TensorBoard file with TensorBoard's
own reader.
"""

import argparse
import csv
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = ["best", "overrides", "status", "final_loss", "optimal_loss", "loss_ratio", "epochs", "lr", "seconds",
           "error", "path"]
STATUS_ORDER = {"ok": 0, "interrupted": 1, "diverged": 2, "failed": 3}


@dataclass
class Run:
    """One run's summary.json, where it lies, and what was overridden to make it."""

    path: Path
    summary: dict[str, Any]
    overrides: str
    modified: float = 0.0  # when its summary.json was written
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def sort_key(self) -> tuple[int, float]:
        """Finished runs by final loss, then interrupted, diverged and failed ones."""
        loss = self.summary.get("final_loss")
        rank = STATUS_ORDER.get(self.summary.get("status"), len(STATUS_ORDER))
        return rank, loss if loss is not None and math.isfinite(loss) else math.inf


def _overrides(run_dir: Path) -> str:
    """The command-line overrides that made this run, as Hydra recorded them ("defaults" if none)."""
    import yaml

    recorded = run_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(recorded.read_text()) if recorded.is_file() else None
    return ",".join(items) if items else "defaults"


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run folder at or below `paths`, each once, in order: folders with a summary.json, and
    job folders Hydra made (`.hydra/overrides.yaml`) whose job ended without one."""
    found: dict[Path, None] = {}
    for path in paths:
        path = path.parent if path.name == "summary.json" else path
        markers = [path / "summary.json", path / ".hydra" / "overrides.yaml"]
        if not any(marker.is_file() for marker in markers):
            markers = [*path.rglob("summary.json"), *path.rglob(".hydra/overrides.yaml")]
        for run_dir in sorted({m.parent.parent if m.name == "overrides.yaml" else m.parent for m in markers
                               if m.is_file()}):
            found[run_dir.resolve()] = None
    return list(found)


def read_summary(run_dir: Path) -> tuple[dict[str, Any], float]:
    """The run's summary.json and when it was written; for a job that wrote none, or an unreadable
    one, a summary that says so."""
    path = run_dir / "summary.json"
    if not path.is_file():
        modified = (run_dir / ".hydra").stat().st_mtime
        return {"status": "failed", "error": "no summary.json: the job was killed, crashed, or is still running"}, modified
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        summary = {"status": "failed", "error": f"unreadable summary.json: {error}"}
    return summary, path.stat().st_mtime


def load_loss_curve(run_dir: Path) -> list[tuple[int, float]]:
    """The whole-data loss per epoch (`train/full_loss`) from the run's TensorBoard file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # not "No path found after ..." per file
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
    events.Reload()
    if "train/full_loss" not in events.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in events.Scalars("train/full_loss")]


def load_runs(paths: list[Path], curves: bool = True) -> list[Run]:
    """The runs at or below `paths`, best (lowest final loss) first; failed and diverged runs last."""
    runs = []
    for run_dir in find_runs(paths):
        summary, modified = read_summary(run_dir)
        runs.append(Run(run_dir, summary, _overrides(run_dir), modified, load_loss_curve(run_dir) if curves else []))
    return sorted(runs, key=lambda run: run.sort_key)


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
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_markdown(rows: list[dict[str, str]], path: Path) -> None:
    shown = [c for c in COLUMNS if c != "path"]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(r[c].replace("|", "\\|") for c in shown) + " |" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def plot_loss_curves(runs: list[Run], path: Path) -> None:
    """Every run's whole-data loss per epoch on a log scale, best first in the legend, with each
    distinct optimum as a dashed line. The legend sits beside the plot so 30 runs stay readable."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    plotted = [run for run in runs if any(math.isfinite(v) and v > 0 for _, v in run.curve)]
    fig = Figure(figsize=(11, max(4.5, 0.19 * len(plotted) + 1.5)), layout="constrained")
    ax = fig.subplots()
    colors = matplotlib.colormaps["viridis" if len(plotted) > 10 else "tab10"]
    for i, (run, label) in enumerate(zip(plotted, distinct_overrides(plotted))):
        steps, values = zip(*[(s, v) for s, v in run.curve if math.isfinite(v) and v > 0])
        color = colors(i / max(len(plotted) - 1, 1)) if len(plotted) > 10 else colors(i % 10)
        if run.summary.get("status") != "ok":
            label += f" ({run.summary.get('status')})"
        ax.plot(steps, values, color=color, linewidth=2.2 if i == 0 else 1.2, label=label)
    optima = sorted({run.summary["optimal_loss"] for run in runs if run.summary.get("optimal_loss")})
    for j, optimum in enumerate(optima):
        ax.axhline(optimum, color="black", linestyle="--", linewidth=1,
                   label="optimum (least squares)" if j == 0 else None)
    ax.set(yscale="log", xlabel="epoch", ylabel="loss on the whole data set (MSE)",
           title=f"Loss curves of {len(plotted)} runs")
    ax.grid(True, which="major", alpha=0.3)
    if plotted:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small" if len(plotted) <= 15 else "x-small",
                  frameon=False)
    fig.savefig(path, dpi=110)


def report(runs: list[Run], out_dir: Path, print_table: bool = True) -> list[dict[str, str]]:
    """Write summary.csv, summary.md and loss_curves.png to `out_dir` and print the table."""
    rows = table_rows(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "summary.csv")
    write_markdown(rows, out_dir / "summary.md")
    plot_loss_curves(runs, out_dir / "loss_curves.png")
    if print_table:
        print(format_table(rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="compare.py", description="Compare runs: a table sorted by final loss and a plot of every loss curve.")
    parser.add_argument("paths", nargs="+", type=Path, help="run folders, sweep folders, or outputs/")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for summary.csv, summary.md and loss_curves.png (default: here)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"Error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = load_runs(args.paths)
    if not runs:
        print(f"Error: no runs (folders with a summary.json) under {', '.join(map(str, args.paths))}.",
              file=sys.stderr)
        return 2
    report(runs, args.out)
    print(f"\n{len(runs)} runs. Wrote {args.out / 'summary.csv'}, {args.out / 'summary.md'} and "
          f"{args.out / 'loss_curves.png'}.")
    return 0
