"""Every picture the tool draws. matplotlib is imported inside each function, only when one is drawn."""

import io
import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from experiments.runs import Run


LEGEND_RUNS = 12  # runs named in a legend, in a panel; the others are drawn thin and grey
LABEL_LENGTH = 60  # characters of a run's label in a legend


def _figure(**kwargs) -> "Figure":
    """A matplotlib Figure that draws without a display. Made without pyplot, it needs no backend: choosing
    one (matplotlib.use) would take a notebook's inline plots away for the rest of its session."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def png_of(figure: "Figure") -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def save_png(figure: "Figure", path: Path) -> None:
    """Write `figure` to `path` as a PNG, whole (see `experiments.files.write_whole`)."""
    from experiments.files import write_whole

    write_whole(path, png_of(figure))


def fit_figure(
    features: torch.Tensor,
    targets: torch.Tensor,
    predictions: torch.Tensor,
    feature_names: list[str],
    target_names: list[str],
) -> "Figure":
    """Tutorial 003's plot for 1-D data (the points and the fitted line); otherwise one panel
    per target of predicted against actual values, where a perfect model lies on the diagonal."""
    features, targets, predictions = (t.detach().cpu().double() for t in (features, targets, predictions))
    if features.shape[1] == 1 and targets.shape[1] == 1:
        fig = _figure(figsize=(5, 4), layout="tight")
        ax = fig.subplots()
        order = features[:, 0].argsort()
        ax.plot(features[:, 0], targets[:, 0], "bo", label="data")
        ax.plot(features[order, 0], predictions[order, 0], "r-", label="model")
        ax.set(xlabel=feature_names[0], ylabel=target_names[0], title="Fitted line")
        ax.legend()
        return fig
    fig = _figure(figsize=(4 * len(target_names), 4), layout="tight")
    for ax, name, actual, predicted in zip(
        fig.subplots(1, len(target_names), squeeze=False)[0], target_names, targets.T, predictions.T
    ):
        low, high = min(actual.min(), predicted.min()).item(), max(actual.max(), predicted.max()).item()
        ax.plot([low, high], [low, high], "k--", linewidth=1, label="perfect")
        ax.plot(actual, predicted, "o", label="model")
        ax.set(xlabel=f"actual {name}", ylabel=f"predicted {name}", title=name)
        ax.legend()
    return fig


def loss_curves_figure(
    panels: list[tuple[str, list["Run"], list[str]]], named: Collection[Path] = (), left_out: int = 0
) -> "Figure":
    """The runs' whole-data loss per epoch on a log scale, a panel per data set (`panels`: its name, its
    runs best first, their labels), stacked: losses on different data are in different units. In each,
    the best `LEGEND_RUNS` runs (those in `named`, folders the user gave, among them) each in its colour
    and named in the legend, the others thin and grey; the optimum as a dashed line. The y axis spans a
    bit below the optimum to a bit above the highest starting loss: a curve that leaves it (a diverged
    run) is cut at the top edge and marked there with a triangle. `left_out`: data sets not drawn."""
    curves = [
        (name, [(run, label, points) for run, label in zip(runs, labels) if (points := _positive_points(run.curve))])
        for name, runs, labels in panels
    ]
    curves = [(name, drawn) for name, drawn in curves if drawn] or [("", [])]
    fig = _figure(figsize=(11, 4.6 * len(curves) + 0.4 * (len(curves) > 1)), layout="constrained")
    for ax, (name, drawn) in zip(fig.subplots(len(curves), 1, squeeze=False)[:, 0], curves):
        on = f" on {name}" if name else ""
        runs = f"{len(drawn)} run{'s' * (len(drawn) != 1)}"
        title = f"Loss curves of {runs}{on}" if len(curves) == 1 else f"{name} — {runs}"
        _loss_panel(ax, drawn, set(named), title)
    if len(curves) > 1 or left_out:
        total = sum(len(drawn) for _, drawn in curves)
        more = f" (the {len(curves)} with the most runs; {left_out} more in summary.md)" if left_out else ""
        fig.suptitle(f"Loss curves of {total} runs on {len(curves) + left_out} data sets, each in its own units{more}")
    return fig


def _positive_points(curve: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(step, value) for step, value in curve if math.isfinite(value) and value > 0]


def _loss_panel(ax, curves: list[tuple["Run", str, list[tuple[int, float]]]], named: set[Path], title: str) -> None:
    """One data set's loss curves (run, label, points; best first) on `ax` (see `loss_curves_figure`)."""
    import matplotlib
    from matplotlib.collections import LineCollection

    ax.set(yscale="log", xlabel="epoch", ylabel="loss on the whole data set (MSE)", title=title)
    ax.grid(True, which="major", alpha=0.3)
    if not curves:
        return
    chosen = [i for i, (run, _, _) in enumerate(curves) if run.path in named][:LEGEND_RUNS]
    chosen = sorted(chosen + [i for i in range(len(curves)) if i not in chosen][: LEGEND_RUNS - len(chosen)])
    optima = sorted({run.summary["optimal_loss"] for run, _, _ in curves if _positive(run.summary.get("optimal_loss"))})
    low = min([*optima, *(value for _, _, points in curves for _, value in points)])
    high = max(points[0][1] for _, _, points in curves)
    margin = 10 ** max(0.05, 0.04 * math.log10(max(high / low, 1.0)))  # a bit, on the log scale
    low, high = low / margin, high * margin
    others = [points for i, (_, _, points) in enumerate(curves) if i not in chosen]
    if others:
        ax.add_collection(LineCollection(others, colors="0.6", linewidths=0.7, alpha=0.6, zorder=1))
    palette = matplotlib.colormaps["tab10" if len(chosen) <= 10 else "viridis"]
    exits: list[tuple[int, object]] = []  # where each curve leaves the plot, in its colour
    for position, i in enumerate(chosen):
        run, label, points = curves[i]
        color = palette(position) if len(chosen) <= 10 else palette(0.9 * position / (len(chosen) - 1))
        label = label if len(label) <= LABEL_LENGTH else label[: LABEL_LENGTH - 1] + "…"  # the table has it whole
        if run.summary.get("status") != "ok":
            label += f" ({run.summary.get('status')})"
        steps, values = zip(*points)
        ax.plot(steps, values, color=color, linewidth=2.2 if i == 0 else 1.2, label=label, zorder=3)
        exits += [(step, color) for step, value in points if value > high][:1]
    exits += [(next(s for s, v in points if v > high), "0.45") for points in others if max(v for _, v in points) > high]
    for step, color in exits:  # on the top edge, outside the clipped area
        ax.plot([step], [high], "^", color=color, markersize=7, clip_on=False, zorder=4)
    for optimum in optima:
        ax.axhline(optimum, color="black", linestyle="--", linewidth=1, zorder=2)
        ax.annotate(
            f"optimum (least squares) {optimum:.4g}",
            (0.005, optimum),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize="small",
        )
    ax.autoscale_view()
    ax.set_ylim(low, high)
    shown = f"the best {len(chosen)}" if chosen == list(range(len(chosen))) else f"the {len(chosen)} best or given"
    notes = [f"{shown} of {len(curves)}; the other{'s' * (len(others) > 1)} in grey"] * bool(others) + [
        "▲ where a curve leaves the plot"
    ] * bool(exits)
    ax.legend(
        title="\n".join(notes) or None,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )


