"""Train one experiment, or a sweep with -m: python train.py [key=value ...]. See README.md and --help."""

from experiments import stopping

stopping.exit_quietly_on_signal()  # first: Ctrl-C while the command loads ends it without a traceback

from experiments.cli import train_main  # noqa: E402

if __name__ == "__main__":
    train_main()
