"""One training step of every template, by the real TF2 OD API and by tfodkit, on the same weights and batch:
losses, gradients and batch-norm statistics compared (`make bench`, not CI).

bench_parity compares whole training runs, whose curves differ by seed (data order, augmentation draws, head
initialisation) by more than its 0.02 tolerance; this benchmark takes the randomness out. For each template in
pipelines/, rendered for the demo set as bench_parity renders it: the OD API's model (`model_builder.build`,
is_training, tf_keras's learning phase on as `model_lib_v2` sets it) is built with its own initial weights and
saved as a TF2 checkpoint; tfodkit builds the same config and restores that checkpoint through its OD API
checkpoint importer (the path bench_parity evaluates the OD API's checkpoints with). One batch of training
images (the demo set's first, resized, without augmentation, so both see the same pixels and boxes) goes through
each side's training forward pass and loss (`provide_groundtruth` + `predict` + `loss` + the regularisation
losses, against tfodkit's `SSD.compute_losses`), and the gradients of the total loss follow. Compared: each
loss; the gradients, as the largest relative difference between the two sides' per-variable gradient norms
(each side's list sorted, so no name mapping is needed: equal lists mean equal multisets); and the batch norms'
moving means and variances after the step (sorted per-variable sums). Target: differences at float32 round-off
(relative 1e-4) -- then the training step is the same function, and what separates two runs is their random
draws.

Those draws are compared as distributions: the template's crop (ssd_random_crop or random_crop_image, the step
that changes what the model sees most) is applied many times to the same 16 training images by the OD API's
preprocessor (`preprocessor_builder.build` on the same option, in a tf.function as its input pipeline runs it)
and by tfodkit's augmentation. Compared: the mean share of the image a crop keeps, the mean share of the boxes
kept, and the shares of draws left uncropped and left without any box. Target: each mean within 3 standard
errors of the other side's.

After the first step both models take a few more on the same batch (`--updates`, default 4), each side's weights
moved by its own gradients through the same momentum update written out once here (the template's
momentum_optimizer_value and its schedule's first rates: accum = momentum * accum - rate * gradient; weight +=
accum), and the total losses of every step are compared with the same tolerance. Each side's own optimizer is left
out on purpose: two float32-equivalent momentum updates (tf_keras's SGD, Keras 3's) round differently, and on these
batches a 1e-7 difference after one update grows to about 1% in two more steps, so a whole-loop comparison cannot
hold a round-off tolerance (docs/benchmarks.md); with the same update arithmetic it can, and it shows that the
losses' gradients still agree after the weights and batch-norm statistics have moved.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_od_api import import_od_api  # first: it selects tf_keras for the OD API before TensorFlow loads

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from bench.bench_inputs import demo_records, template_config  # noqa: E402
from bench.docs_section import cpu_name, publish  # noqa: E402
from tfodkit import inputs  # noqa: E402
from tfodkit.augmentation import Sample, build_augmentation  # noqa: E402
from tfodkit.config.loader import pipeline_text  # noqa: E402
from tfodkit.config.templates import TEMPLATES  # noqa: E402
from tfodkit.export.trained_model import load_trained_model  # noqa: E402
from tfodkit.protos import pipeline_pb2  # noqa: E402
from tfodkit.training.optimizers import build_learning_rate  # noqa: E402

CROPS = ("ssd_random_crop", "random_crop_image")
CROP_FIGURES = ("image share kept", "box share kept", "uncropped", "no box left")
CROP_IMAGES = 16
LOSSES = ("Loss/localization_loss", "Loss/classification_loss", "Loss/regularization_loss", "Loss/total_loss")
TOLERANCE = 1e-4  # relative: float32 round-off over a few hundred thousand summed terms


@dataclass
class Row:
    """One template's step on both sides."""

    template: str
    losses: dict[str, tuple[float, float]]  # name -> (OD API, tfodkit)
    variables: tuple[int, int]  # trainable variables with a gradient
    gradient_error: float  # largest relative difference of sorted per-variable gradient norms
    statistics_error: float  # largest relative difference of sorted moving mean / variance sums after the step
    total_losses: list[tuple[float, float]]  # (OD API, tfodkit) total loss before each update, the first included

    def steps_error(self) -> float:
        """The largest relative difference of the total losses over the steps."""
        return max(relative(ours, theirs) for theirs, ours in self.total_losses)

    def first_step_error(self) -> float:
        """The largest relative difference of the first step's losses, gradients and statistics."""
        loss_errors = [relative(ours, theirs) for theirs, ours in self.losses.values()]
        return max(loss_errors + [self.gradient_error, self.statistics_error])

    def worst(self) -> float:
        """The largest relative difference of anything compared."""
        return max(self.first_step_error(), self.steps_error())


