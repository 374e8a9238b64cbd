"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Something the user can fix: bad arguments, missing data, a run that does not exist.

    The message is one line saying what is wrong and what to do about it.
    """
