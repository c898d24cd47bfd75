"""The one exception type for mistakes a user can fix, and how a command ends early."""


class UserError(Exception):
    """Bad configuration or input. The command line prints its message alone, without a traceback,
    so the message must name the problem and the fix; the Python API raises it (`experiments.ExperimentError`)."""


class Exit(SystemExit):
    """A command ending early with `code`, for a mistake with its `error`. A SystemExit, because Hydra turns
    an exception in a callback into a warning and prints one from a job after "Error executing job": this
    passes both unchanged. The command line prints `error` as one line and exits (`experiments.cli`); the
    Python API raises `error` (`experiments.api`)."""

    def __init__(self, code: int, error: UserError | None = None) -> None:
        super().__init__(code)
        self.error = error
