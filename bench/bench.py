"""`make bench`: the framework against plain PyTorch loops doing the same work, on this machine.

Every framework figure comes from `train(cfg)`, the function `python train.py` runs, on a
config composed by Hydra from conf/ as the command line would, or from the command itself; the
plain loops are in bench/plain.py. Each framework run is paired with a baseline run right after
it, and each ratio is given as the median over the pairs with its range, so a busy moment shows
as a wide range rather than as a regression or an improvement. Prints a table and writes
bench/results.json.
"""

import contextlib
import io
import itertools
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import plain
from experiments.config import compose_run
from experiments.synthetic import Synthetic
from experiments.tables import builtin_table
from experiments.training import train

REPO = Path(__file__).resolve().parents[1]
REPEATS = 5
BIG = {"n": 2_000_000, "num_features": 32, "num_targets": 4, "batch_size": 8192, "epochs": 1, "lr": 0.01}
SMALL = {"batch_size": 5, "epochs": 100, "lr": 1e-5, "repeats": 21}  # 100 epochs take 0.03 s: more pairs


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired(framework: list[float], baseline: list[float]) -> dict[str, float]:
    """The ratio of each pair (framework / baseline for times, framework speed / baseline speed for
    rates), measured one right after the other: its median, and its range, which a busy moment widens."""
    return spread([f / b for f, b in zip(framework, baseline)])


def run_framework(scratch: Path, *overrides: str) -> dict:
    """One run of train.py's `train(cfg)`, its output swallowed; returns its summary."""
    cfg = compose_run(overrides, tempfile.mkdtemp(dir=scratch))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return train(cfg)


def big_data(scratch: Path, accelerator: str) -> dict:
    """Rows per second through shuffled mini-batch SGD on 2M x 32 -> 4, and the streaming ceiling."""
    overrides = [
        "data=synthetic",
        f"data.n={BIG['n']}",
        f"data.num_features={BIG['num_features']}",
        f"data.num_targets={BIG['num_targets']}",
        f"data.batch_size={BIG['batch_size']}",
        "data.shuffle=true",
        f"optim.lr={BIG['lr']}",
        f"trainer.max_epochs={BIG['epochs']}",
        f"accelerator={accelerator}",
    ]
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    table = Synthetic(BIG["n"], BIG["num_features"], BIG["num_targets"], noise=0.1).on(device, torch.float32)
    rows = BIG["n"] * BIG["epochs"]
    framework, loop = [], []
    for _ in range(REPEATS):
        framework.append(run_framework(scratch, *overrides)["rows_per_second"])  # its set-up warms it up
        # Run twice, timing the second: the first loop after a framework run runs at about half speed.
        plain.big_data_epochs(table.features, table.targets, BIG["batch_size"], BIG["epochs"], BIG["lr"])
        seconds = plain.big_data_epochs(table.features, table.targets, BIG["batch_size"], BIG["epochs"], BIG["lr"])
        loop.append(rows / seconds)
    ceiling = [BIG["n"] / plain.streaming_pass(table.features, table.targets) for _ in range(REPEATS)]
    gib_per_s = [r * (BIG["num_features"] + BIG["num_targets"]) * 4 / 2**30 for r in ceiling]
    return {
        "unit": "rows/s",
        "framework": spread(framework),
        "plain_loop": spread(loop),
        "streaming_pass": spread(ceiling),
        "memory_bandwidth_gib_s": spread(gib_per_s),
        "ratio": paired(framework, loop),
        "target": ">= 1.0",
        "higher_is_better": True,
    }


