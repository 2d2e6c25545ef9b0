"""Errors that nodebench reports to the user as one line and exit code 2."""


class UserError(Exception):
    """Bad input from the user: an unknown name, an invalid value, a missing or malformed file.

    The command-line interface prints ``nodebench: error: <message>`` and exits with code 2, without a
    traceback. The message must say what is wrong and what would be valid.
    """
