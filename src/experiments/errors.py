"""The one exception type for mistakes a user can fix."""


class UserError(Exception):
    """Bad configuration or input. The command line prints its message alone, without a traceback,
    so the message must name the problem and the fix."""