def small_data(scratch: Path) -> dict:
    """Seconds per optimizer step on crops, batch 5, shuffled, 100 epochs. A run is a tenth of a
    second, so the two are measured in pairs, one after the other, and the ratio is the median of
    the pairs' ratios: a slow moment of the machine then slows both sides of a pair."""
    overrides = [
        f"data.batch_size={SMALL['batch_size']}",
        "data.shuffle=true",
        f"optim.lr={SMALL['lr']}",
        f"trainer.max_epochs={SMALL['epochs']}",
    ]
    crops = builtin_table("crops")
    run_framework(scratch, *overrides)  # warm-up, untimed: the first run of each pays one-off costs
    plain.tutorial_loop(crops.features, crops.targets, SMALL["batch_size"], SMALL["epochs"], SMALL["lr"])
    summaries, tutorial = [], []
    for _ in range(SMALL["repeats"]):
        summaries.append(run_framework(scratch, *overrides))
        seconds, steps = plain.tutorial_loop(
            crops.features, crops.targets, SMALL["batch_size"], SMALL["epochs"], SMALL["lr"]
        )
        tutorial.append(seconds / steps)
    framework = [s["train_seconds"] / s["steps"] for s in summaries]
    fixed = [s["seconds"] - s["train_seconds"] for s in summaries]
    steps_per_epoch = summaries[0]["steps"] / summaries[0]["epochs"]
    floor = [plain.lightning_epoch_floor(SMALL["epochs"]) / steps_per_epoch for _ in range(REPEATS)]
    return {
        "unit": "s/step",
        "framework": spread(framework),
        "tutorial_loop": spread(tutorial),
        "lightning_floor": spread(floor),
        "framework_fixed_seconds_per_run": spread(fixed),
        "ratio": paired(framework, tutorial),
        "target": "<= 1.5",
        "higher_is_better": False,
    }


_folders = itertools.count()


def fresh_folder(scratch: Path, stem: str) -> Path:
    """A folder no command has written: a run or sweep folder that holds one is refused."""
    return scratch / f"{stem}{next(_folders)}"


def wall_seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def sweep(scratch: Path) -> dict:
    """The 9-job lr x epochs grid through `python train.py -m`, against 9 plain loops in one process."""
    lrs, epochs = ",".join(f"{lr:g}" for lr in plain.SWEEP_LRS), ",".join(map(str, plain.SWEEP_EPOCHS))
    framework, loops = [], []
    for repeat in range(3):
        framework.append(
            wall_seconds(
                [
                    sys.executable,
                    str(REPO / "train.py"),
                    "-m",
                    f"optim.lr={lrs}",
                    f"trainer.max_epochs={epochs}",
                    f"hydra.sweep.dir={scratch}/sweep{repeat}",
                ],
                cwd=scratch,
            )
        )
        loops.append(wall_seconds([sys.executable, str(REPO / "bench" / "plain.py"), "sweep"], cwd=scratch))
    return {
        "unit": "s",
        "framework": spread(framework),
        "plain_loops": spread(loops),
        "ratio": paired(framework, loops),
        "target": None,
        "higher_is_better": False,
    }


def learning_rates(k: int) -> str:
    """`k` learning rates spread on a log scale from 1e-7 to 1e-3 (on crops the largest diverge)."""
    return ",".join(f"{10 ** (-7 + 4 * i / max(k - 1, 1)):.4g}" for i in range(k))


