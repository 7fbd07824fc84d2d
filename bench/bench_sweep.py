"""The demo sweep (sweeps/loss_weights.yaml) trained and reported: docs/experiments.md and its plots.

`make bench-sweep` (after `make demo`, which writes tfrecords/ and the pretrained backbone): `tfodkit sweep`,
then `tfodkit report --test` into docs/experiments/, then docs/experiments.md = the report with its plot links
pointing into docs/experiments/, headed by the command, the machine and the wall time. A sweep already trained
is not trained again (its finished runs are skipped); the wall time printed is the runs' own, as the sweep recorded it.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.docs_section import cpu_name  # noqa: E402
from tfodkit.experiments.run_status import SWEEP_STATUS_FILE  # noqa: E402

SWEEP_FILE = ROOT / "sweeps" / "loss_weights.yaml"
RUNS = ROOT / "runs" / "loss_weights"
DOCS = ROOT / "docs"
REPORT_DIR = DOCS / "experiments"
NEEDED = (ROOT / "tfrecords" / "manifest.json", ROOT / "exported" / "pretrained" / "mobilenet_v2_backbone.weights.h5")


def tfodkit(*args: str) -> None:
    """Run a tfodkit command from the repository root, its output passed through; stop on failure."""
    subprocess.run([sys.executable, "-m", "tfodkit.cli", *args], cwd=ROOT, check=True)


def run_seconds(runs: Path) -> dict[str, float]:
    """Run name -> seconds its `tfodkit train` took, as the sweep recorded it."""
    seconds = {}
    for status in sorted(runs.glob(f"*/{SWEEP_STATUS_FILE}")):
        seconds[status.parent.name] = float(json.loads(status.read_text(encoding="utf-8"))["seconds"])
    return seconds


def experiments_page(report_md: str, seconds: dict[str, float]) -> str:
    """docs/experiments.md: a header saying how the figures were made, then the report with its links into
    docs/experiments/."""
    linked = re.sub(r"\]\((?!https?:)([^)]+)\)", r"](experiments/\1)", report_md)
    linked = re.sub(r'src="(?!https?:)([^"]+)"', r'src="experiments/\1"', linked)
    total = sum(seconds.values())
    header = [
        "# Experiments: the demo sweep",
        "",
        "`make bench-sweep` (= `.venv/bin/python bench/bench_sweep.py`): `tfodkit sweep sweeps/loss_weights.yaml` "
        "(classification x localization loss weights {0.5, 1.0}^2 x {SSD MobileNetV2, FPNLite} 320x320 on the "
        "digits demo set, from the offline pretrained backbone, the same steps and seed for every run), then "
        "`tfodkit report runs/loss_weights --out docs/experiments --test`. "
        f"Machine: {cpu_name()}, Python {platform.python_version()}. Wall time: the {len(seconds)} runs' "
        f"`tfodkit train` processes, one after another, took {total / 60:.1f} minutes in all (as each run's "
        "sweep_status.json records it; a run trained in an earlier invocation keeps its time): "
        + ", ".join(f"{name} {value / 60:.1f}" for name, value in seconds.items()) + " minutes.",
        "",
        "Reading it: the loss weights scale the losses, so eval and train losses (and the gaps) compare between runs "
        "of the same weights only; mAP@0.5 and AR compare across all. Each run is one seed on a 60-image val split "
        "(one box moves a class's AP by about 0.05), and 400 steps is short: a run whose points say `plateaued = no` "
        "was still improving when it ended.",
        "",
        "What follows is the report exactly as `tfodkit report` wrote it (docs/experiments/report.md; the CSV and the "
        "HTML page are beside it).",
        "",
    ]
    return "\n".join(header) + "\n" + re.sub(r"^# .*\n", "", linked, count=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="1", help="runs trained at once (tfodkit sweep --jobs)")
    args = parser.parse_args()
    missing = [str(path.relative_to(ROOT)) for path in NEEDED if not path.exists()]
    if missing:
        print(f"bench_sweep: {', '.join(missing)} missing: run `make demo` first", file=sys.stderr)
        return 1
    tfodkit("sweep", str(SWEEP_FILE.relative_to(ROOT)), "--jobs", args.jobs)
    shutil.rmtree(REPORT_DIR, ignore_errors=True)
    tfodkit("report", str(RUNS.relative_to(ROOT)), "--out", str(REPORT_DIR.relative_to(ROOT)), "--test")
    shutil.rmtree(REPORT_DIR / "test", ignore_errors=True)  # its event files; report.md holds the figures
    page = experiments_page((REPORT_DIR / "report.md").read_text(encoding="utf-8"), run_seconds(RUNS))
    (DOCS / "experiments.md").write_text(page, encoding="utf-8")
    print(f"wrote {DOCS / 'experiments.md'} and {REPORT_DIR}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