# What draws separate lines in the learning-rate curve, where the runs differ in it, and how to say it.
LINE_SETTINGS = {
    "max_epochs": "{} epochs",
    "batch_size": "batches of {}",
    "momentum": "momentum {}",
    "model": "model={}",
    "schedule": "{} schedule",
    "optim": "optim={}",
    "standardize": "standardize={}",
    "whiten": "whiten={}",
}


def varies_lr(runs: list["Run"]) -> bool:
    """Whether some runs alike in everything the curve draws lines for (`LINE_SETTINGS`) try more than
    one learning rate: then a learning-rate curve says something (not for recipes that each set their own)."""
    lrs: dict[tuple, set[float]] = {}
    for run in runs:
        if _positive(run.summary.get("lr")):
            key = tuple(str(run.summary.get(setting)) for setting in LINE_SETTINGS)
            lrs.setdefault(key, set()).add(run.summary["lr"])
    return any(len(values) > 1 for values in lrs.values())


def lr_curve_figure(runs: list["Run"], on: str = "") -> "Figure":
    """The learning-rate curve of a sweep: each run's final loss as a multiple of the optimum against
    its learning rate, both on log scales, one line per value of each setting the runs differ in
    (`LINE_SETTINGS`: epochs, batch size, momentum...); diverged runs marked at the top, at their
    learning rate; the largest stable learning rate of full-batch gradient descent as a vertical line.
    `on`: the data set, for the title (" on crops")."""
    fig = _figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    lines: dict[tuple, list[tuple[float, float]]] = {}
    diverged = []
    for run in runs:
        summary = run.summary
        if not _positive(summary.get("lr")):
            continue
        if summary.get("status") == "diverged":
            diverged.append((summary["lr"], summary.get("diverged_at_epoch")))
        elif summary.get("status") in ("ok", "interrupted") and _positive(summary.get("loss_ratio")):
            key = tuple(str(summary.get(setting)) for setting in LINE_SETTINGS)
            lines.setdefault(key, []).append((summary["lr"], summary["loss_ratio"]))
    varying = [i for i in range(len(LINE_SETTINGS)) if len({key[i] for key in lines}) > 1] or [0]
    markers = "osD^v<>p*h"
    for i, (key, points) in enumerate(sorted(lines.items())):
        label = ", ".join(list(LINE_SETTINGS.values())[k].format(key[k]) for k in varying)
        lrs, ratios = zip(*sorted(points))
        ax.plot(lrs, ratios, marker=markers[i % len(markers)], linewidth=1.5, label=label)
    ax.set(xscale="log", yscale="log")
    if diverged:
        top = ax.get_ylim()[1] if lines else 10.0
        lrs = [lr for lr, _ in diverged]
        ax.plot(lrs, [top] * len(lrs), "X", color="black", markersize=9, clip_on=False, label="diverged (at its lr)")
        ax.set_ylim(top=top)
    stable = {run.summary.get("max_stable_lr") for run in runs if _positive(run.summary.get("max_stable_lr"))}
    if len(stable) == 1:
        ax.axvline(
            stable.pop(),
            color="black",
            linestyle="--",
            linewidth=1,
            label="largest stable lr (full-batch gd, no momentum)",
        )
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="the optimum (1x)")
    ax.set(
        xlabel="learning rate (optim.lr)",
        ylabel="final loss / least-squares loss",
        title=f"Learning-rate curve of {sum(map(len, lines.values())) + len(diverged)} runs{on}",
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    return fig


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


MAX_TARGET_PANELS = 4  # targets drawn side by side; a wider table's others are left out
EQUAL_SCALES = 5  # a surface whose contours are ellipses at most this long for their width is drawn to one scale
NAMED_PATHS = 10  # paths drawn each in its colour, named in the legend; a big sweep's others are drawn together
SMALL_MULTIPLES = 16  # runs drawn each in its own panel; more are overlaid
GRID = 200  # points along each axis of a loss surface


def landscape_figure(paths: list[tuple[str, dict]], title: str) -> "Figure":
    """Loss surfaces (contours of the loss above the optimum, log-spaced) with the paths of runs
    across them: `paths` holds each run's label and landscape record (landscape.json, see
    `experiments.landscape`). One run: a panel per target. Several: each run's first target (the
    others train alike, independently), in a panel per run up to `SMALL_MULTIPLES` runs, else the
    runs on the same surface overlaid, a panel per surface."""
    import matplotlib

    palette = matplotlib.colormaps["tab10" if len(paths) <= 10 else "plasma"]
    paths = [
        (label, record, "white" if len(paths) == 1 else palette(i if len(paths) <= 10 else i / (len(paths) - 1) * 0.9))
        for i, (label, record) in enumerate(paths)
    ]  # each run's colour, the same in every panel; plasma's last tenth is too pale on the surface
    if len(paths) == 1:
        ((_, record, _),) = paths
        panels = [
            (paths, name, _surface_title(record, name, False)) for name in list(record["targets"])[:MAX_TARGET_PANELS]
        ]
    elif len(paths) <= SMALL_MULTIPLES:
        panels = [([(label, record, color)], next(iter(record["targets"])), label) for label, record, color in paths]
    else:
        surfaces: dict[str, list[tuple[str, dict, object]]] = {}
        for label, record, color in paths:
            name, target = next(iter(record["targets"].items()))
            shape = {k: v for k, v in target.items() if k != "path"}
            key = json.dumps([record["axes"], record["design"], name, shape])
            surfaces.setdefault(key, []).append((label, record, color))
        panels = [
            (
                runs,
                next(iter(runs[0][1]["targets"])),
                _surface_title(runs[0][1], next(iter(runs[0][1]["targets"])), len(surfaces) > 1),
            )
            for runs in surfaces.values()
        ]
    if len(paths) > 1:
        targets = list(paths[0][1]["targets"])
        firsts = {next(iter(record["targets"])) for _, record, _ in paths}
        many = f" (the first of {len(targets)} targets)" if len(targets) > 1 else ""
        title += f", {targets[0]}{many}" if len(firsts) == 1 else ", each run's first target"
    count = len(panels)
    columns = count if count <= 4 else 3 if count % 3 == 0 and count % 4 else 4
    rows = math.ceil(count / columns)
    overlaid = any(len(runs) > 1 for runs, _, _ in panels)
    fig = _figure(figsize=(5.8 * columns + (2.6 if overlaid else 0), 4.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax, panel in zip(axes, panels):
        _draw_surface(ax, fig, *panel)
    for ax in axes[count:]:
        ax.set_visible(False)
    legend = {}  # every panel's named runs, once each
    for ax in axes[:count]:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    labels, handles = list(legend), list(legend.values())
    if overlaid:
        fig.legend(handles, labels, loc="outside right center", fontsize="small", frameon=False)
    else:
        fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    fig.suptitle(title)
    return fig


def _surface_title(record: dict, name: str, with_design: bool) -> str:
    design = f" ({record['design']} features)" if with_design else ""
    return f"{name}{design}: optimal loss {record['targets'][name]['optimal_loss']:.4g}"


def _draw_surface(ax, fig: "Figure", runs: list[tuple[str, dict, object]], name: str, title: str) -> None:
    """One target's surface and every run's path on it, in its colour (`runs`: label, record, colour);
    of many runs, `NAMED_PATHS` spread through them are named."""
    import matplotlib.patheffects as effects
    from matplotlib.colors import LogNorm

    from experiments.landscape import surface

    record = runs[0][1]
    target = record["targets"][name]
    low, high = _extent([run["targets"][name] for _, run, _ in runs])
    a1, a2 = torch.meshgrid(
        torch.linspace(low[0], high[0], GRID, dtype=torch.float64),
        torch.linspace(low[1], high[1], GRID, dtype=torch.float64),
        indexing="xy",
    )
    excess = (surface(target, a1, a2) - target["optimal_loss"]).clamp(min=0)
    top = excess.max().item()
    floor = max(excess[excess > 0].min().item() if (excess > 0).any() else top, top * 1e-6, 1e-300)
    first, last = math.floor(math.log10(floor)), max(math.ceil(math.log10(top)), math.floor(math.log10(floor)) + 1)
    step = 0.5 if last - first <= 8 else 1  # levels at whole (or half) powers of ten
    levels = [10.0**e for e in torch.arange(first, last + step / 2, step).tolist()]
    filled = ax.contourf(a1, a2, excess.clamp(min=levels[0]), levels=levels, norm=LogNorm(), cmap="viridis")
    decades = [level for level in levels if math.log10(level).is_integer()]
    bar = fig.colorbar(filled, ax=ax, label="loss above the optimum", ticks=decades, shrink=0.9)
    bar.ax.set_yticklabels([_power_of_ten(level) for level in decades])  # plain text: mathtext is slow to lay out
    outline = [effects.Stroke(linewidth=3.2, foreground="black"), effects.Normal()]
    alone = len(runs) == 1
    named = {
        round(k * (len(runs) - 1) / max(min(len(runs), NAMED_PATHS) - 1, 1)) for k in range(min(len(runs), NAMED_PATHS))
    }
    unnamed, unnamed_colors = [], []
    for position, (label, run, color) in enumerate(runs):
        points = [p for p in run["targets"][name]["path"] if p is not None]
        if not points:
            continue
        if position not in named:  # a big sweep's other runs, drawn together below as one artist
            unnamed.append(points)
            unnamed_colors.append(color)
            continue
        xs, ys = zip(*points)
        color = "white" if alone else color  # a panel of its own: its title names the run
        ax.plot(
            xs,
            ys,
            "-",
            color=color,
            linewidth=1.6 if alone else 1.1,
            marker="o" if len(xs) <= 60 else None,
            markersize=2.5 if alone else 3,
            path_effects=outline if alone else None,
            label=f"path (after each {run.get('each', 'epoch')})" if alone else label,
        )
        ax.plot(xs[0], ys[0], "o", color=color, markersize=8, markeredgecolor="black", label="start" if alone else None)
    if unnamed:
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(unnamed, colors=unnamed_colors, linewidths=0.7, alpha=0.7))
    center = target["center"]
    ax.plot(*center, "*", color="white", markersize=16, markeredgecolor="black", label="optimum (least squares)")
    ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), xlabel=record["axes"][0], ylabel=record["axes"][1])
    if high[0] - low[0] == high[1] - low[1]:
        ax.set_aspect("equal")
    ax.set_title(title, fontsize="medium")
    ax.ticklabel_format(style="sci", scilimits=(-3, 4))


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value: float) -> str:
    return "10" + str(round(math.log10(value))).translate(SUPERSCRIPTS)


