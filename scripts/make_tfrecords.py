"""Thin wrapper: `python scripts/make_tfrecords.py ARGS` is `tfodkit make-tfrecords ARGS`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfodkit.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["make-tfrecords", *sys.argv[1:]]))
