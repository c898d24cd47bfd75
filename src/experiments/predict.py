"""`python predict.py run=RUN_FOLDER 'inputs=[[75,63,44]]'`: a trained run's predictions, in the data's units.

The checkpoint is loaded with `torch.load(weights_only=True)`, so a checkpoint from elsewhere cannot
run code; the model is rebuilt from the run's own `.hydra/config.yaml`.
"""

import csv
import sys
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.csv_table import read_features
from experiments.errors import UserError
from experiments.module import RegressionModule
from experiments.scaling import Scaler

USAGE = ("python predict.py run=outputs/runs/<stamp> 'inputs=[[75,63,44]]'   (or input_csv=new.csv; "
         "add output=preds.csv to save)")
KEYS = {"run", "inputs", "input_csv", "output"}


def load_run(run_dir: str | Path) -> tuple[RegressionModule, list[str], list[str]]:
    """The trained module of a run folder, in evaluation mode, and its feature and target names."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run={run_dir}: there is no such run folder; runs are in outputs/runs/<stamp>/ and "
                        f"outputs/multirun/<stamp>/<job>/.")
    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserError(f"{run_dir} has no checkpoints/last.ckpt: the run did not finish (see its summary.json).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        names = checkpoint["RegressionDataModule"]
        state = checkpoint["state_dict"]
        feature_names, target_names = list(names["feature_names"]), list(names["target_names"])
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same answer
        raise UserError(f"{path} is not a checkpoint this tool can read ({type(error).__name__}); "
                        f"it may be corrupted. Train the run again.") from None
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise UserError(f"{run_dir} has no .hydra/config.yaml, which says how to rebuild the model.")
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    model = instantiate(config.model, in_features=len(feature_names), out_features=len(target_names))
    scaler = Scaler(len(feature_names), len(target_names)) if "scaler.feature_mean" in state else None
    module = RegressionModule(model, optimizer=None, scaler=scaler)
    module.to(state["model.weight"].dtype).load_state_dict(state)
    return module.eval(), feature_names, target_names


def _inputs(config, feature_names: list[str]) -> torch.Tensor:
    if (config.get("inputs") is None) == (config.get("input_csv") is None):
        raise UserError(f"give the inputs either as inputs=[[...], ...] or as input_csv=FILE: {USAGE}")
    if config.get("input_csv") is not None:
        return read_features(config.input_csv, feature_names)
    rows = OmegaConf.to_container(config.inputs) if OmegaConf.is_list(config.inputs) else [config.inputs]
    rows = rows if rows and isinstance(rows[0], list) else [rows]
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != len(feature_names):
            raise UserError(f"inputs: each row needs {len(feature_names)} numbers ({', '.join(feature_names)}); "
                            f"row {i} is {row!r}.")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
            raise UserError(f"inputs: row {i} ({row!r}) holds something that is not a number.")
    return torch.tensor(rows, dtype=torch.float64)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        try:
            config = OmegaConf.from_dotlist(argv)
        except OmegaConfBaseException as error:
            raise UserError(f"could not read the arguments ({error}); {USAGE}") from None
        unknown = set(config) - KEYS
        if unknown or "run" not in config:
            raise UserError(f"{'unknown ' + ', '.join(sorted(unknown)) if unknown else 'run= is missing'}; {USAGE}")
        module, feature_names, target_names = load_run(config.run)
        features = _inputs(config, feature_names)
        with torch.no_grad():
            predictions = module.predict(features.to(module.model.weight.dtype)).double()
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    header = feature_names + [f"predicted {name}" for name in target_names]
    rows = [[f"{v:.6g}" for v in x + p] for x, p in zip(features.tolist(), predictions.tolist())]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))
    if config.get("output") is not None:
        try:
            with open(config.output, "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(feature_names + target_names)
                writer.writerows(x + p for x, p in zip(features.tolist(), predictions.tolist()))
        except OSError as error:
            print(f"Error: cannot write output={config.output}: {error.strerror}.", file=sys.stderr)
            return 2
        print(f"Wrote {len(rows)} predictions to {config.output}.")
    return 0
