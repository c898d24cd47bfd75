"""Train one experiment, or a sweep with -m. See README.md."""
from experiments.train import main

if __name__ == "__main__":
    main()
