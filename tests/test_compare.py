"""compare.py after a long day of runs: a table and a panel per data set, a legible plot of many runs,
filters that pick runs, and a folder of its own for what it writes."""

import csv
import math
import os
import re
from datetime import datetime
from pathlib import Path

import pytest

from experiments import comparison as compare
from experiments.figures import LEGEND_RUNS, loss_curves_figure
from experiments.runs import Run
from experiments.selection import since_time
from helpers import make_run, summary, write_curve

CROPS = {"data": "crops", "feature_names": ["temp", "rainfall", "humidity"], "target_names": ["apples", "oranges"]}
CROPS |= {"rows": 15, "optimal_loss": 0.909446}
DAY = 1_796_112_000  # 2026-12-01, 08:00 UTC: the runs' summaries are written an hour later and after
TOY = {"data": "toy", "feature_names": ["x"], "target_names": ["y"], "rows": 4, "optimal_loss": 0.125}


def curve(data: dict, ratio: float, epochs: int = 20, start: float = 400.0) -> list[float]:
    """A loss curve from `start` down towards `ratio` times the optimum, as gradient descent draws one."""
    optimum = data["optimal_loss"]
    return [optimum * ratio + (start - optimum * ratio) * math.exp(-0.4 * epoch) for epoch in range(epochs + 1)]


def diverged(start: float = 400.0) -> list[float]:
    return [start * 100.0**epoch for epoch in range(12)]  # to 4e24


def a_run(folder: Path, data: dict, ratio: float | None, overrides: list[str], modified: float | None = None) -> Path:
    """A run folder on `data`: its summary (ok at `ratio` times the optimum, or diverged if None) and curve."""
    losses = curve(data, ratio) if ratio else diverged()
    status = {"status": "ok", "loss_ratio": ratio} if ratio else {"status": "diverged", "diverged_at_epoch": 11}
    settings = dict(item.split("=") for item in overrides)
    content = summary(**data, **status, final_loss=losses[-1] if ratio else None, optim=settings.get("optim", "sgd"))
    content |= {"lr": float(settings.get("optim.lr", 1e-5))} | ({} if ratio else {"loss_ratio": None})
    make_run(folder, overrides="".join(f"- {item}\n" for item in overrides), content=content)
    write_curve(folder, losses)
    if modified is not None:
        os.utime(folder / "summary.json", (modified, modified))
    return folder


def as_run(data: dict, ratio: float | None, name: str) -> Run:
    """A run as `load_runs` reads one, without its folder: for the pictures."""
    status = {"status": "ok", "loss_ratio": ratio, "final_loss": ratio} if ratio else {"status": "diverged"}
    losses = curve(data, ratio) if ratio else diverged()
    return Run(Path(name), {**data, **status}, name, curve=list(enumerate(losses)))


@pytest.fixture
def day(tmp_path) -> Path:
    """outputs/ after a day: runs on crops, on the toy set, a diverged one, and a job that left no summary."""
    outputs = tmp_path / "outputs"
    a_run(outputs / "runs" / "a", CROPS, 3.0, ["optim.lr=1e-05"], modified=DAY + 1000)
    a_run(outputs / "runs" / "b", CROPS, 1.5, ["optim=adam", "optim.lr=0.01"], modified=DAY + 2000)
    a_run(outputs / "runs" / "c", CROPS, None, ["optim.lr=0.1"], modified=DAY + 3000)
    a_run(outputs / "runs" / "d", TOY, 1.01, ["data=toy", "optim=gd", "optim.lr=0.01"], modified=DAY + 4000)
    a_run(outputs / "runs" / "e", TOY, 2.0, ["data=toy", "optim=adam"], modified=DAY + 5000)
    (outputs / "runs" / "f" / ".hydra").mkdir(parents=True)
    (outputs / "runs" / "f" / ".hydra" / "overrides.yaml").write_text("- data=csv\n")
    os.utime(outputs / "runs" / "f" / ".hydra", (DAY, DAY))  # when the job started
    return outputs


