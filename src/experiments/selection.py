"""Which runs compare.py compares: settings written as train.py takes them (`optim=adam`), runs written
since a moment (`--since 2h`), the last N (`--last 5`)."""

import math
import re
from datetime import datetime

from experiments.runs import Run

SETTING = re.compile(r"[+~]?[A-Za-z_][\w.]*=.*", re.DOTALL)  # optim=adam, optim.lr=1e-5: not a path
SPAN = re.compile(r"(\d+(?:\.\d*)?)\s*([smhdw])")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WHEN_EXAMPLES = (
    "a date such as 2026-12-01, a time such as '2026-12-01 20:00', or a span back from now such as 30m, 2h or 1d"
)


def select(runs: list[Run], settings: list[str], since: float | None, last: int | None) -> list[Run]:
    """The runs made with every one of `settings`, written at or after `since`, the `last` most recent of them."""
    runs = [run for run in runs if all(matches(run, setting) for setting in settings)]
    runs = [run for run in runs if since is None or run.modified >= since]
    if last is not None:
        recent = {id(run) for run in sorted(runs, key=lambda run: run.modified)[-last:]}
        runs = [run for run in runs if id(run) in recent]
    return runs


def since_time(text: str, now: float) -> float | None:
    """The moment `text` names, as a timestamp: a date or date and time (local), or a span back from
    `now` (30m, 2h, 1d); None if it names none."""
    span = SPAN.fullmatch(text.strip())
    if span:
        return now - float(span[1]) * SECONDS[span[2]]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


def matches(run: Run, setting: str) -> bool:
    """Whether `run` was made with `setting` (`name=value`, as train.py takes it): one of its recorded
    overrides is exactly that, or its summary.json records that value under the name's last part
    (optim=adam: `optim`; optim.lr=1e-5: `lr`, compared as a number; trainer.max_epochs: `max_epochs`)."""
    if f",{setting}," in f",{run.overrides},":
        return True
    name, value = setting.split("=", 1)
    key = name.lstrip("+~").rsplit(".", 1)[-1]
    if key not in run.summary:
        return False
    recorded = run.summary[key]
    if isinstance(recorded, bool) or recorded is None:
        return value.strip().lower() in {True: ("true",), False: ("false",), None: ("null", "none", "~")}[recorded]
    if isinstance(recorded, (int, float)):
        try:
            return math.isclose(float(value), recorded, rel_tol=1e-9)
        except ValueError:
            return False
    return str(recorded) == value
