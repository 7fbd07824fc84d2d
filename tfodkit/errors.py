"""Exceptions that carry a user-facing message naming the file, line or field at fault."""

import re


class TfodkitError(Exception):
    """An error caused by user input; the CLI prints its message and exits with code 1."""


class InputFileError(TfodkitError):
    """A TfodkitError about one input file (and line), whose parts reports can list separately."""

    def __init__(self, path: object, detail: str, line: int | None = None) -> None:
        self.path, self.detail, self.line = str(path), detail, line
        super().__init__(f"{path}:{line}: {detail}" if line else f"{path}: {detail}")


class BadInputData(TfodkitError):
    """Training or evaluation input that cannot be read: a damaged TFRecord, an undecodable image, an unknown
    class. The training loop saves a checkpoint before passing it on."""


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after saving its progress; the CLI exits with 128 + the signal number."""

    def __init__(self, signum: int, message: str = "", resumable: bool = False) -> None:
        self.signum = signum
        self.resumable = resumable  # the same command continues from the saved checkpoint
        super().__init__(message or f"stopped by signal {signum}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def op_error_text(error: Exception) -> str:
    """A TensorFlow op error's message (tf.errors.OpError) without its graph-function names, node and op suffix."""
    text = re.sub(r"\[\[\{\{node [^}]*\}\}\]\]", "", getattr(error, "message", str(error)).split(" [Op:")[0])
    return re.sub(r"\{\{[^}]*\}\}\s*", "", text).strip()
