"""Experiments from Python and notebooks: the command line's runs, sweeps and comparisons as objects.

    from experiments import train, sweep, load_run, compare

    run = train("model=scratch", "optim.lr=1e-5")          # the same overrides as the command line
    run.summary["loss_ratio"], run.history                  # per-epoch losses and weights as a table
    run.predict([[75, 63, 44]])                             # in the data's units, scaling included
    runs = sweep("optim.lr=1e-6,1e-5,1e-4", "trainer.max_epochs=50,100")
    runs.table                                              # the sweep summary as a table
    old = load_run("outputs/runs/<stamp>")                  # any run folder, made from Python or the CLI
    compare("outputs/multirun/<stamp>")

`train` and `sweep` run Hydra as `python train.py` and `python train.py -m` do (the same task function,
config, callbacks, sweeper and launcher), so they write the same folders under `outputs/` of the current
directory. A mistake raises `ExperimentError` (which is `experiments.errors.UserError`) carrying the line
the command line prints after "Error: ". Run folders are read as data, as compare.py and predict.py read them.
"""

import io
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.errors import Exit, UserError

if TYPE_CHECKING:
    import pandas as pd
    from hydra.core.utils import JobReturn


def train(*overrides: str) -> "Run":
    """One run, as `python train.py *overrides` makes it, in outputs/runs/<stamp>_<overrides>/."""
    job = _launch(list(overrides), multirun=False)
    return Run(job.hydra_cfg.hydra.runtime.output_dir)


def sweep(*overrides: str) -> "Sweep":
    """A sweep, as `python train.py -m *overrides` runs it, in outputs/multirun/<stamp>/. Jobs that fail
    do not raise: the table says which (the command line exits 1)."""
    from experiments.sweeps import SweepSummary

    SweepSummary.last = None
    _launch(list(overrides), multirun=True)
    assert SweepSummary.last is not None and SweepSummary.last.sweep_dir is not None
    return Sweep(SweepSummary.last.sweep_dir)


def load_run(path: str | Path) -> "Run":
    """A run folder, however it was made (Python, train.py, a sweep's job)."""
    return Run(path)


def compare(
    *paths_and_filters: str | Path, out: str | Path | None = None, last: int | None = None, since: str | None = None
) -> "Comparison":
    """What `python compare.py *paths_and_filters [--out OUT] [--last N] [--since WHEN]` writes (by default
    into outputs/compare/<time>/), and prints."""
    from experiments.comparison import compare_runs

    options = {"--out": out, "--last": last, "--since": since}
    argv = [str(arg) for arg in paths_and_filters]
    argv += [str(item) for option, value in options.items() if value is not None for item in (option, value)]
    return Comparison(compare_runs(argv))


def _launch(overrides: list[str], multirun: bool) -> "JobReturn | Any":
    """Hydra run as `@hydra.main` runs train.py (`hydra._internal.utils._run_hydra` and `_run_app`), its
    refusals raised as UserError. What it returns: the run's JobReturn, or a sweep's."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import CompactHydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    from experiments.cli import error_line, train_task
    from experiments.config import CONFIG_DIR
    from experiments.folders import released_after
    from experiments.resume import resume_arguments

    try:
        with _logging_kept(), released_after():
            arguments = resume_arguments(overrides)  # resume=FOLDER: the recorded overrides (-m for a sweep)
            swept = multirun or bool({"-m", "--multirun"} & set(arguments))
            arguments = [argument for argument in arguments if argument not in ("-m", "--multirun")]
            hydra = Hydra.create_main_hydra2(
                task_name=detect_task_name(*detect_calling_file_or_module_from_task_function(train_task)),
                config_search_path=create_config_search_path(CONFIG_DIR),
            )
            try:
                mode = hydra.get_mode(config_name="config", overrides=arguments)
                if mode is None or (swept and mode == RunMode.RUN):
                    mode = RunMode.MULTIRUN if swept else RunMode.RUN
                    arguments.append(f"hydra.mode={mode.name}")  # what the command line adds
                if mode == RunMode.MULTIRUN and not multirun:
                    raise UserError(f"{' '.join(overrides)} makes a sweep: run it with sweep(), not train().")
                launch = hydra.multirun if mode == RunMode.MULTIRUN else hydra.run
                return launch(config_name="config", task_function=train_task, overrides=arguments)
            finally:
                GlobalHydra.instance().clear()
    except Exit as exit:
        if exit.error is None:  # a sweep whose jobs failed: its summary says which
            return None
        raise exit.error from None
    except CompactHydraException as error:  # what the command line prints, less Hydra's hint about HYDRA_FULL_ERROR
        line = error_line(error)
        if line is None:
            line = f"{error}\n{error.__cause__}" if isinstance(error.__cause__, OmegaConfBaseException) else str(error)
        raise UserError(line) from error


@contextmanager
def _logging_kept():
    """Python's root logger as it was before Hydra configured its own logging for a run."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