def relative(ours: float, theirs: float) -> float:
    """|ours - theirs| / |theirs| (theirs, the OD API's, is the reference)."""
    return abs(ours - theirs) / max(abs(theirs), 1e-12)


def relative_error(theirs: list[tuple], ours: list[tuple]) -> float:
    """Largest relative difference over two sorted lists of (shape, value); infinite when the shapes differ."""
    if len(theirs) != len(ours) or [shape for shape, _ in theirs] != [shape for shape, _ in ours]:
        return float("inf")
    return max((relative(a, b) for (_, a), (_, b) in zip(ours, theirs)), default=0.0)


def moving_statistics(variables: list[tf.Variable]) -> list[tuple]:
    """(shape, sum) of every batch norm moving mean and variance, sorted."""
    return sorted((tuple(v.shape), float(tf.reduce_sum(v))) for v in variables
                  if "moving_mean" in v.name or "moving_variance" in v.name)


def gradient_norms(variables: list[tf.Variable], gradients: list[tf.Tensor | None]) -> list[tuple]:
    """(shape, gradient norm) of every variable the loss reaches, sorted."""
    return sorted((tuple(v.shape), float(tf.norm(g))) for v, g in zip(variables, gradients) if g is not None)


class MomentumUpdate:
    """The momentum update both sides share: accum = momentum * accum - rate * gradient; weight += accum."""

    def __init__(self, variables: list[tf.Variable], momentum: float) -> None:
        self.pairs = [(variable, tf.Variable(tf.zeros_like(variable))) for variable in variables]
        self.momentum = momentum

    def apply(self, gradients: list[tf.Tensor | None], rate: float) -> None:
        """Move every variable that has a gradient by one update at learning rate `rate`."""
        for (variable, accum), gradient in zip(self.pairs, gradients):
            if gradient is not None:
                accum.assign(self.momentum * accum - rate * gradient)
                variable.assign_add(accum)


def compare(od, template: str, config: pipeline_pb2.TrainEvalPipelineConfig, batch_size: int, updates: int,
            folder: Path) -> Row:
    """Build, save, restore and step one template (its config rendered for the demo set) on both sides, then
    move both by `updates` shared momentum updates and step again after each."""
    config_path = folder / f"{template}.config"
    config_path.write_text(pipeline_text(config), encoding="utf-8")
    spec = inputs.input_spec(config, "train", training=False, batch_size=batch_size)
    features, labels = next(iter(inputs.build_dataset(spec, seed=0)))
    images, counts = features["image"], labels["num_boxes"].numpy()

    tf.keras.utils.set_random_seed(0)  # the OD API's initial weights
    detection = od.model_builder.build(od.config_util.get_configs_from_pipeline_file(str(config_path))["model"],
                                       is_training=True)
    tf.keras.backend.set_learning_phase(True)  # what model_lib_v2's training loop sets
    detection.predict(*detection.preprocess(tf.zeros_like(images[:1])))  # creates the variables
    prefix = tf.train.Checkpoint(model=detection).save(str(folder / template / "ckpt"))
    ours = load_trained_model(config, folder / template, Path(prefix).name).model

    detection.provide_groundtruth(
        groundtruth_boxes_list=[labels["boxes"][i, :n] for i, n in enumerate(counts)],
        groundtruth_classes_list=[tf.one_hot(labels["classes"][i, :n] - 1, config.model.ssd.num_classes)
                                  for i, n in enumerate(counts)],
        groundtruth_weights_list=[labels["weights"][i, :n] for i, n in enumerate(counts)])

    def their_step() -> tuple[dict[str, tf.Tensor], list[tf.Tensor | None]]:
        with tf.GradientTape() as tape:
            preprocessed, shapes = detection.preprocess(images)
            losses = dict(detection.loss(detection.predict(preprocessed, shapes), shapes))
            losses["Loss/regularization_loss"] = tf.add_n(detection.regularization_losses())
            losses["Loss/total_loss"] = tf.add_n([losses[name] for name in LOSSES[:3]])
        return losses, tape.gradient(losses["Loss/total_loss"], detection.trainable_variables)

    def our_step() -> tuple[dict[str, tf.Tensor], list[tf.Tensor | None]]:
        with tf.GradientTape() as tape:
            losses = ours.compute_losses(ours(images, training=True), labels["boxes"], labels["classes"],
                                         labels["weights"])
        return losses, tape.gradient(losses["Loss/total_loss"], ours.trainable_variables)

    optimizer = config.train_config.optimizer.momentum_optimizer
    rates = build_learning_rate(optimizer.learning_rate, "train_config.optimizer.momentum_optimizer.learning_rate")
    their_update = MomentumUpdate(detection.trainable_variables, optimizer.momentum_optimizer_value)
    our_update = MomentumUpdate(ours.trainable_variables, optimizer.momentum_optimizer_value)
    total_losses = []
    for step in range(updates + 1):
        theirs, their_gradients = their_step()
        mine, our_gradients = our_step()
        total_losses.append((float(theirs["Loss/total_loss"]), float(mine["Loss/total_loss"])))
        if step == 0:
            first_losses = {name: (float(theirs[name]), float(mine[name])) for name in LOSSES}
            their_norms = gradient_norms(detection.trainable_variables, their_gradients)
            our_norms = gradient_norms(ours.trainable_variables, our_gradients)
            statistics_error = relative_error(moving_statistics(detection.variables), moving_statistics(ours.variables))
        if step < updates:
            rate = float(rates(step))
            their_update.apply(their_gradients, rate)
            our_update.apply(our_gradients, rate)
    return Row(template, first_losses, (len(their_norms), len(our_norms)), relative_error(their_norms, our_norms),
               statistics_error, total_losses)


