"""Reading the text files a user hands to tfodkit, with an error that names the file and what it should be."""

from __future__ import annotations

from pathlib import Path

from tfodkit.errors import TfodkitError


def read_user_text(path: Path, what: str) -> str:
    """The UTF-8 text of `path`; `what` names the kind of file in the error ("pipeline config", "sweep file")."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TfodkitError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TfodkitError(f"{path}: cannot read {what}: {error}") from None
