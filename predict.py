"""Predict with a trained run: python predict.py run=RUN_FOLDER 'inputs=[[75,63,44]]'. See --help."""

from experiments import stopping

stopping.exit_quietly_on_signal()  # first: Ctrl-C while the command loads ends it without a traceback

from experiments.cli import predict_main  # noqa: E402

if __name__ == "__main__":
    predict_main()
