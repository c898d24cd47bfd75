"""A trained run's predictions for new rows, in the data's units. The command line is `experiments.cli`."""

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from experiments.csv_table import FLOAT32_MAX, read_features
from experiments.errors import UserError
from experiments.files import write_whole
from experiments.runs import load_trained_module, read_summary

if TYPE_CHECKING:
    from experiments.module import RegressionModule

USAGE = (
    "python predict.py run=outputs/runs/<stamp> 'inputs=[[75,63,44]]'   (or input_csv=new.csv; "
    "add output=preds.csv to save)"
)


def predict(cfg: DictConfig) -> torch.Tensor:
    """Print the predictions of the run `cfg.run` for `cfg.inputs` or `cfg.input_csv` as a table, and
    write them to `cfg.output` if given; returns them."""
    settings = _settings(cfg)
    features, predictions, feature_names, target_names = predictions_of(settings["run"], settings)
    header = feature_names + [f"predicted {name}" for name in target_names]
    rows = [[f"{v:.6g}" for v in x + p] for x, p in zip(features.tolist(), predictions.tolist())]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))
    if settings["output"] is not None:
        _write_csv(settings["output"], feature_names + target_names, torch.cat([features, predictions], dim=1))
        print(f"Wrote {len(rows)} predictions to {settings['output']}.")
    return predictions


def predictions_of(
    run_dir: str | Path, settings: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """The inputs that `settings` gives (`inputs`, rows of numbers, or `input_csv`) and the predictions for them
    of the run in `run_dir`, in the data's units (float64), with its feature and target names. A diverged run is
    refused: its weights fit nothing."""
    _refuse_diverged(Path(run_dir))
    module, feature_names, target_names = load_trained_module(run_dir)
    features = _inputs(settings, feature_names)
    with torch.no_grad():
        predictions = module.predict(features.to(module.model.weight.dtype)).double()
    _check_finite(module, features, predictions)
    return features, predictions, feature_names, target_names


def _refuse_diverged(run_dir: Path) -> None:
    if not (run_dir / "summary.json").is_file():
        return
    summary, _ = read_summary(run_dir)
    if summary.get("status") == "diverged":
        stable = summary.get("max_stable_lr")
        limit = f" (full-batch gradient descent on its data is stable for optim.lr < {stable:.2g})" if stable else ""
        raise UserError(
            f"{run_dir} diverged at epoch {summary.get('diverged_at_epoch')}: its weights fit nothing, so it "
            f"predicts nothing; train it again with a smaller optim.lr{limit}."
        )


def _settings(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain values, its interpolations (`${...}`) resolved, or one line saying which failed."""
    try:
        settings = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise UserError(f"{error.full_key}= must be given: {USAGE}") from None
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "the command line"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__  # without OmegaConf's detail
        raise UserError(f"{key}: {reason}; give plain values: {USAGE}") from None
    assert isinstance(settings, dict)
    return settings


def _form(feature_names: list[str]) -> str:
    """The way to write inputs for these features, one row as an example."""
    example = "75,63,44" if len(feature_names) == 3 else ",".join(str(i) for i in range(1, len(feature_names) + 1))
    return (
        f"a list of rows of {len(feature_names)} numbers ({', '.join(feature_names)}), quoted for the shell: "
        f"'inputs=[[{example}]]' (more rows: 'inputs=[[...],[...]]')"
    )


def _inputs(settings: dict[str, Any], feature_names: list[str]) -> torch.Tensor:
    if (settings["inputs"] is None) == (settings["input_csv"] is None):
        raise UserError(f"give the inputs either as inputs=[[...], ...] or as input_csv=FILE: {USAGE}")
    if settings["input_csv"] is not None:
        return read_features(settings["input_csv"], feature_names)
    value = settings["inputs"]
    rows = value if isinstance(value, list) else [value]
    rows = rows if rows and isinstance(rows[0], list) else [rows]
    for i, row in enumerate(rows, start=1):
        if (
            isinstance(value, (str, dict))
            or value == []
            or not isinstance(row, list)
            or any(isinstance(v, (list, dict)) for v in row)
        ):
            raise UserError(f"inputs must be {_form(feature_names)}; got {value!r}.")
        if len(row) != len(feature_names):
            raise UserError(
                f"inputs: each row needs {len(feature_names)} numbers ({', '.join(feature_names)}); row {i} is {row!r}."
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
            raise UserError(f"inputs: row {i} ({row!r}) holds something that is not a number.")
        # abs(v) <= FLOAT32_MAX before math.isfinite: a whole number of 400 digits is too large for a float.
        if not all(abs(v) <= FLOAT32_MAX and math.isfinite(v) for v in row):
            raise UserError(
                f"inputs: row {i} holds a number that is not finite or too large for float32 (at most "
                f"{FLOAT32_MAX:.3g}): {', '.join(_short(v) for v in row)}."
            )
    return torch.tensor(rows, dtype=torch.float64)


def _short(value: int | float) -> str:
    """A number in at most a dozen characters (a whole number of 400 digits as "about 1e+399")."""
    if isinstance(value, int) and abs(value) > FLOAT32_MAX:
        return f"about 1e+{len(str(abs(value))) - 1}"
    return f"{value:.6g}"


def _check_finite(module: "RegressionModule", features: torch.Tensor, predictions: torch.Tensor) -> None:
    """Refuse predictions that are not finite numbers: inputs so large that the model's arithmetic
    overflows, or a model whose numbers are not finite."""
    bad = (~torch.isfinite(predictions)).any(dim=1).nonzero().flatten().tolist()
    if not bad:
        return
    if not all(torch.isfinite(t).all() for t in module.state_dict().values()):
        raise UserError("the run's model holds numbers that are not finite (nan or inf); train the run again.")
    rows = ", ".join(str(i + 1) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
    first = bad[0]
    raise UserError(
        f"inputs: the predictions for row{'s' if len(bad) > 1 else ''} {rows} are too large for the model's "
        f"{str(module.model.weight.dtype).removeprefix('torch.')} (row {first + 1}: "
        f"{', '.join(map(_short, features[first].tolist()))} gives "
        f"{', '.join(map(_short, predictions[first].tolist()))}); give inputs nearer the size of the data the "
        f"run was trained on."
    )


def _write_csv(path: str, header: list[str], rows: torch.Tensor) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows.tolist())
    try:
        write_whole(path, text.getvalue())
    except OSError as error:
        raise UserError(f"cannot write output={path}: {error.strerror}.") from None
