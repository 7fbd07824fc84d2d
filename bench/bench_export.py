"""Export beside the real TF2 OD API, in one process: SavedModel load time and one-image latency, TFLite float and
int8 latency on LiteRT, file sizes; and the mAP@0.5 a trained run keeps through each export.

Latency section (`--sections latency`), for each OD API reference model (../shared/reference/od_api_tf2, the copy
of the OD API that bench/bench_od_api.py installs and checks, imported by its `import_od_api`):
- The OD API exports the reference ckpt-0 with its own code: `exporter_lib_v2.export_inference_graph`
  (image_tensor) for the SavedModel, `export_tflite_graph_lib_tf2.export_tflite_model` (max_detections 10, fast
  NMS, its defaults) then `tf.lite.TFLiteConverter.from_saved_model` for the .tflite files. Nothing of the OD API is
  patched for export on TensorFlow 2.21: both exporters run as shipped. The only stand-ins are bench_od_api's, for
  imports made at module level and never called (OpenCV, tensorflow_io, Model Garden's `official`,
  `tf.compat.v1.estimator`). The converter settings are tfodkit's own (allow_custom_ops; int8: Optimize.DEFAULT,
  TFLITE_BUILTINS_INT8, uint8 input, float32 outputs), so both int8 files are the same kind of model.
- tfodkit exports the same ckpt-0 with its CLI: `tfodkit export` and `tfodkit export-tflite` (float, and
  `--quantize int8`).
- Both int8 converters calibrate on the same images: the first CALIBRATION_IMAGES training images of the demo set
  (bench_inputs.demo_records), as `tfodkit export-tflite --representative` reads and preprocesses them (tfodkit's
  `representative_images`: resized by the config's resizer and scaled to [-1, 1], as the OD API preprocesses:
  tests/test_tf2_fidelity.py); the same arrays are the OD API converter's representative dataset.
- Fidelity: each exported SavedModel on the reference's three images against what the OD API's own export
  returned when the reference was made (od_api_outputs.npz `serving_raw_detection_scores`, max |difference|).
- Timing, on the reference's first image (`input_uint8[0]`, already at the model's input size): SavedModel load
  (`tf.saved_model.load`, median of LOADS timed loads after an untimed one, the two sides alternating); one-image
  call of the loaded SavedModel (`detect_fn(uint8 batch of one)`, as the OD API's tutorials call it), WARMUP calls
  then CALLS timed calls; LiteRT's `Interpreter(num_threads=1 or 2)` for each .tflite: set input, invoke, read the
  four outputs, same counts. Timed calls alternate one by one between the two sides (the side going first flips
  every call), so both see the same machine load. Float .tflite inputs are the image scaled to [-1, 1]; int8 inputs
  are that scaled image quantized with the model's own input scale and zero point.
- Sizes: the saved_model/ directory (every file), each .tflite file (tfodkit's with its embedded metadata).

Accuracy section (`--sections accuracy`): a trained run's latest checkpoint evaluated as training evaluates it
(`tfodkit evaluate --checkpoint_dir`), then exported with `tfodkit export` and `tfodkit export-tflite` (float, and
int8 calibrated on the first REPRESENTATIVE_IMAGES images of the run's training records; `--max_detections` the
config's max_total_detections, as many as the checkpoint's evaluation keeps; with `--use_regular_nms`, the
checkpoint's per-class NMS, and with the default fast NMS), and each export evaluated by `tfodkit evaluate --model`
on the same val split; mAP@0.5 as `tfodkit evaluate` prints it. Targets (issue 11): float within FLOAT_TOLERANCE of
the checkpoint, int8 within INT8_TOLERANCE.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import sys
import time
import types
from collections.abc import Callable
from importlib.metadata import version
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_od_api import MODELS, OD_API_SITE, REFERENCE, import_od_api  # noqa: E402  (first: sets Keras)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from bench.bench_inputs import demo_records  # noqa: E402
from bench.bench_models import median_seconds  # noqa: E402
from bench.bench_train import OUT as TRAIN_OUT  # noqa: E402
from bench.docs_section import cpu_name, publish  # noqa: E402
from tfodkit import cli  # noqa: E402
from tfodkit.config.loader import load_pipeline, parse_pipeline_text  # noqa: E402
from tfodkit.evaluation.coco_metrics import MAP_50  # noqa: E402
from tfodkit.export.saved_model import SAVED_MODEL_DIR  # noqa: E402
from tfodkit.export.tflite import MODEL_FILES, representative_images  # noqa: E402
from tfodkit.inputs import record_files  # noqa: E402
from tfodkit.model.builder import image_resizer  # noqa: E402

OUT = ROOT / "bench" / "out" / "export"
CALIBRATION_IMAGES = 100  # int8 calibration images of the latency section
REPRESENTATIVE_IMAGES = 200  # of the accuracy section (export-tflite's default -n)
MAX_DETECTIONS = 10  # the TFLite default of both export_tflite_graph_tf2 and tfodkit export-tflite
WARMUP, CALLS, LOADS = 5, 50, 3
THREADS = (1, 2)
FLOAT_TOLERANCE, INT8_TOLERANCE = 0.01, 0.03
SIDES = ("od_api", "tfodkit")
DEMO_RUN = ROOT / "runs" / "demo"  # evaluated by the accuracy section when `make bench-train` left no run
KINDS = ("float", "int8")
# The accuracy section's TFLite post-processing: per-class NMS as the checkpoint's evaluation runs it, and the
# export's default (one NMS over each anchor's best class, as the OD API's TFLite export defaults to).
NMS = {"regular NMS": ("--use_regular_nms",), "fast NMS (default)": ()}
QUANTIZE = {"float": "none", "int8": "int8"}
SIZE_NAMES = {"saved_model": "saved_model/", "float": "model.tflite (float)", "int8": "model_int8.tflite"}


@dataclass
class Latency:
    """Seconds of each timed call, per side."""

    seconds: dict[str, list[float]]

    def median_ms(self, side: str) -> float:
        return 1000 * float(np.median(self.seconds[side]))

    def p90_ms(self, side: str) -> float:
        return 1000 * float(np.percentile(self.seconds[side], 90))


@dataclass
class ModelRow:
    """One reference model's figures, each keyed by side."""

    model: str
    fidelity: dict[str, float]
    load_s: dict[str, float]
    saved_model: Latency
    tflite: dict[tuple[str, int], Latency]  # (kind, threads) ->
    sizes: dict[str, dict[str, int]]  # file -> side -> bytes


