"""The tutorials' data sets, shipped with the package so nothing downloads.

A `Table` is what every data source (built-in, CSV, synthetic) turns into: float
features and targets with one name per column, so that weights, plots and
predictions can say "apples/temp" rather than "weight[0, 0]".
"""

from dataclasses import dataclass

import torch

from experiments.errors import UserError

# Tutorials 000, 001 and 002: 15 regions. Temperature (F), rainfall (mm), humidity (%)
# -> crop yields of apples and oranges (tons per hectare).
CROPS_FEATURES = [
    [73, 67, 43],
    [91, 88, 64],
    [87, 134, 58],
    [102, 43, 37],
    [69, 96, 70],
    [74, 66, 43],
    [91, 87, 65],
    [88, 134, 59],
    [101, 44, 37],
    [68, 96, 71],
    [73, 66, 44],
    [92, 87, 64],
    [87, 135, 57],
    [103, 43, 36],
    [68, 97, 70],
]
CROPS_TARGETS = [
    [56, 70],
    [81, 101],
    [119, 133],
    [22, 37],
    [103, 119],
    [57, 69],
    [80, 102],
    [118, 132],
    [21, 38],
    [104, 118],
    [57, 69],
    [82, 100],
    [118, 134],
    [20, 38],
    [102, 120],
]
CROPS_NAMES = (["temp", "rainfall", "humidity"], ["apples", "oranges"])
# Tutorial 002 grows mangoes and oranges on the same numbers.
CROPS_MANGOES_NAMES = (CROPS_NAMES[0], ["mangoes", "oranges"])

# Tutorial 000's own five-region table differs from the first five rows above in one
# cell: region C has rainfall 145, not 134. Kept as printed in the notebook.
CROPS5_TUTORIAL000_FEATURES = [[73, 67, 43], [91, 88, 64], [87, 145, 58], [102, 43, 37], [69, 96, 70]]

# Tutorial 003: 15 points of a 1-D regression.
TOY_X = [
    [3.3],
    [4.4],
    [5.5],
    [6.71],
    [6.93],
    [4.168],
    [9.779],
    [6.182],
    [7.59],
    [2.167],
    [7.042],
    [10.791],
    [5.313],
    [7.997],
    [3.1],
]
TOY_Y = [
    [1.7],
    [2.76],
    [2.09],
    [3.19],
    [1.694],
    [1.573],
    [3.366],
    [2.596],
    [2.53],
    [1.221],
    [2.827],
    [3.465],
    [1.65],
    [2.904],
    [1.3],
]


@dataclass
class Table:
    """A regression data set: `features` (n, f) and `targets` (n, t), float tensors (training casts
    them to its own precision)."""

    features: torch.Tensor
    targets: torch.Tensor
    feature_names: list[str]
    target_names: list[str]

    def __len__(self) -> int:
        return len(self.features)

    def on(self, device: torch.device, dtype: torch.dtype) -> "Table":
        """This table on `device` as `dtype` (itself, if it is there already)."""
        return Table(
            self.features.to(device, dtype), self.targets.to(device, dtype), self.feature_names, self.target_names
        )


def _table(features: list, targets: list, names: tuple[list[str], list[str]]) -> Table:
    return Table(
        torch.tensor(features, dtype=torch.float32),
        torch.tensor(targets, dtype=torch.float32),
        list(names[0]),
        list(names[1]),
    )


BUILTIN_TABLES = {
    "crops": lambda: _table(CROPS_FEATURES, CROPS_TARGETS, CROPS_NAMES),
    "crops5": lambda: _table(CROPS_FEATURES[:5], CROPS_TARGETS[:5], CROPS_NAMES),
    "crops5_tutorial000": lambda: _table(CROPS5_TUTORIAL000_FEATURES, CROPS_TARGETS[:5], CROPS_NAMES),
    "crops_mangoes": lambda: _table(CROPS_FEATURES, CROPS_TARGETS, CROPS_MANGOES_NAMES),
    "toy": lambda: _table(TOY_X, TOY_Y, (["x"], ["y"])),
}


def builtin_table(name: str) -> Table:
    """One of the tutorials' tables by name: crops, crops5, crops5_tutorial000, crops_mangoes or toy."""
    if name not in BUILTIN_TABLES:
        raise UserError(f"data.name={name!r} is not a built-in data set; choose one of {sorted(BUILTIN_TABLES)}.")
    return BUILTIN_TABLES[name]()
