"""Predict with a trained run: python predict.py run=RUN_FOLDER 'inputs=[[75,63,44]]'. See README.md."""
import sys

from experiments.predict import main

if __name__ == "__main__":
    sys.exit(main())