def test_runs_on_different_data_get_a_table_each_and_a_best_each(day, tmp_path, capsys):
    out = tmp_path / "report"
    assert compare.main([str(day), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    by_data = {name: [row for row in rows if row["data_set"] == name] for name in ("crops", "toy", "unknown data")}
    assert sum(map(len, by_data.values())) == len(rows) == 6
    assert [row["best"] for row in by_data["crops"]] == ["*", "", ""]  # a ratio of 1.5, not the toy run's 1.01
    assert [row["best"] for row in by_data["toy"]] == ["*", ""]
    assert [row["best"] for row in by_data["unknown data"]] == [""]  # the job that left no summary
    assert by_data["crops"][0]["overrides"] == "optim=adam,optim.lr=0.01"
    assert by_data["crops"][-1]["status"] == "diverged"
    printed = capsys.readouterr().out
    assert printed.startswith("6 runs on 3 data sets, best first:\n")
    blocks = {block.splitlines()[0]: block.splitlines()[1:] for block in printed.split(":\n", 1)[1].split("\n\n")}
    assert list(blocks)[:3] == [
        "crops — 3 runs, best first",
        "toy — 2 runs, best first",
        "unknown data — 1 run, best first",
    ]
    assert [sum(line.startswith("*") for line in lines) for lines in list(blocks.values())[:3]] == [1, 1, 0]
    markdown = (out / "summary.md").read_text()
    assert [line for line in markdown.splitlines() if line.startswith("## ")] == [
        "## crops — 3 runs, best first",
        "## toy — 2 runs, best first",
        "## unknown data — 1 run, best first",
    ]


def test_data_sets_that_share_a_name_are_told_apart_and_float_noise_splits_none():
    other = {**CROPS, "feature_names": ["temp"], "target_names": ["apples"], "optimal_loss": 3.2}
    runs = [
        as_run(CROPS, 1.5, "a"),
        as_run({**CROPS, "optimal_loss": CROPS["optimal_loss"] * (1 + 1e-12)}, 2.0, "b"),
        as_run(other, 1.1, "c"),
    ]
    data_sets = compare.group_by_data(runs)
    assert [(d.name, len(d.runs)) for d in data_sets] == [
        ("crops: 3 features → apples, oranges", 2),
        ("crops: 1 feature → apples", 1),
    ]
    seeds = [{**CROPS, "data": "synthetic", "optimal_loss": optimum} for optimum in (1.5, 2.5)]
    renamed = {**seeds[0], "feature_names": ["a", "b", "c"]}  # alike in all a name shows
    names = compare.data_set_names([Run(Path(), data, "").data_set for data in [*seeds, renamed]])
    assert list(names.values()) == ["synthetic: optimum 1.5 #1", "synthetic: optimum 2.5", "synthetic: optimum 1.5 #2"]


def test_a_plot_of_a_hundred_runs_names_a_dozen_and_keeps_its_axis_despite_a_diverged_run():
    runs = [as_run(CROPS, 1 + i, f"{i}") for i in range(99)] + [as_run(CROPS, None, "diverged")]
    named = {runs[50].path}  # a run folder the user gave
    figure = loss_curves_figure([("crops", runs, [run.overrides for run in runs])], named)
    (ax,) = figure.axes
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(legend) == LEGEND_RUNS and legend[:11] == [str(i) for i in range(11)] and legend[-1] == "50"
    assert "12 best or given of 100; the others in grey" in ax.get_legend().get_title().get_text()
    low, high = ax.get_ylim()
    assert 0.5 < low < CROPS["optimal_loss"] and 400 < high < 1000  # not 1e24: the diverged run is cut at the top
    (exit_mark,) = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert list(exit_mark.get_xdata()) == [1] and list(exit_mark.get_ydata()) == [high]
    assert "optimum (least squares) 0.9094" in [text.get_text() for text in ax.texts]


def test_a_diverged_run_among_the_named_says_so(tmp_path):
    runs = [as_run(TOY, 1.2, "ok"), as_run(TOY, None, "optim.lr=1")]
    (ax,) = loss_curves_figure([("toy", runs, ["ok", "optim.lr=1"])]).axes
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["ok", "optim.lr=1 (diverged)"]
    assert ax.get_ylim()[1] < 1000


@pytest.mark.parametrize(
    "arguments,folders",
    [
        (["--last", "2"], ["d", "e"]),
        (["--since", datetime.fromtimestamp(DAY + 3000).strftime("%Y-%m-%dT%H:%M")], ["c", "d", "e"]),
        (["optim=adam"], ["b", "e"]),
        (["optim=adam", "data=toy"], ["e"]),
        (["optim.lr=1e-2"], ["b", "d"]),  # their overrides say 0.01: compared as a number
        (["data=toy", "--last", "1"], ["e"]),
    ],
)
def test_filters_pick_the_runs(day, tmp_path, arguments, folders):
    out = tmp_path / "report"
    assert compare.main([str(day), *arguments, "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert sorted(Path(row["path"]).name for row in rows) == folders


def test_since_takes_a_span_back_from_now():
    now = 1_000_000.0
    assert since_time("30m", now) == now - 1800 and since_time("2h", now) == now - 7200
    assert since_time("1d", now) == now - 86400
    assert since_time("2026-12-01 20:00", now) == since_time("2026-12-01T20:00", now) is not None
    assert since_time("yesterday", now) is None


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--since", "yesterday"], "Error: --since 'yesterday' is not a time; give a date such as 2026-12-01,"),
        (["--last", "five"], "Error: --last 'five' is not a number of runs; give one such as --last 5."),
        (["optim=lbfgs", "data=toy"], "Error: no run matches optim=lbfgs data=toy, of the 6 runs under "),
    ],
)
def test_a_bad_filter_is_one_line_and_exit_2(day, tmp_path, capsys, arguments, message):
    assert compare.main([str(day), *arguments, "--out", str(tmp_path / "report")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(message) and error.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_without_out_it_writes_into_a_folder_of_its_own(day, monkeypatch, capsys):
    monkeypatch.chdir(day.parent)
    before = sorted(day.parent.rglob("*"))
    assert compare.main(["--last", "3"]) == 0  # outputs/, the default
    (folder,) = (day / "compare").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", folder.name)
    assert sorted(day.parent.rglob("*")) == sorted(before + [day / "compare", *folder.iterdir(), folder])
    assert {p.name for p in folder.iterdir()} == {"summary.csv", "summary.md", "loss_curves.png"}
    assert capsys.readouterr().out.rstrip().endswith(f"in {Path('outputs', 'compare', folder.name)}")
    assert compare.main([]) == 0  # a second comparison, in a folder of its own, reads runs, not the first one's files
    (second,) = set((day / "compare").iterdir()) - {folder}
    assert len(list(csv.DictReader((second / "summary.csv").open()))) == 6