@dataclass
class Accuracy:
    """One run's mAP@0.5 values, by model ("checkpoint", "SavedModel", "TFLite float, regular NMS", ...)."""

    model_dir: Path
    feature_extractor: str
    step: int
    num_images: int
    map_50: dict[str, float]


def tfodkit(*argv: object) -> str:
    """Run a tfodkit command in this process and return what it printed (echoed on stderr); a non-zero exit
    ends the benchmark."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main([str(arg) for arg in argv])
    sys.stderr.write(printed.getvalue())
    if code != 0:
        raise SystemExit(f"`tfodkit {' '.join(str(arg) for arg in argv)}` failed")
    return printed.getvalue()


def tfodkit_saved_model(common: tuple, out: Path) -> Path:
    """`tfodkit export` with the flags `common` into `out`; the SavedModel's path."""
    tfodkit("export", *common, "--output_directory", out)
    return out / SAVED_MODEL_DIR


def tfodkit_tflite(common: tuple, out: Path, kind: str, representative: str, count: int, *flags: object) -> Path:
    """`tfodkit export-tflite` (float or int8, calibrated on the first `count` images of the TFRecords
    `representative`) with the flags `common` and `flags` into `out`; the .tflite file's path."""
    quantize = ("--quantize", "int8", "--representative", representative, "-n", count) if kind == "int8" else ()
    tfodkit("export-tflite", *common, *flags, "--output_directory", out, *quantize)
    return out / MODEL_FILES[QUANTIZE[kind]]