class Run:
    """A run folder as data: `summary` (summary.json), `history` (history.csv as a table), `predict`."""

    def __init__(self, path: str | Path) -> None:
        from experiments.runs import read_overrides, read_summary

        self.path = Path(path)
        if not (self.path / "summary.json").is_file() and not (self.path / ".hydra" / "overrides.yaml").is_file():
            raise UserError(
                f"{self.path} is not a run folder (one holds summary.json and .hydra/); runs are in "
                f"outputs/runs/<stamp>/ and outputs/multirun/<stamp>/<job>/."
            )
        self.summary: dict[str, Any] = read_summary(self.path)[0]
        self.overrides: str = read_overrides(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def history(self) -> "pd.DataFrame":
        """One row per logged epoch (index `epoch`), a column per tag: `train/full_loss`, `train/optimal_loss`,
        `weights/apples/temp`, ... (a run older than history.csv: its loss alone, from TensorBoard's files)."""
        import pandas as pd

        from experiments.history import HISTORY
        from experiments.runs import read_loss_curve, read_run_file

        try:
            return pd.read_csv(io.StringIO(read_run_file(self.path / HISTORY, limit=256 << 20)), index_col="epoch")
        except (OSError, ValueError):
            curve = read_loss_curve(self.path)
            return pd.DataFrame(
                {"train/full_loss": [loss for _, loss in curve]}, index=pd.Index([e for e, _ in curve], name="epoch")
            )

    def predict(self, rows: Any) -> "pd.DataFrame":
        """Predictions for `rows` (a list of rows of numbers, one per feature) in the data's units, as predict.py
        makes them: a table of the inputs and predictions by column name."""
        import pandas as pd
        import torch

        from experiments.predict import predictions_of

        rows = rows.tolist() if hasattr(rows, "tolist") else rows  # a NumPy array
        features, predictions, feature_names, target_names = predictions_of(
            self.path, {"inputs": rows, "input_csv": None}
        )
        return pd.DataFrame(torch.cat([features, predictions], dim=1).tolist(), columns=feature_names + target_names)

    def _repr_html_(self) -> str:
        """The result in words: how it ended, its loss against the optimum, its epochs, its folder."""
        import html

        summary = self.summary
        result = f"{summary['status']} after {summary.get('epochs')} epochs"
        if summary.get("diverged_at_epoch"):
            result = f"diverged at epoch {summary['diverged_at_epoch']}"
        if summary.get("error"):
            result += f": {summary['error']}"
        elif summary.get("final_loss") is not None:
            ratio = summary.get("loss_ratio")
            result += f": loss {summary['final_loss']:.6g}, optimum {summary.get('optimal_loss'):.6g}" + (
                f", {ratio:.4g}x optimal" if ratio is not None else ""
            )
        named, where = html.escape(self.overrides), html.escape(str(self.path))
        return f"<p><b>{named}</b> {html.escape(result)}<br><code>{where}</code></p>"

    def _repr_png_(self) -> bytes:
        from experiments import runs
        from experiments.figures import loss_curves_figure, png_of

        record = runs.Run(self.path, self.summary, self.overrides, curve=runs.read_loss_curve(self.path))
        return png_of(loss_curves_figure([(str(self.summary.get("data") or ""), [record], [self.overrides])]))


class Comparison:
    """A folder compare.py or a sweep wrote: `table` (summary.csv), its pictures."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def table(self) -> "pd.DataFrame":
        """summary.csv: a row per run (per data set, best first), as compare.py and the sweep write it."""
        import pandas as pd

        return pd.read_csv(self.path / "summary.csv", keep_default_na=False, na_values=[""])

    def _repr_html_(self) -> str:
        import html

        table = self.table
        counts = table["status"].value_counts()
        line = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"<p>{len(table)} runs: {line}. <code>{html.escape(str(self.path))}</code></p>" + table.drop(
            columns=["path"]
        ).to_html(index=False, na_rep="")

    def _repr_png_(self) -> bytes:
        return (self.path / "loss_curves.png").read_bytes()


class Sweep(Comparison):
    """A sweep folder: its `table` and pictures (as compare.py writes them), and its jobs' `runs`."""

    @property
    def runs(self) -> list[Run]:
        """Each job's run, in job order."""
        from experiments.naming import job_number

        jobs = [job for job in self.path.iterdir() if job.is_dir() and job_number(job) is not None]
        return [Run(job) for job in sorted(jobs, key=job_number)]
