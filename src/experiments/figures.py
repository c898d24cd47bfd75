"""Every picture the tool draws. matplotlib is imported inside each function, only when one is drawn."""

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from experiments.runs import Run


LEGEND_RUNS = 30  # runs named in a legend; a bigger sweep's others are drawn unnamed


def _figure(**kwargs) -> "Figure":
    """A matplotlib Figure that draws without a display."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(**kwargs)


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


def loss_curves_figure(runs: list["Run"], labels: list[str]) -> "Figure":
    """Every run's whole-data loss per epoch on a log scale, labelled by `labels`, best first in the
    legend, with each distinct optimum as a dashed line. The legend sits beside the plot so 30
    runs stay readable."""
    import matplotlib

    plotted = [
        (run, label) for run, label in zip(runs, labels) if any(math.isfinite(v) and v > 0 for _, v in run.curve)
    ]
    named = min(len(plotted), LEGEND_RUNS)
    fig = _figure(figsize=(11, max(4.5, 0.19 * named + 1.5)), layout="constrained")
    ax = fig.subplots()
    colors = matplotlib.colormaps["viridis" if len(plotted) > 10 else "tab10"]
    unnamed = []
    for i, (run, label) in enumerate(plotted):
        points = [(s, v) for s, v in run.curve if math.isfinite(v) and v > 0]
        color = colors(i / max(len(plotted) - 1, 1)) if len(plotted) > 10 else colors(i % 10)
        if i >= named:  # drawn together below: one artist for hundreds of curves
            unnamed.append((points, color))
            continue
        if run.summary.get("status") != "ok":
            label += f" ({run.summary.get('status')})"
        steps, values = zip(*points)
        ax.plot(steps, values, color=color, linewidth=2.2 if i == 0 else 1.2, label=label)
    if unnamed:
        from matplotlib.collections import LineCollection

        lines, line_colors = zip(*unnamed)
        ax.add_collection(LineCollection(lines, colors=line_colors, linewidths=0.8, alpha=0.6))
        ax.autoscale_view()
    optima = sorted({run.summary["optimal_loss"] for run in runs if run.summary.get("optimal_loss")})
    for j, optimum in enumerate(optima):
        ax.axhline(
            optimum, color="black", linestyle="--", linewidth=1, label="optimum (least squares)" if j == 0 else None
        )
    ax.set(
        yscale="log",
        xlabel="epoch",
        ylabel="loss on the whole data set (MSE)",
        title=f"Loss curves of {len(plotted)} runs",
    )
    ax.grid(True, which="major", alpha=0.3)
    if plotted:
        ax.legend(
            title=f"the best {named} of {len(plotted)}" if named < len(plotted) else None,
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            fontsize="small" if len(plotted) <= 15 else "x-small",
            frameon=False,
        )
    return fig


def varies_lr(runs: list["Run"]) -> bool:
    """Whether the runs try more than one learning rate (a learning-rate curve says something)."""
    return len({run.summary.get("lr") for run in runs if _positive(run.summary.get("lr"))}) > 1


def lr_curve_figure(runs: list["Run"]) -> "Figure":
    """The learning-rate curve of a sweep: each run's final loss as a multiple of the optimum against
    its learning rate, both on log scales, one line per number of epochs and batch size; diverged
    runs marked at the top, at their learning rate; the largest stable learning rate of full-batch
    gradient descent on the data as a vertical line."""
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
            lines.setdefault((summary.get("max_epochs"), summary.get("batch_size")), []).append(
                (summary["lr"], summary["loss_ratio"])
            )
    several_batch_sizes = len({batch for _, batch in lines}) > 1
    markers = "osD^v<>p*h"
    for i, ((epochs, batch), points) in enumerate(sorted(lines.items(), key=lambda item: str(item[0]))):
        label = f"{epochs} epochs" + (f", batches of {batch}" if several_batch_sizes else "")
        lrs, ratios = zip(*sorted(points))
        ax.plot(lrs, ratios, marker=markers[i % len(markers)], linewidth=1.5, label=label)
    ax.set(xscale="log", yscale="log")
    if diverged:
        top = ax.get_ylim()[1] if lines else 10.0
        lrs = [lr for lr, _ in diverged]
        ax.plot(lrs, [top] * len(lrs), "x", color="red", markersize=9, clip_on=False, label="diverged")
        ax.set_ylim(top=top)
    stable = {run.summary.get("max_stable_lr") for run in runs if _positive(run.summary.get("max_stable_lr"))}
    if len(stable) == 1:
        ax.axvline(stable.pop(), color="black", linestyle="--", linewidth=1, label="largest stable lr (full batch)")
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="the optimum (1x)")
    ax.set(
        xlabel="learning rate (optim.lr)",
        ylabel="final loss / least-squares loss",
        title=f"Learning-rate curve of {sum(map(len, lines.values())) + len(diverged)} runs",
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    return fig


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