@dataclass
class CropRow:
    """One template's crop step, drawn by both sides: per figure, (OD API mean, tfodkit mean, standard error)."""

    template: str
    step: str
    draws: int
    figures: dict[str, tuple[float, float, float]]

    def met(self) -> bool:
        """Every mean within 3 standard errors of the other side's."""
        return all(abs(ours - theirs) <= 3 * error for theirs, ours, error in self.figures.values())


Crop = tuple[tuple[int, int], int, int, tuple[int, int]]  # (crop height, width), boxes kept, boxes, image size


def crop_figures(crops: list[Crop]) -> np.ndarray:
    """Per draw: image share kept, box share kept, uncropped (0/1), no box left (0/1)."""
    return np.array([(crop[0] * crop[1] / (full[0] * full[1]), kept / max(count, 1), float(crop == full),
                      float(kept == 0)) for crop, kept, count, full in crops])


def compare_crops(template: str, config: pipeline_pb2.TrainEvalPipelineConfig, draws: int) -> CropRow | None:
    """The template's crop step applied `draws` times to each of CROP_IMAGES training images by both sides."""
    from object_detection.builders import preprocessor_builder
    from object_detection.protos import preprocessor_pb2

    options = [option for option in config.train_config.data_augmentation_options
               if option.WhichOneof("preprocessing_step") in CROPS]
    if not options:
        return None
    option = options[0]
    their_option = text_format.Parse(text_format.MessageToString(option), preprocessor_pb2.PreprocessingStep())
    function, arguments = preprocessor_builder.build(their_option)
    spec = inputs.input_spec(config, "train", training=False, batch_size=CROP_IMAGES)
    features, labels = next(iter(inputs.build_dataset(spec, seed=0)))
    height, width = features["image"].shape[1:3]

    @tf.function(input_signature=[tf.TensorSpec([height, width, 3], tf.float32), tf.TensorSpec([None, 4], tf.float32)])
    def theirs(image: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        count = tf.shape(boxes)[0]
        return function(image, boxes, tf.ones([count], tf.int32), tf.ones([count], tf.float32), **arguments)[:2]

    augment = build_augmentation([option])
    tf.random.set_seed(0)
    sides: dict[str, list[Crop]] = {"od_api": [], "tfodkit": []}
    for index in range(CROP_IMAGES):
        count = int(labels["num_boxes"][index])
        image, boxes = features["image"][index], labels["boxes"][index, :count]
        for draw in range(draws):
            cropped, left = theirs(image, boxes)
            sides["od_api"].append((tuple(cropped.shape[:2]), int(left.shape[0]), count, (height, width)))
            sample = augment(Sample(image, boxes, tf.range(count)), tf.constant([index, draw], tf.int64))
            sides["tfodkit"].append((tuple(sample.image.shape[:2]), int(sample.boxes.shape[0]), count, (height, width)))
    their_figures, our_figures = crop_figures(sides["od_api"]), crop_figures(sides["tfodkit"])
    errors = np.sqrt(their_figures.var(axis=0) / len(their_figures) + our_figures.var(axis=0) / len(our_figures))
    return CropRow(template, option.WhichOneof("preprocessing_step"), len(our_figures), {
        name: (float(their_figures[:, column].mean()), float(our_figures[:, column].mean()), float(errors[column]))
        for column, name in enumerate(CROP_FIGURES)})


def report(rows: list[Row], crop_rows: list[CropRow], batch_size: int, updates: int, draws: int) -> str:
    """The Markdown section."""
    lines = [
        "## One training step beside the OD API's",
        "",
        f"`.venv/bin/python bench/bench_step_parity.py --batch-size {batch_size} --updates {updates} --draws {draws}` "
        "(the method in full is the script's docstring): each template rendered for the demo set, the OD API's "
        "freshly built model saved and restored into tfodkit through its checkpoint importer, one batch of training "
        "images without augmentation through both training steps. Relative differences: of each loss, of the "
        "per-variable gradient norms and of the batch norms' moving statistics after the step "
        f"(target <= {TOLERANCE:g}).",
        "",
        "| template | localization loss OD API | tfodkit | classification loss OD API | tfodkit | regularization "
        "OD API | tfodkit | gradients (variables) | max rel. difference gradients | moving statistics | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        (loc, our_loc), (cls, our_cls), (reg, our_reg) = (row.losses[name] for name in LOSSES[:3])
        lines.append(f"| {row.template} | {loc:.6f} | {our_loc:.6f} | {cls:.6f} | {our_cls:.6f} | {reg:.6f} | "
                     f"{our_reg:.6f} | {row.variables[0]} / {row.variables[1]} | {row.gradient_error:.1e} | "
                     f"{row.statistics_error:.1e} | {'yes' if row.first_step_error() <= TOLERANCE else 'NO'} |")
    lines += ["", f"Then {updates} momentum updates shared by both sides (the same arithmetic on each side's own "
              "gradients: the template's momentum and its schedule's first rates) on the same batch; the total loss "
              "at each step, OD API / tfodkit:", "",
              "| template | " + " | ".join(f"step {step}" for step in range(updates + 1))
              + " | max rel. difference | met |", "|---|" + "---|" * (updates + 3)]
    for row in rows:
        lines.append(f"| {row.template} | " + " | ".join(f"{theirs:.6f} / {ours:.6f}" for theirs, ours in
                                                          row.total_losses)
                     + f" | {row.steps_error():.1e} | {'yes' if row.steps_error() <= TOLERANCE else 'NO'} |")
    lines += ["", f"The template's crop step, {draws} draws on each of {CROP_IMAGES} training images per side "
              "(mean per draw; target: within 3 standard errors):", "",
              "| template | step | draws a side | " + " | ".join(f"{name} OD API | tfodkit" for name in CROP_FIGURES)
              + " | met |", "|---|---|---|" + "---|---|" * len(CROP_FIGURES) + "---|"]
    for row in crop_rows:
        lines.append(f"| {row.template} | {row.step} | {row.draws} | " + " | ".join(
            f"{theirs:.3f} | {ours:.3f}" for theirs, ours, _ in row.figures.values())
            + f" | {'yes' if row.met() else 'NO'} |")
    lines += ["", f"Machine: {cpu_name()}, TensorFlow {tf.__version__}, Python {platform.python_version()}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", nargs="+", default=list(TEMPLATES), choices=list(TEMPLATES))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--updates", type=int, default=4, help="shared momentum updates after the first step "
                        "(default 4)")
    parser.add_argument("--draws", type=int, default=100, help="crops drawn per image and side (default 100)")
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    args = parser.parse_args()
    if args.updates < 0:
        parser.error(f"--updates {args.updates}: give 0 or more")
    od = import_od_api()
    records = demo_records(600)
    configs = {template: template_config(template, records) for template in args.templates}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for template, config in configs.items():
            rows.append(compare(od, template, config, args.batch_size, args.updates, Path(folder)))
            print(rows[-1], file=sys.stderr, flush=True)
    crop_rows = [row for row in (compare_crops(template, config, args.draws) for template, config in configs.items())
                 if row]
    publish(report(rows, crop_rows, args.batch_size, args.updates, args.draws), args.docs, "bench_step_parity")
    met = all(row.worst() <= TOLERANCE for row in rows) and all(row.met() for row in crop_rows)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
