"""Exceptions that carry a user-facing message naming the file, line or field at fault."""


class TfodkitError(Exception):
    """An error caused by user input; the CLI prints its message and exits with code 1."""


class InputFileError(TfodkitError):
    """A TfodkitError about one input file (and line), whose parts reports can list separately."""

    def __init__(self, path: object, detail: str, line: int | None = None) -> None:
        self.path, self.detail, self.line = str(path), detail, line
        super().__init__(f"{path}:{line}: {detail}" if line else f"{path}: {detail}")
