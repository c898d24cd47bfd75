"""Predict with a trained run: python predict.py run=RUN_FOLDER 'inputs=[[75,63,44]]'. See --help."""

from experiments.cli import predict_main

if __name__ == "__main__":
    predict_main()