def od_api_convert(saved_model: Path, representative: list[np.ndarray] | None) -> bytes:
    """The converter script users write for the OD API's TFLite graph, with tfodkit's converter settings."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.allow_custom_ops = True
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image] for image in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    return converter.convert()


def od_api_exports(od: types.SimpleNamespace, folder: Path, out: Path,
                   representative: list[np.ndarray]) -> dict[str, Path]:
    """The OD API's SavedModel (exporter_lib_v2), and its TFLite graph (export_tflite_graph_lib_tf2) converted
    float and int8, of the reference ckpt-0."""
    from object_detection import export_tflite_graph_lib_tf2, exporter_lib_v2

    pipeline = od.config_util.create_pipeline_proto_from_configs(
        od.config_util.get_configs_from_pipeline_file(str(folder / "pipeline.config")))
    checkpoint_dir = str(folder / "checkpoint")
    exporter_lib_v2.export_inference_graph("image_tensor", pipeline, checkpoint_dir, str(out / "export"))
    export_tflite_graph_lib_tf2.export_tflite_model(pipeline, checkpoint_dir, str(out / "tflite_graph"),
                                                    MAX_DETECTIONS, False)
    paths = {"saved_model": out / "export" / "saved_model"}
    for kind in KINDS:
        paths[kind] = out / MODEL_FILES[QUANTIZE[kind]]
        paths[kind].write_bytes(od_api_convert(out / "tflite_graph" / "saved_model",
                                               representative if kind == "int8" else None))
    return paths


def size_bytes(path: Path) -> int:
    """A file's size, or every file's under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def load_seconds(path: Path) -> float:
    """Wall seconds of `tf.saved_model.load` of the SavedModel at `path`."""
    start = time.perf_counter()
    tf.saved_model.load(str(path))
    return time.perf_counter() - start


def alternating(calls: dict[str, Callable[[], object]], warmup: int, timed: int) -> Latency:
    """Each side's call `warmup` times, then `timed` times each, one by one in alternation (the side going first
    flips every call); bench_models.median_seconds of one call is that call's wall time."""
    for call in calls.values():
        median_seconds(call, warmup)
    seconds: dict[str, list[float]] = {side: [] for side in calls}
    for index in range(timed):
        for side in sorted(calls, reverse=index % 2 == 1):
            seconds[side].append(median_seconds(calls[side], 1))
    return Latency(seconds)


class LiteRTCall:
    """One LiteRT inference of a fixed input: set it, invoke, read every output (returns nothing left to fetch)."""

    def __init__(self, path: Path, image: np.ndarray, threads: int) -> None:
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        (details,) = self.interpreter.get_input_details()
        scaled = (image[np.newaxis].astype(np.float32) - 127.5) / 127.5
        if details["dtype"] == np.uint8:
            scale, zero_point = details["quantization"]
            scaled = np.clip(np.round(scaled / scale + zero_point), 0, 255).astype(np.uint8)
        self.input_index = details["index"]
        self.input = scaled
        self.outputs = [output["index"] for output in self.interpreter.get_output_details()]

    def __call__(self) -> tuple:
        self.interpreter.set_tensor(self.input_index, self.input)
        self.interpreter.invoke()
        for index in self.outputs:
            self.interpreter.get_tensor(index)
        return ()


def raw_score_error(saved_model: Path, reference: dict[str, np.ndarray]) -> float:
    """Max |difference| of the SavedModel's raw_detection_scores from the OD API's export's, on the reference's
    images one at a time (as the reference was made)."""
    detect_fn = tf.saved_model.load(str(saved_model))
    scores = np.concatenate([detect_fn(tf.constant(image[np.newaxis]))["raw_detection_scores"].numpy()
                             for image in reference["input_uint8"]])
    return float(np.abs(scores - reference["serving_raw_detection_scores"]).max())


