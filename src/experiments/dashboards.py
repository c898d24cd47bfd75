"""What TensorBoard's dashboards show of a run beyond its curves: the CUSTOM SCALARS layout (the loss
beside the optimum in one chart) and the run's row of the HPARAMS tab, as summaries an event file holds."""

import functools
import re
from collections.abc import Mapping
from typing import Any

from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams

# The HPARAMS tab's columns, the same in every run (TensorBoard takes them from the first run it reads).
HPARAMS = (
    "data",
    "optim",
    "lr",
    "batch_size",
    "max_epochs",
    "model",
    "momentum",
    "schedule",
    "standardize",
    "whiten",
    "shuffle",
    "seed",
    "accelerator",
    "options",
)
# The columns it shows until others are ticked: it shows five, those marked as differing between runs first.
SHOWN = ("data", "optim", "lr", "batch_size", "max_epochs")
# Its metrics: the last value each run logged of these tags.
METRICS = {"train/full_loss": "final loss", "train/loss_ratio": "loss ÷ optimum", "val/loss": "held-out loss"}
STATUS = {"ok": api_pb2.STATUS_SUCCESS, "diverged": api_pb2.STATUS_FAILURE}  # interrupted: unknown


def hparams_of(settings: Mapping[str, Any]) -> dict[str, str | float | bool]:
    """A run's settings (see `experiments.summary.run_settings`) as its HPARAMS row: every column of
    `HPARAMS` with a value, numbers as numbers, choices as text. `momentum` is SGD's momentum, Adam's
    first beta, 0 for an optimizer without one; `options` names the optimizer's and schedule's other settings."""
    betas = settings.get("betas")
    row = {key: _value(settings.get(key)) for key in HPARAMS}
    row["momentum"] = float(settings.get("momentum", betas[0] if betas else 0.0))
    others = [f"{key}={_text(value)}" for key, value in settings.items() if key not in HPARAMS]
    row["options"] = " ".join(others) or "none"
    return row


def _value(value: Any) -> str | float | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(_text, value)) + "]"
    return str(value)


def hparams_summaries(settings: Mapping[str, Any], status: str, name: str) -> list[Summary]:
    """The three summaries of TensorBoard's HPARAMS tab for one run: the experiment (its columns and
    metrics), the session's start (its row, called `name`) and end (its status)."""
    row = hparams_of(settings)
    types = {bool: api_pb2.DATA_TYPE_BOOL, float: api_pb2.DATA_TYPE_FLOAT64, str: api_pb2.DATA_TYPE_STRING}
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=key, type=types[type(value)], differs=key in SHOWN) for key, value in row.items()
        ],
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=name) for tag, name in METRICS.items()
        ],
    )
    start = plugin_data_pb2.SessionStartInfo(group_name=name)
    for key, value in row.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, float):
            start.hparams[key].number_value = value
        else:
            start.hparams[key].string_value = value
    end = plugin_data_pb2.SessionEndInfo(status=STATUS.get(status, api_pb2.STATUS_UNKNOWN))
    return [
        _hparams_summary(hparams.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)),
        _hparams_summary(hparams.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
        _hparams_summary(hparams.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)),
    ]


def _hparams_summary(tag: str, content: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=hparams.create_summary_metadata(content))])


@functools.lru_cache(maxsize=16)  # made once for a sweep group's thousand jobs
def layout_summary(target_names: tuple[str, ...], held_out: bool) -> Summary:
    """The CUSTOM SCALARS layout: the loss on the whole data set beside the least-squares optimum in one
    chart, then the ratio, the held-out loss (if any), the mini-batch loss and the learning rate; each
    target's weights in a closed category below. TensorBoard merges the layouts of all runs."""
    charts = [
        ("loss on the whole data set, and the least-squares optimum", ["^train/full_loss$", "^train/optimal_loss$"]),
        ("loss ÷ optimum (1: least squares reached)", ["^train/loss_ratio$"]),
        *([("loss on the held-out rows", ["^val/loss$"])] if held_out else []),
        ("mean loss of the epoch's mini-batches", ["^train/loss$"]),
        ("learning rate", ["^train/lr$"]),
    ]
    weights = [(f"weights and bias of {target}", [f"^weights/{re.escape(target)}/"]) for target in target_names]
    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(title="loss", chart=[_chart(*chart) for chart in charts]),
            layout_pb2.Category(title="weights", chart=[_chart(*chart) for chart in weights], closed=True),
        ]
    )
    tensor = TensorProto(dtype=types_pb2.DT_STRING, string_val=[layout.SerializeToString()])
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=custom_scalars.PLUGIN_NAME))
    return Summary(value=[Summary.Value(tag=custom_scalars.CONFIG_SUMMARY_TAG, metadata=metadata, tensor=tensor)])


def _chart(title: str, tags: list[str]) -> layout_pb2.Chart:
    return layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=tags))
