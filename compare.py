"""Compare runs: python compare.py PATH... (run folders, sweep folders or outputs/). See README.md."""

import sys

from experiments.comparison import main

if __name__ == "__main__":
    sys.exit(main())