SYNTHETIC = ["data=synthetic", "data.n=2000000", "data.num_features=32", "data.num_targets=4", "data.batch_size=8192"]
SEEDS = ["data.batch_size=5", "data.shuffle=true", "trainer.max_epochs=100"]
# name: (the sweep's arguments, the one run's, the target, repeats with the batched launcher, with the basic one)
SWEEPS = {
    "experiment=sweep_lr_epochs (9 jobs)": (["experiment=sweep_lr_epochs"], ["trainer.max_epochs=200"], 1.1, 3, 3),
    "1 learning rate, 200 epochs": (
        ["-m", "optim.lr=1e-5", "trainer.max_epochs=200"],
        ["trainer.max_epochs=200"],
        None,
        3,
        0,
    ),
    "10 learning rates, 200 epochs": (
        ["-m", f"optim.lr={learning_rates(10)}", "trainer.max_epochs=200"],
        ["trainer.max_epochs=200"],
        None,
        3,
        0,
    ),
    "100 learning rates, 200 epochs": (
        ["-m", f"optim.lr={learning_rates(100)}", "trainer.max_epochs=200"],
        ["trainer.max_epochs=200"],
        1.5,
        3,
        1,
    ),
    "1000 learning rates, 200 epochs": (
        ["-m", f"optim.lr={learning_rates(1000)}", "trainer.max_epochs=200"],
        ["trainer.max_epochs=200"],
        3.0,
        3,
        0,
    ),
    "10 seeds x 3 learning rates, batches of 5": (
        ["-m", "seed=" + ",".join(map(str, range(10))), "optim.lr=1e-6,1e-5,3e-5", *SEEDS],
        ["optim.lr=1e-5", *SEEDS],
        2.0,
        3,
        1,
    ),
    "4 learning rates, synthetic 2M x 32 -> 4": (
        ["-m", "optim.lr=0.001,0.003,0.01,0.03", "trainer.max_epochs=2", *SYNTHETIC],
        ["optim.lr=0.01", "trainer.max_epochs=2", *SYNTHETIC],
        1.3,
        3,
        1,
    ),
}


def sweeps(scratch: Path) -> dict[str, dict]:
    """Each sweep of `SWEEPS` end to end from the command, with the default (batched) launcher and,
    for the record, with `hydra/launcher=basic`, each paired with one `python train.py` run of the
    same data and epochs right after it."""
    results = {}
    for name, (arguments, one_run, target, repeats, basic_repeats) in SWEEPS.items():
        for launcher, count in (("batched", repeats), ("basic", basic_repeats)):
            if not count:
                continue
            print(f"  {name}, {launcher} launcher ...", file=sys.stderr, flush=True)
            swept, single = [], []
            for _ in range(count):
                folder = f"hydra.sweep.dir={fresh_folder(scratch, launcher)}"
                command = [sys.executable, str(REPO / "train.py"), *arguments, f"hydra/launcher={launcher}", folder]
                swept.append(wall_seconds(command, cwd=scratch))
                one = f"hydra.run.dir={fresh_folder(scratch, 'one')}"
                run = [sys.executable, str(REPO / "train.py"), *one_run, one]
                single.append(wall_seconds(run, cwd=scratch))
            results[f"sweep: {name}" + ("" if launcher == "batched" else ", basic launcher")] = {
                "unit": "s",
                "framework": spread(swept),
                "one_run": spread(single),
                "ratio": paired(swept, single),
                "target": f"<= {target}" if target and launcher == "batched" else None,
                "higher_is_better": False,
            }
    return results


def cold_start(scratch: Path) -> dict:
    """`python train.py trainer.max_epochs=1`, end to end, against importing Lightning alone."""
    framework, imports = [], []
    for repeat in range(REPEATS):
        framework.append(
            wall_seconds(
                [
                    sys.executable,
                    str(REPO / "train.py"),
                    "trainer.max_epochs=1",
                    f"hydra.run.dir={scratch}/cold{repeat}",
                ],
                cwd=scratch,
            )
        )
        imports.append(wall_seconds([sys.executable, "-c", "import lightning.pytorch"], cwd=scratch))
    return {
        "unit": "s",
        "framework": spread(framework),
        "import_lightning": spread(imports),
        "ratio": paired(framework, imports),
        "target": "<= 1.3",
        "higher_is_better": False,
    }


QUICK_ANSWERS = {
    "a typo (optim=sdg)": ["optim=sdg"],
    "a bad value (optim.lr=-1)": ["optim.lr=-1"],
    "--help": ["--help"],
}


