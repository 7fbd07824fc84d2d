"""Find a dataset's XML and image files and pair each XML with its image, inside the dataset root only."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path, PurePosixPath
from typing import Iterator

from tfodkit.dataset.images import IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Match:
    """The image an XML file describes (None when there is none), and how it was found."""

    xml: str  # path relative to the annotations folder
    image: str | None  # path relative to the images folder
    problem: str | None  # why there is no image (or why the match is ambiguous)
    note: str | None  # a warning about how the image was found


def _walk(folder: str, prefix: str, extensions: tuple[str, ...]) -> Iterator[str]:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):  # like Path.rglob: links to folders are not followed
                yield from _walk(entry.path, f"{prefix}{entry.name}/", extensions)
            elif os.path.splitext(entry.name)[1].lower() in extensions and entry.is_file():
                yield prefix + entry.name


def find_files(root: Path, extensions: tuple[str, ...]) -> list[str]:
    """Relative posix paths of the files under `root` whose extension (any case) is listed, sorted."""
    return sorted(_walk(str(root), "", extensions))


def find_xml_files(root: Path) -> list[str]:
    return find_files(root, (".xml",))


def find_image_files(root: Path) -> list[str]:
    return find_files(root, IMAGE_EXTENSIONS)


def _inside_root(filename: str) -> PurePosixPath | None:
    """The <filename> as a relative path, or None when it is absolute or climbs out with '..'."""
    path = PurePosixPath(filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        return None
    return path


class ImageIndex:
    """Image files by relative path and by (folder, stem)."""

    def __init__(self, images: list[str]) -> None:
        self.paths = set(images)
        self.by_stem: dict[tuple[str, str], list[str]] = {}
        for image in images:
            path = PurePosixPath(image)
            self.by_stem.setdefault((str(path.parent), path.stem), []).append(image)

    def match(self, xml: str, filename: str | None) -> Match:
        """XML in folder F matches image F/<filename>, else F/<XML stem>.<any image extension>.
        <path> is never used, and a <filename> that is absolute or contains '..' is never followed."""
        folder = PurePosixPath(xml).parent
        reason = "the XML has no <filename>"
        if filename is not None:
            inside = _inside_root(filename)
            if inside is None:
                reason = f"<filename> {filename!r} points outside the dataset root (never followed)"
            else:
                candidate = (folder / inside).as_posix()
                if candidate in self.paths:
                    return Match(xml, candidate, None, None)
                reason = f"<filename> {filename!r} is not in {folder.as_posix() or '.'}/"
        stem = PurePosixPath(xml).stem
        found = self.by_stem.get((str(folder), stem), [])
        if len(found) == 1:
            return Match(xml, found[0], None, f"{reason}; matched by the XML's name to {found[0]}")
        if len(found) > 1:
            return Match(xml, None, f"{reason}, and several images share the XML's name: {', '.join(found)}", None)
        extensions = "|".join(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
        return Match(xml, None, f"no image for this XML: {reason}, and there is no "
                                f"{(folder / stem).as_posix()}.{{{extensions}}} (<path> is never followed)", None)
