"""Bad training or evaluation input as one clear error: which file, which record, what is wrong, what to do."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfodkit import inputs
from tfodkit.dataset.record_check import BadRecord, RecordChecker, bad_records
from tfodkit.errors import BadInputData

MAX_LISTED = 10  # bad records named in one message
WHAT_TO_DO = (
    "Re-run `tfodkit make-tfrecords` to rewrite the files (`tfodkit inspect-tfrecord --check 'GLOB'` lists every "
    "bad record, `tfodkit inspect-tfrecord FILE` shows the records), or add --skip-bad-records to train on the rest"
)


def _listing(records: Sequence[BadRecord]) -> str:
    lines = [f"  {record.line()}" for record in records[:MAX_LISTED]]
    if len(records) > MAX_LISTED:
        lines.append(f"  ... and {len(records) - MAX_LISTED} more")
    return "\n".join(lines)


def _checker(spec: inputs.InputSpec, decode: bool) -> RecordChecker:
    return RecordChecker(decode=decode, label_map=spec.label_map, num_classes=spec.num_classes)


def check_framing(specs: Sequence[inputs.InputSpec]) -> None:
    """The fast check run before training: every file's framing checksums (no decoding); raises BadInputData
    listing each file that TensorFlow's reader would fail on."""
    for spec in specs:
        found = bad_records(_checker(spec, decode=False).check_files(spec.record_files))
        if found:
            raise BadInputData(f"{spec.reader}: {len(found)} damaged TFRecord file(s):\n{_listing(found)}\n"
                               f"{WHAT_TO_DO}.")


def skips(specs: Sequence[inputs.InputSpec]) -> inputs.RecordSkips:
    """Every bad record of the specs' files (framing and content), for --skip-bad-records."""
    checks, seen = [], set()
    for spec in specs:
        files = [path for path in spec.record_files if path not in seen]
        seen.update(files)
        checks.extend(_checker(spec, decode=True).check_files(files))
    return inputs.RecordSkips.from_checks(checks)


def is_input_error(error: tf.errors.OpError) -> bool:
    """True for the errors an input pipeline raises: damaged records, undecodable images, failed label checks."""
    return (isinstance(error, tf.errors.DataLossError) or inputs.user_error(error) is not None
            or "IteratorGetNext" in error.message or "decode_image" in error.message)


def locate(error: tf.errors.OpError, spec: inputs.InputSpec) -> BadInputData:
    """The error for an input failure, naming the bad records found by reading every record of the spec's files
    (the pipeline's own error names neither file nor record)."""
    found = bad_records(_checker(spec, decode=True).check_files(spec.record_files))
    if spec.skips:
        skipped = {(record.path, record.index) for record in spec.skips.records}
        found = [record for record in found if (record.path, record.index) not in skipped]
    if not found:
        first_line = error.message.strip().split("\n")[0]
        checked = inputs.user_error(error)
        return BadInputData(f"{spec.reader}: reading the input failed: {checked or first_line}. {WHAT_TO_DO}.")
    return BadInputData(f"{spec.reader}: {len(found)} bad record(s):\n{_listing(found)}\n{WHAT_TO_DO}.")