def quick_answers(scratch: Path) -> dict[str, dict]:
    """How soon train.py answers a mistake or --help (composing and checking the config before torch
    and Lightning load), against importing Lightning alone; each in pairs."""
    results = {}
    for name, args in QUICK_ANSWERS.items():
        answers, imports = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=scratch, capture_output=True)
            answers.append(time.perf_counter() - started)
            imports.append(wall_seconds([sys.executable, "-c", "import lightning.pytorch"], cwd=scratch))
        results[f"quick answer: {name}"] = {
            "unit": "s",
            "framework": spread(answers),
            "import_lightning": spread(imports),
            "ratio": paired(answers, imports),
            "target": "<= 0.3",
            "higher_is_better": False,
        }
    return results


def _figure(value: float, unit: str) -> str:
    if unit == "rows/s":
        return f"{value / 1e6:.2f} M rows/s"
    if unit == "s/step":
        return f"{value * 1e6:.0f} µs/step"
    return f"{value:.2f} s"


def table(results: dict) -> str:
    lines = ["| benchmark | ratio | ratio range | target | framework | baseline |", "|---|---|---|---|---|---|"]
    for name, result in results["benchmarks"].items():
        unit = result["unit"]
        baselines = [
            key
            for key in result
            if isinstance(result[key], dict)
            and key not in ("framework", "ratio")
            and "median" in result[key]
            and not key.startswith(("framework_", "memory_", "lightning_"))
        ]
        shown = "; ".join(f"{key.replace('_', ' ')} {_figure(result[key]['median'], unit)}" for key in baselines)
        ratio = result["ratio"]
        lines.append(
            f"| {name} | {ratio['median']:.2f}x | {ratio['min']:.2f}-{ratio['max']:.2f}x | {result['target'] or '-'} | "
            f"{_figure(result['framework']['median'], unit)} | {shown} |"
        )
    return "\n".join(lines)


def main() -> None:
    benchmarks = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        steps = [
            ("big data, CPU", lambda: big_data(scratch, "cpu")),
            ("small data", lambda: small_data(scratch)),
            ("sweep, 9 jobs", lambda: sweep(scratch)),
            ("cold start", lambda: cold_start(scratch)),
        ]
        if torch.cuda.is_available():
            steps.insert(1, ("big data, GPU", lambda: big_data(scratch, "gpu")))
        else:
            print("No GPU here: the GPU benchmark is skipped.", file=sys.stderr)
        for name, measure in steps:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            benchmarks[name] = measure()
        print("measuring quick answers ...", file=sys.stderr, flush=True)
        benchmarks.update(quick_answers(scratch))
        print("measuring sweeps against one run ...", file=sys.stderr, flush=True)
        benchmarks.update(sweeps(scratch))
    results = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "repeats": REPEATS,
        "benchmarks": benchmarks,
    }
    (Path(__file__).parent / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    small = benchmarks["small data"]
    print(
        f"small data: of the framework's {small['framework']['median'] * 1e6:.0f} µs per step, Lightning's own "
        f"epoch loop (fit with a training_step that does nothing) takes {small['lightning_floor']['median'] * 1e6:.0f}"
        f" µs; a run's fixed cost (set-up, fit picture, checkpoint) is "
        f"{small['framework_fixed_seconds_per_run']['median']:.2f} s more."
    )
    print(
        "ratio: framework / baseline for times, framework / plain loop for rows/s, a sweep / one run of the same "
        "data and epochs, for each pair measured one after the other: the median and the range over the pairs. "
        "Written to bench/results.json."
    )
    missed = [name for name, result in benchmarks.items() if not _meets(result)]
    print(f"Targets missed: {', '.join(missed)}." if missed else "Every target met.")


def _meets(result: dict) -> bool:
    """Whether the median ratio meets the benchmark's target (one with no target always does)."""
    if result["target"] is None:
        return True
    bound = float(result["target"].split()[-1])
    return result["ratio"]["median"] >= bound if result["higher_is_better"] else result["ratio"]["median"] <= bound


if __name__ == "__main__":
    main()
