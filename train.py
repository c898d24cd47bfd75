"""Train one experiment, or a sweep with -m: python train.py [key=value ...]. See README.md and --help."""

from experiments.cli import train_main

if __name__ == "__main__":
    train_main()
