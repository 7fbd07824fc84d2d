"""Exceptions that carry a user-facing message naming the file, line or field at fault."""


class TfodkitError(Exception):
    """An error caused by user input; the CLI prints its message and exits with code 1."""
