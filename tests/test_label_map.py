"""Label map text format: round trip, OD API syntax, and errors that name the file and line."""

from pathlib import Path

import pytest

from tfodkit import label_map
from tfodkit.errors import TfodkitError

OD_API_STYLE = """
item {
  id: 1
  name: 'cat'
  display_name: 'Cat'
}
item {
  name: "dog"
  id: 2
}
"""


def test_parses_od_api_syntax_with_single_quotes_and_any_field_order():
    parsed = label_map.parse(OD_API_STYLE)
    assert parsed.ids == {"cat": 1, "dog": 2}
    assert parsed.display_names == {"cat": "Cat"}
    assert parsed.num_classes == 2
    assert parsed.names_by_id() == {1: "cat", 2: "dog"}


def test_generated_from_names_is_sorted_from_one_and_round_trips(tmp_path: Path):
    generated = label_map.from_class_names(["zebra", "ant", "zebra", "moth"])
    assert generated.ids == {"ant": 1, "moth": 2, "zebra": 3}
    path = tmp_path / "label_map.pbtxt"
    generated.write(path)
    assert label_map.load(path) == generated


def test_reads_the_od_api_reference_label_maps():
    reference = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "od_api_tf2"
    files = sorted(reference.glob("*/label_map.pbtxt"))
    if not files:
        pytest.skip(f"reference data not found at {reference}")
    for path in files:
        assert label_map.load(path).num_classes == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("item { id: 1 name: 'a' }\nitem { id: 1 name: 'b' }", "id 1 is used by both 'a' and 'b'"),
        ("item { id: 0 name: 'a' }", "ids start at 1"),
        ("item { id: 1 name: 'a' }\nitem { id: 2 name: 'a' }", "name 'a' appears twice"),
        ("item { name: 'a' }", "has no id"),
        ("", "has no items"),
        ("item { id: 1\n name: 'a'\n colour: 'red' }", "lm.pbtxt:3:2"),
    ],
)
def test_bad_label_maps_name_the_problem(text: str, message: str):
    with pytest.raises(TfodkitError, match=message.replace("(", r"\(")):
        label_map.parse(text, source="lm.pbtxt")


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(TfodkitError, match="nothing.pbtxt"):
        label_map.load(tmp_path / "nothing.pbtxt")
