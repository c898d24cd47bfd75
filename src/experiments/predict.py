"""A trained run's predictions for new rows, in the data's units. The command line is `experiments.cli`."""

import csv
import math

import torch
from omegaconf import DictConfig, OmegaConf

from experiments.csv_table import FLOAT32_MAX, read_features
from experiments.errors import UserError
from experiments.runs import load_trained_module

USAGE = (
    "python predict.py run=outputs/runs/<stamp> 'inputs=[[75,63,44]]'   (or input_csv=new.csv; "
    "add output=preds.csv to save)"
)


def predict(cfg: DictConfig) -> torch.Tensor:
    """Print the predictions of the run `cfg.run` for `cfg.inputs` or `cfg.input_csv` as a table, and
    write them to `cfg.output` if given; returns them."""
    module, feature_names, target_names = load_trained_module(cfg.run)
    features = _inputs(cfg, feature_names)
    with torch.no_grad():
        predictions = module.predict(features.to(module.model.weight.dtype)).double()
    header = feature_names + [f"predicted {name}" for name in target_names]
    rows = [[f"{v:.6g}" for v in x + p] for x, p in zip(features.tolist(), predictions.tolist())]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))
    if cfg.output is not None:
        _write_csv(cfg.output, feature_names + target_names, torch.cat([features, predictions], dim=1))
        print(f"Wrote {len(rows)} predictions to {cfg.output}.")
    return predictions


def _inputs(cfg: DictConfig, feature_names: list[str]) -> torch.Tensor:
    if (cfg.inputs is None) == (cfg.input_csv is None):
        raise UserError(f"give the inputs either as inputs=[[...], ...] or as input_csv=FILE: {USAGE}")
    if cfg.input_csv is not None:
        return read_features(cfg.input_csv, feature_names)
    rows = OmegaConf.to_container(cfg.inputs) if OmegaConf.is_list(cfg.inputs) else [cfg.inputs]
    rows = rows if rows and isinstance(rows[0], list) else [rows]
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != len(feature_names):
            raise UserError(
                f"inputs: each row needs {len(feature_names)} numbers ({', '.join(feature_names)}); row {i} is {row!r}."
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
            raise UserError(f"inputs: row {i} ({row!r}) holds something that is not a number.")
        if not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in row):
            raise UserError(
                f"inputs: row {i} ({row!r}) holds a number that is not finite or too large for "
                f"float32 (at most {FLOAT32_MAX:.3g})."
            )
    return torch.tensor(rows, dtype=torch.float64)


def _write_csv(path: str, header: list[str], rows: torch.Tensor) -> None:
    try:
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            writer.writerows(rows.tolist())
    except OSError as error:
        raise UserError(f"cannot write output={path}: {error.strerror}.") from None
