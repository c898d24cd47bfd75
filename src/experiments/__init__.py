"""Linear regression by gradient descent, as configurable Lightning experiments.

From Python, `train`, `sweep`, `load_run` and `compare` (see `experiments.api`); a mistake raises
`ExperimentError` with the line the command line prints. Importing the package loads nothing heavy, so
train.py still answers a mistake at once.
"""

from experiments.api import Comparison, Run, Sweep, compare, load_run, sweep, train
from experiments.errors import UserError as ExperimentError

__all__ = ["Comparison", "ExperimentError", "Run", "Sweep", "compare", "load_run", "sweep", "train"]
