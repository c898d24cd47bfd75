"""The pictures: what each one draws, read back from matplotlib's own objects."""

from pathlib import Path

from experiments.comparison import write_comparison
from experiments.figures import _figure, lr_curve_figure, png_of, varies_lr
from experiments.runs import Run


def run(lr: float, epochs: int, status: str = "ok", ratio: float | None = None) -> Run:
    summary = {"status": status, "lr": lr, "max_epochs": epochs, "batch_size": 15, "max_stable_lr": 1.1e-4}
    summary |= {"loss_ratio": ratio, "final_loss": ratio, "optimal_loss": 1.0} if ratio else {"diverged_at_epoch": 4}
    return Run(Path(f"{lr}_{epochs}"), summary, f"optim.lr={lr},trainer.max_epochs={epochs}")


SWEEP = [
    run(1e-6, 100, ratio=900.0),
    run(1e-5, 100, ratio=290.0),
    run(1e-6, 1000, ratio=300.0),
    run(1e-5, 1000, ratio=8.0),
    run(2e-4, 100, "diverged"),
    run(2e-4, 1000, "diverged"),
]


def test_the_lr_curve_draws_a_line_per_epoch_count_and_marks_the_diverged_jobs():
    (ax,) = lr_curve_figure(SWEEP).axes
    lines = {line.get_label(): list(zip(line.get_xdata(), line.get_ydata())) for line in ax.get_lines()}
    assert lines["100 epochs"] == [(1e-6, 900.0), (1e-5, 290.0)]  # by learning rate
    assert lines["1000 epochs"] == [(1e-6, 300.0), (1e-5, 8.0)]
    assert [x for x, _ in lines["diverged (at its lr)"]] == [2e-4, 2e-4]
    assert {y for _, y in lines["diverged (at its lr)"]} == {ax.get_ylim()[1]}  # at the top, where no finished job is
    assert [x for x, _ in lines["largest stable lr (full-batch gd, no momentum)"]] == [1.1e-4, 1.1e-4]
    assert ax.get_xscale() == ax.get_yscale() == "log"


def test_only_a_sweep_of_learning_rates_gets_an_lr_curve(tmp_path):
    write_comparison(SWEEP, tmp_path / "lrs", print_table=False)
    assert (tmp_path / "lrs" / "lr_curve.png").is_file()
    one_lr = [run(1e-5, 100, ratio=290.0), run(1e-5, 1000, ratio=8.0)]
    assert not varies_lr(one_lr)
    write_comparison(one_lr, tmp_path / "epochs", print_table=False)
    assert not (tmp_path / "epochs" / "lr_curve.png").exists()
    recipes = [run(1e-4, 100, ratio=8.0), run(0.5, 1000, ratio=1.0)]  # each its own lr and epochs: no curve to draw
    assert not varies_lr(recipes)


def test_drawing_a_picture_leaves_matplotlibs_backend_as_it_was():
    """A notebook's inline plots keep working after a run has drawn its pictures."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        assert png_of(_figure()).startswith(b"\x89PNG")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
