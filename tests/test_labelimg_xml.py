"""LabelImg XML parsing: fields, float coordinates, file:line errors, and refusal of entity tricks."""

from pathlib import Path

import numpy as np
import pytest

from tfodkit.dataset.labelimg_xml import annotation_xml, read_annotation
from tfodkit.errors import TfodkitError

GOOD = """<?xml version="1.0" encoding="utf-8"?>
<annotation verified="yes">
\t<folder>images</folder>
\t<filename>street 1.jpg</filename>
\t<path>/home/someone/images/street 1.jpg</path>
\t<size><width>640</width><height>480</height><depth>3</depth></size>
\t<object>
\t\t<name>person</name>
\t\t<pose>Left</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox><xmin>10.5</xmin><ymin>20</ymin><xmax>100</xmax><ymax>200.25</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>Café</name>
\t\t<difficult>1</difficult>
\t\t<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox>
\t</object>
</annotation>
"""


def _write(tmp_path: Path, text: str, name: str = "a.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_every_field_with_float_pixels_and_source_lines(tmp_path):
    annotation = read_annotation(_write(tmp_path, GOOD))
    assert (annotation.filename, annotation.folder) == ("street 1.jpg", "images")
    assert (annotation.width, annotation.height, annotation.depth) == (640, 480, 3)
    first, second = annotation.objects
    assert (first.name, first.xmin, first.ymin, first.xmax, first.ymax) == ("person", 10.5, 20.0, 100.0, 200.25)
    assert (first.pose, first.truncated, first.difficult, first.line) == ("Left", True, False, 7)
    assert (second.name, second.difficult, second.truncated, second.pose, second.line) == (
        "Café", True, False, "Unspecified", 14)


def test_negative_image_has_no_objects_and_missing_size_is_none(tmp_path):
    annotation = read_annotation(_write(tmp_path, "<annotation><filename>x.png</filename></annotation>"))
    assert annotation.objects == []
    assert (annotation.width, annotation.height, annotation.depth) == (None, None, None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("<annotation>\n<filename>a.jpg</filename>\n<object>\n</annotation>\n", r"a\.xml:4: malformed XML"),
        ("", r"a\.xml:1: malformed XML"),
        ("<annotation>\n<object>\n<bndbox><xmin>1</xmin></bndbox></object></annotation>", r"a\.xml:2: .*no <name>"),
        ("<annotation>\n<object><name>c</name></object></annotation>", r"a\.xml:2: .*'c' has no <bndbox>"),
        ("<annotation><object><name>c</name><bndbox>\n<xmin>one</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax>"
         "</bndbox></object></annotation>", r"a\.xml:2: <xmin> is 'one', not a number"),
        ("<annotation><object><name>c</name><bndbox>\n<xmin>1</xmin><ymin>nan</ymin><xmax>2</xmax><ymax>3</ymax>"
         "</bndbox></object></annotation>", r"a\.xml:2: <ymin> is 'nan', not a finite number"),
        ("<annotation><object><name>c</name>\n<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox>"
         "</object></annotation>", r"a\.xml:2: <bndbox> has no <ymax>"),
        ("<annotation><size>\n<width>12.5</width></size></annotation>", r"a\.xml:2: <width> is 12\.5"),
        ("<annotation><object><name>c</name>\n<difficult>maybe</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
         "<xmax>2</xmax><ymax>3</ymax></bndbox></object></annotation>",
         r"a\.xml:2: <difficult> is 'maybe'"),
        ("<?xml version='1.0'?>\n<doc/>", r"a\.xml:2: root element is <doc>"),
    ],
)
def test_malformed_or_incomplete_xml_names_file_and_line(tmp_path, text, message):
    with pytest.raises(TfodkitError, match=message):
        read_annotation(_write(tmp_path, text))


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE annotation [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<annotation><filename>&lol3;</filename></annotation>
"""


def test_billion_laughs_is_refused(tmp_path):
    with pytest.raises(TfodkitError, match=r"a\.xml:3: the XML declares entities; refused"):
        read_annotation(_write(tmp_path, BILLION_LAUGHS))


def test_external_entity_is_refused_and_the_file_is_never_read(tmp_path):
    secret = _write(tmp_path, "TOP-SECRET", "secret.txt")
    xxe = (f'<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
           "<annotation><filename>&xxe;</filename></annotation>")
    with pytest.raises(TfodkitError, match="refused") as caught:
        read_annotation(_write(tmp_path, xxe))
    assert "TOP-SECRET" not in str(caught.value)


def test_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(TfodkitError, match=r"missing\.xml: cannot read annotation"):
        read_annotation(tmp_path / "missing.xml")


def test_written_xml_is_labelimgs_own_and_reads_back(tmp_path):
    """The writer's bytes equal LabelImg's PascalVocWriter's for the same image and boxes (away from the border,
    where LabelImg marks boxes truncated), and read back to the same fields."""
    pascal_voc_io = pytest.importorskip("libs.pascal_voc_io", reason="labelimg (PyPI) is not installed")
    objects = [("Café", 10, 20, 100, 200), ("dog 2", *np.array([3, 4, 5, 6], dtype=np.int64))]
    image = tmp_path / "street 1.jpg"
    fields = dict(folder=tmp_path.name, filename=image.name, path=str(image), database="my database", width=640,
                  height=480)
    ours = annotation_xml(**fields, objects=objects)
    writer = pascal_voc_io.PascalVocWriter(tmp_path.name, image.name, (480, 640, 3), database_src="my database",
                                           local_img_path=str(image))
    for name, *corners in objects:
        writer.add_bnd_box(*(int(value) for value in corners), name, 0)
    writer.save(str(tmp_path / "labelimg.xml"))
    assert ours == (tmp_path / "labelimg.xml").read_bytes()

    annotation = read_annotation(_write(tmp_path, ours.decode("utf-8"), "ours.xml"))
    assert (annotation.folder, annotation.filename) == (tmp_path.name, image.name)
    assert (annotation.width, annotation.height, annotation.depth) == (640, 480, 3)
    assert [(o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult, o.truncated) for o in annotation.objects] == [
        (name, *map(float, corners), False, False) for name, *corners in objects]

    # A class name with two spaces in a row reads back as written (LabelImg's own writer makes them a tab).
    spaced = annotation_xml(**fields, objects=[("traffic  light", 1, 2, 3, 4)])
    (written,) = read_annotation(_write(tmp_path, spaced.decode("utf-8"), "spaced.xml")).objects
    assert written.name == "traffic  light"