def _extent(targets: list[dict]) -> tuple[list[float], list[float]]:
    """The box the paths and the optimum lie in, with a margin, leaving out the points of a path
    that has grown far above where it started (a diverging run's flight)."""
    from experiments.landscape import surface

    center = targets[0]["center"]
    kept = [center]
    for target in targets:
        points = [p for p in target["path"] if p is not None]
        if not points:
            continue
        xy = torch.tensor(points, dtype=torch.float64)
        losses = surface(target, xy[:, 0], xy[:, 1])
        kept += xy[losses <= 4 * losses[0]].tolist()
    low = [min(p[k] for p in kept) for k in (0, 1)]
    high = [max(p[k] for p in kept) for k in (0, 1)]
    for k in (0, 1):
        span = high[k] - low[k]
        if span <= 0:  # a path that stays on one line: a span the surface's curvature makes visible
            span = (
                1
                / math.sqrt(max(targets[0]["curvature"][k][k], 1e-300))
                * math.sqrt(max(targets[0]["optimal_loss"], 1e-12))
            )
        low[k], high[k] = low[k] - 0.12 * span, high[k] + 0.12 * span
    spans = [high[k] - low[k] for k in (0, 1)]
    curvatures = torch.linalg.eigvalsh(torch.tensor(targets[0]["curvature"], dtype=torch.float64))
    if curvatures[1] <= EQUAL_SCALES**2 * curvatures[0]:  # one scale for both axes: a round bowl looks round
        for k in (0, 1):
            middle = (low[k] + high[k]) / 2
            low[k], high[k] = middle - max(spans) / 2, middle + max(spans) / 2
    return low, high
