"""LabelImg (Pascal VOC) annotation XML: safe reading into plain Python values, and writing as LabelImg does."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Iterable

from lxml import etree

from tfodkit.errors import InputFileError

# No entity expansion, no network, libxml2's default size limits: XXE and billion-laughs files are refused.
_PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    huge_tree=False,
    load_dtd=False,
    dtd_validation=False,
    remove_comments=True,
    remove_pis=True,
)
_ENTITIES_REFUSED = ("the XML declares entities; refused (entities are never expanded, which blocks XXE and "
                     "billion-laughs files; LabelImg never writes them)")


@dataclasses.dataclass(frozen=True)
class AnnotatedObject:
    """One <object>: class name as written and its box in pixels of the stored image."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool
    truncated: bool
    pose: str
    line: int


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One annotation file; size fields are None where the XML omits them."""

    path: Path
    filename: str | None
    folder: str | None
    width: int | None
    height: int | None
    depth: int | None
    objects: list[AnnotatedObject]


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None


def _children(element: etree._Element) -> dict[str, etree._Element]:
    """The first child of each tag (what `element.find(tag)` returns), collected in one pass."""
    children: dict[str, etree._Element] = {}
    for child in element:
        children.setdefault(child.tag, child)
    return children


def _number(path: Path, parent: etree._Element, children: dict[str, etree._Element], tag: str) -> float:
    element = children.get(tag)
    value = _text(element)
    if value is None:
        raise InputFileError(path, f"<{parent.tag}> has no <{tag}> value", parent.sourceline)
    try:
        number = float(value)
    except ValueError:
        raise InputFileError(path, f"<{tag}> is {value!r}, not a number", element.sourceline) from None
    if not math.isfinite(number):
        raise InputFileError(path, f"<{tag}> is {value!r}, not a finite number", element.sourceline)
    return number


def _size(path: Path, size: etree._Element | None, children: dict[str, etree._Element], tag: str) -> int | None:
    if size is None or _text(children.get(tag)) is None:
        return None
    number = _number(path, size, children, tag)
    if number != int(number) or number < 0:
        raise InputFileError(path, f"<{tag}> is {number!r}, not a whole number of pixels", children[tag].sourceline)
    return int(number)


def _flag(path: Path, children: dict[str, etree._Element], tag: str) -> bool:
    element = children.get(tag)
    value = _text(element)
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise InputFileError(path, f"<{tag}> is {value!r}; expected 0 or 1", element.sourceline)


def _object(path: Path, element: etree._Element) -> AnnotatedObject:
    children = _children(element)
    name_element = children.get("name")
    if name_element is None or not (name_element.text or "").strip():
        raise InputFileError(path, "<object> has no <name>", element.sourceline)
    box = children.get("bndbox")
    if box is None:
        raise InputFileError(path, f"<object> {name_element.text!r} has no <bndbox>", element.sourceline)
    corners = _children(box)
    return AnnotatedObject(
        name=name_element.text,
        xmin=_number(path, box, corners, "xmin"),
        ymin=_number(path, box, corners, "ymin"),
        xmax=_number(path, box, corners, "xmax"),
        ymax=_number(path, box, corners, "ymax"),
        difficult=_flag(path, children, "difficult"),
        truncated=_flag(path, children, "truncated"),
        pose=_text(children.get("pose")) or "Unspecified",
        line=element.sourceline or 0,
    )


def _refuse_entities(path: Path, tree: etree._ElementTree) -> None:
    dtd = tree.docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise InputFileError(path, _ENTITIES_REFUSED)
    for node in tree.iter(etree.Entity):
        raise InputFileError(path, f"entity reference {node.text} refused", node.sourceline)


def parse_annotation(data: bytes, path: Path) -> Annotation:
    """Parse annotation bytes; `path` names the file in errors."""
    declaration = data.find(b"<!ENTITY")
    if declaration != -1:
        raise InputFileError(path, _ENTITIES_REFUSED, data.count(b"\n", 0, declaration) + 1)
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        line = error.lineno or (error.position[0] if error.position else None)
        raise InputFileError(path, f"malformed XML: {error.msg}", line) from None
    if root is None:
        raise InputFileError(path, "empty XML document")
    _refuse_entities(path, root.getroottree())
    if root.tag != "annotation":
        raise InputFileError(
            path, f"root element is <{root.tag}>, expected <annotation> (Pascal VOC)", root.sourceline
        )
    fields = _children(root)
    size = fields.get("size")
    dimensions = _children(size) if size is not None else {}
    return Annotation(
        path=path,
        filename=_text(fields.get("filename")),
        folder=_text(fields.get("folder")),
        width=_size(path, size, dimensions, "width"),
        height=_size(path, size, dimensions, "height"),
        depth=_size(path, size, dimensions, "depth"),
        objects=[_object(path, element) for element in root.iterfind("object")],
    )


def read_annotation(path: str | Path) -> Annotation:
    """Read and parse one LabelImg XML file; problems raise InputFileError (a TfodkitError): file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(path, f"cannot read annotation: {error.strerror}") from None
    return parse_annotation(data, path)


def annotation_xml(
    *,
    folder: str,
    filename: str,
    path: str,
    database: str,
    width: int,
    height: int,
    objects: Iterable[tuple[str, int, int, int, int]],
) -> bytes:
    """Pascal VOC XML laid out as LabelImg's PascalVocWriter saves an unverified file (tab indents, no XML
    declaration): folder, filename, path, source/database, size (depth 3), segmented, and per object, given as
    (name, xmin, ymin, xmax, ymax) in integer pixels, its name, pose, truncated and difficult (always 0) and
    bndbox. Names are kept as given (LabelImg's writer turns two spaces in a row into a tab)."""
    root = etree.Element("annotation")

    def child(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, tag)
        element.text = text
        return element

    child(root, "folder", folder)
    child(root, "filename", filename)
    child(root, "path", path)
    child(child(root, "source"), "database", database)
    size = child(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        child(size, tag, str(value))
    child(root, "segmented", "0")
    for name, *corners in objects:
        item = child(root, "object")
        child(item, "name", name)
        child(item, "pose", "Unspecified")
        child(item, "truncated", "0")
        child(item, "difficult", "0")
        bndbox = child(item, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners):
            child(bndbox, tag, str(int(value)))
    etree.indent(root, space="\t")  # LabelImg replaces pretty-printing's double spaces by tabs, in names too
    return etree.tostring(root, encoding="utf-8") + b"\n"
