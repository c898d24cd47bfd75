"""Linear regression by gradient descent, as configurable Lightning experiments.

From Python, `train`, `sweep`, `load_run` and `compare` (see `experiments.api`); a mistake raises
`ExperimentError` with the line the command line prints. Importing the package loads nothing heavy, so
train.py still answers a mistake at once. `train`, `sweep` and `compare` are also the names of modules of
this package, which take their names on the package once imported: so these names always give the
modules, which are callable as the API's functions (`experiments.api.call_as_api`).
"""

import importlib

from experiments.api import Comparison, Run, Sweep, load_run
from experiments.errors import UserError as ExperimentError

__all__ = ["Comparison", "ExperimentError", "Run", "Sweep", "compare", "load_run", "sweep", "train"]


def __getattr__(name: str):
    if name in ("train", "sweep", "compare"):
        return importlib.import_module(f"experiments.{name}")
    raise AttributeError(f"module 'experiments' has no attribute {name!r}")