def measure_model(od: types.SimpleNamespace, name: str, records: Path) -> ModelRow:
    """Export reference model `name` both ways and time and size every file."""
    folder = REFERENCE / name
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    config = parse_pipeline_text((folder / "pipeline.config").read_text(encoding="utf-8"), name)
    pattern = str(records / "train-*.tfrecord")
    start = time.perf_counter()
    calibration = representative_images(pattern, CALIBRATION_IMAGES, image_resizer(config.model.ssd))
    common = ("--pipeline_config_path", folder / "pipeline.config", "--trained_checkpoint_dir", folder / "checkpoint",
              "--set", f"eval_input_reader[0].label_map_path={folder / 'label_map.pbtxt'}")
    paths = {
        "od_api": od_api_exports(od, folder, out / "od_api", calibration),
        "tfodkit": {"saved_model": tfodkit_saved_model(common, out / "tfodkit" / "export")},
    }
    for kind in KINDS:
        paths["tfodkit"][kind] = tfodkit_tflite(common, out / "tfodkit" / f"tflite_{kind}", kind, pattern,
                                                CALIBRATION_IMAGES)
    print(f"{name}: exported both ways in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    start = time.perf_counter()
    reference = dict(np.load(folder / "od_api_outputs.npz"))
    fidelity = {side: raw_score_error(paths[side]["saved_model"], reference) for side in SIDES}
    for side in SIDES:
        load_seconds(paths[side]["saved_model"])
    loads: dict[str, list[float]] = {side: [] for side in SIDES}
    for index in range(LOADS):
        for side in sorted(SIDES, reverse=index % 2 == 1):
            loads[side].append(load_seconds(paths[side]["saved_model"]))
    image = reference["input_uint8"][0]
    batch = tf.constant(image[np.newaxis])
    detect_fns = {side: tf.saved_model.load(str(paths[side]["saved_model"])) for side in SIDES}
    saved_model = alternating({side: (lambda fn=detect_fns[side]: fn(batch)) for side in SIDES}, WARMUP, CALLS)
    tflite = {(kind, threads): alternating({side: LiteRTCall(paths[side][kind], image, threads) for side in SIDES},
                                           WARMUP, CALLS)
              for kind in KINDS for threads in THREADS}
    sizes = {file: {side: size_bytes(paths[side][file]) for side in SIDES} for file in ("saved_model", *KINDS)}
    print(f"{name}: measured in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return ModelRow(name, fidelity, {side: float(np.median(loads[side])) for side in SIDES}, saved_model, tflite,
                    sizes)


def ratio(theirs: float, ours: float) -> str:
    """OD API / tfodkit at two decimals (1.00 or more: tfodkit no slower, no larger)."""
    return f"{theirs / ours:.2f}"


def misses(rows: list[ModelRow]) -> list[str]:
    """Where tfodkit's median time or size is above the OD API's (ratio OD API / tfodkit below 1.00)."""
    found = []
    for row in rows:
        figures = {"SavedModel load": (row.load_s["od_api"], row.load_s["tfodkit"]),
                   "SavedModel 1 image": (row.saved_model.median_ms("od_api"), row.saved_model.median_ms("tfodkit"))}
        for (kind, threads), latency in row.tflite.items():
            figures[f"TFLite {kind} {threads} thread(s)"] = (latency.median_ms("od_api"), latency.median_ms("tfodkit"))
        for file, sizes in row.sizes.items():
            figures[f"size of {SIZE_NAMES[file]}"] = (sizes["od_api"], sizes["tfodkit"])
        found += [f"{row.model}: {what} (ratio {ratio(theirs, ours)})" for what, (theirs, ours) in figures.items()
                  if float(ratio(theirs, ours)) < 1.0]
    return found



def _latency_cells(latency: Latency) -> str:
    """Table cells: OD API median / p90, tfodkit median / p90 (ms), and their ratios."""
    return (f"{latency.median_ms('od_api'):.1f} / {latency.p90_ms('od_api'):.1f} | "
            f"{latency.median_ms('tfodkit'):.1f} / {latency.p90_ms('tfodkit'):.1f} | "
            f"{ratio(latency.median_ms('od_api'), latency.median_ms('tfodkit'))} / "
            f"{ratio(latency.p90_ms('od_api'), latency.p90_ms('tfodkit'))}")

def latency_report(rows: list[ModelRow]) -> str:
    """The Markdown of the latency section: method, three tables, the targets, the machine."""
    lines = [
        "## Export: tfodkit beside the OD API",
        "",
        "`make bench` (= `.venv/bin/python bench/bench_export.py`; the method in full is the script's docstring): "
        "each OD API reference checkpoint (`../shared/reference/od_api_tf2/*/checkpoint/ckpt-0`, num_classes 2) "
        "exported by the real OD API (`exporter_lib_v2.export_inference_graph` image_tensor; "
        "`export_tflite_graph_lib_tf2.export_tflite_model` then `tf.lite.TFLiteConverter`, float and int8) and by "
        "`tfodkit export` / `tfodkit export-tflite`, in one process on TensorFlow "
        f"{tf.__version__}. No OD API code is patched for export: both exporters run as shipped; the only "
        "stand-ins are bench_od_api's for imports never called (OpenCV, tensorflow_io, `official`, "
        "`tf.compat.v1.estimator`). Both converters use the same settings (int8: full integer, uint8 input, "
        f"float32 outputs) and the int8 ones calibrate on the same {CALIBRATION_IMAGES} demo-set training images. "
        f"TFLite: max_detections {MAX_DETECTIONS}, fast NMS (both exporters' defaults), run by LiteRT. One image: "
        "the reference's first (`input_uint8[0]`, at the model's input size), "
        f"{WARMUP} warm-up calls then {CALLS} timed calls per side, alternating call by call. Load: "
        f"`tf.saved_model.load`, median of {LOADS} alternating loads after an untimed one. Fidelity: max "
        "|difference| of each SavedModel's raw_detection_scores from the OD API export that made the reference "
        "(`serving_raw_detection_scores`). Ratios are OD API / tfodkit: 1.00 or more means tfodkit is no slower "
        "(no larger), the target.",
        "",
        "| OD API config | fidelity OD API / tfodkit | load s OD API | tfodkit | ratio | 1 image ms OD API "
        "median / p90 | tfodkit median / p90 | ratio median / p90 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        latency = row.saved_model
        lines.append(
            f"| {row.model} | {row.fidelity['od_api']:.1e} / {row.fidelity['tfodkit']:.1e} | "
            f"{row.load_s['od_api']:.2f} | {row.load_s['tfodkit']:.2f} | "
            f"{ratio(row.load_s['od_api'], row.load_s['tfodkit'])} | "
            f"{_latency_cells(latency)} |")
    lines += [
        "",
        "TFLite on LiteRT, one image:",
        "",
        "| OD API config | model | threads | OD API ms median / p90 | tfodkit ms median / p90 | ratio median / p90 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for (kind, threads), latency in row.tflite.items():
            lines.append(
                f"| {row.model} | {kind} | {threads} | "
                f"{_latency_cells(latency)} |")
    lines += [
        "",
        "Sizes (tfodkit's .tflite files include their embedded metadata: labels, normalisation, output names):",
        "",
        "| OD API config | file | OD API bytes | tfodkit bytes | ratio |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        for file, sizes in row.sizes.items():
            lines.append(f"| {row.model} | {SIZE_NAMES[file]} | {sizes['od_api']:,} | {sizes['tfodkit']:,} | "
                         f"{ratio(sizes['od_api'], sizes['tfodkit'])} |")
    missed = misses(rows)
    lines += ["", "Target not met (median time or size): " + ("; ".join(missed) if missed else "none") + "."]
    lines += ["", f"Machine: {os.cpu_count()} CPU cores ({cpu_name()}), shared with other jobs while this ran; "
              f"TensorFlow {tf.__version__}, LiteRT {version('ai-edge-litert')}, Python "
              f"{platform.python_version()}. The OD API: {OD_API_SITE.relative_to(ROOT)} "
              "(bench/od_api-requirements.txt)."]
    return "\n".join(lines)


def default_runs() -> list[Path]:
    """The accuracy section's runs: every `make bench-train` run with a checkpoint, else `make demo`'s."""
    trained = sorted(run for run in TRAIN_OUT.glob("*") if tf.train.latest_checkpoint(str(run)))
    return trained or [run for run in [DEMO_RUN] if tf.train.latest_checkpoint(str(run))]


def printed_map_50(output: str) -> float:
    """The mAP@0.5 in what `tfodkit evaluate` printed (its `TAG: value` lines)."""
    for line in output.splitlines():
        if line.startswith(f"{MAP_50}: "):
            return float(line.split(": ", 1)[1])
    raise SystemExit(f"`tfodkit evaluate` printed no {MAP_50}")


def measure_accuracy(model_dir: Path, pipeline: Path, out: Path) -> Accuracy:
    """mAP@0.5 on the val split of the run's latest checkpoint and of its three exports, by `tfodkit evaluate`
    (exports and eval/ summaries under `out`)."""
    shutil.rmtree(out, ignore_errors=True)
    config = load_pipeline(pipeline)
    latest = tf.train.latest_checkpoint(str(model_dir))
    if latest is None:
        raise SystemExit(f"--model-dir {model_dir}: no checkpoint; train one first (`make bench-train` or "
                         "`make demo`)")
    val_files = list(record_files(config.eval_input_reader[0], "eval_input_reader[0]"))
    max_detections = config.model.ssd.post_processing.batch_non_max_suppression.max_total_detections
    printed = tfodkit("evaluate", "--pipeline_config_path", pipeline, "--checkpoint_dir", model_dir,
                      "--model_dir", out / "eval_checkpoint")
    result = Accuracy(model_dir, config.model.ssd.feature_extractor.type, int(latest.rsplit("-", 1)[1]),
                      sum(1 for _ in tf.data.TFRecordDataset(val_files)), {"checkpoint": printed_map_50(printed)})
    representative = config.train_input_reader.tf_record_input_reader.input_path[0]
    common = ("--pipeline_config_path", pipeline, "--trained_checkpoint_dir", model_dir)
    models = {"SavedModel": tfodkit_saved_model(common, out / "export")}
    for nms, flags in NMS.items():
        for kind in KINDS:
            models[f"TFLite {kind}, {nms}"] = tfodkit_tflite(
                common, out / f"tflite_{kind}_{nms.split()[0]}", kind, representative, REPRESENTATIVE_IMAGES,
                "--max_detections", max_detections, *flags)
    for name, path in models.items():
        printed = tfodkit("evaluate", "--model", path, "--pipeline_config_path", pipeline,
                          "--model_dir", path.parent / "eval_val")
        result.map_50[name] = printed_map_50(printed)
    return result


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def accuracy_report(results: list[Accuracy]) -> str:
    """The Markdown of the accuracy section: method, one table, which runs these are."""
    runs = "--model-dir " + " ".join(str(_shown(result.model_dir)) for result in results)
    lines = [
        "### Accuracy after export",
        "",
        f"`.venv/bin/python bench/bench_export.py --sections accuracy {runs}`: each run's latest checkpoint "
        "evaluated by `tfodkit evaluate --checkpoint_dir` on its val split, then exported by `tfodkit export` and "
        f"`tfodkit export-tflite` (float, and int8 calibrated on the first {REPRESENTATIVE_IMAGES} training images; "
        "`--max_detections` = the config's max_total_detections, as many as the checkpoint's evaluation keeps; "
        "with `--use_regular_nms`, the per-class NMS the checkpoint's evaluation runs, and without, the default "
        "fast NMS over each anchor's best class) and each export evaluated by `tfodkit evaluate --model` on the "
        "same split (images at their original size, resized by the model). Targets: float within "
        f"{FLOAT_TOLERANCE} of the checkpoint, int8 within {INT8_TOLERANCE}; like for like, that is with the "
        "checkpoint's NMS. Fast NMS keeps one class per anchor: where the right class is not an anchor's best, "
        "that detection is lost, which the fast-NMS rows measure.",
        "",
        "| run | feature extractor | steps | val images | model | mAP@0.5 | minus checkpoint | tolerance | within |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        run = f"{_shown(result.model_dir)} | {result.feature_extractor} | {result.step} | {result.num_images}"
        checkpoint = result.map_50["checkpoint"]
        for name, value in result.map_50.items():
            if name == "checkpoint":
                lines.append(f"| {run} | checkpoint | {value:.3f} | | | |")
                continue
            difference = value - checkpoint
            tolerance = INT8_TOLERANCE if "int8" in name else FLOAT_TOLERANCE
            within = "yes" if abs(difference) <= tolerance else "no"
            lines.append(f"| {run} | {name} | {value:.3f} | {difference:+.3f} | {tolerance} | {within} |")
    others = [_shown(result.model_dir) for result in results if TRAIN_OUT not in result.model_dir.parents]
    if others:
        lines += ["", f"{', '.join(str(run) for run in others)}: not `make bench-train` runs but shorter ones "
                      "(steps above): the figures show what export keeps of a model, not how good it can get."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=("latency", "accuracy"), default=["latency", "accuracy"],
                        help="default: both (accuracy only when a run to evaluate is found or given)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="reference models of the latency section (default: both)")
    parser.add_argument("--model-dir", type=Path, nargs="+",
                        help="the accuracy section's training runs (default: every make bench-train run in "
                             f"{TRAIN_OUT.relative_to(ROOT)} with a checkpoint, else make demo's "
                             f"{DEMO_RUN.relative_to(ROOT)})")
    parser.add_argument("--pipeline", type=Path, nargs="+",
                        help="each run's pipeline.config (default: the one training wrote into the run's folder)")
    parser.add_argument("--docs", type=Path, help="write the results as sections of this Markdown file")
    args = parser.parse_args()
    if args.pipeline and len(args.pipeline) != len(args.model_dir or []):
        parser.error("--pipeline: give one pipeline.config for each --model-dir")
    if "latency" in args.sections:
        od = import_od_api()
        records = demo_records(600)
        rows = []
        for name in args.models:
            rows.append(measure_model(od, name, records))
        publish(latency_report(rows), args.docs, "bench_export")
    if "accuracy" in args.sections:
        model_dirs = args.model_dir or default_runs()
        if not model_dirs:
            print(f"accuracy section skipped: no training run found in {TRAIN_OUT.relative_to(ROOT)} or "
                  f"{DEMO_RUN.relative_to(ROOT)}; give --model-dir", file=sys.stderr)
            return 0
        pipelines = args.pipeline or [model_dir / "pipeline.config" for model_dir in model_dirs]
        results = []
        for index, (model_dir, pipeline) in enumerate(zip(model_dirs, pipelines)):
            results.append(measure_accuracy(model_dir.resolve(), pipeline.resolve(), OUT / f"accuracy_{index}"))
            print(f"{model_dir}: mAP@0.5 {results[-1].map_50}", file=sys.stderr, flush=True)
        publish(accuracy_report(results), args.docs, "bench_export_accuracy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
