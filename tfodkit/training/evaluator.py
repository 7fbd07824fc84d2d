"""Evaluation of the current weights (eval split and a fixed training sample, with their gaps) and of checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from tfodkit import inputs
from tfodkit import label_map as label_maps
from tfodkit.errors import Interrupted, TfodkitError
from tfodkit.evaluation.coco_metrics import MAP_50, CocoDetectionMetrics, category_names
from tfodkit.evaluation.images import VisualizationOptions, side_by_side
from tfodkit.evaluation.loss_gap import LossMeans, gaps
from tfodkit.evaluation.summaries import Summaries
from tfodkit.model.builder import build_ssd
from tfodkit.model.ssd import SSD
from tfodkit.protos import pipeline_pb2
from tfodkit.training import input_errors
from tfodkit.training.checkpoints import restore_for_evaluation
from tfodkit.training.interruption import StopSignals, signal_name
from tfodkit.training.optimizers import build_optimizer
from tfodkit.training.step import make_eval_step

Batch = tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What one evaluation measured, at the global step of the weights it used."""

    step: int
    metrics: dict[str, float]  # COCO summary metrics and per-class AP@0.5 on the eval split
    losses: dict[str, float]  # Loss/* means on the eval split (inference mode)
    train_losses: dict[str, float]  # Loss/* means on the fixed training sample (inference mode)
    train_map_50: float  # mAP@0.5 on the fixed training sample
    gaps: dict[str, float]  # Gap/* tags
    num_images: int  # eval images evaluated
    num_train_images: int  # training images in the fixed sample
    num_difficult_boxes: int  # difficult ground-truth boxes among the eval images (evaluated as ordinary ones)
    seconds: float

    @property
    def map_50(self) -> float:
        return self.metrics[MAP_50]

    def line(self) -> str:
        """One log line: mAP@0.5 on both sets and the total-loss gap."""
        return (
            f"step {self.step}: eval mAP@0.5 {self.map_50:.4f} ({self.num_images} images), train-sample mAP@0.5 "
            f"{self.train_map_50:.4f}, eval loss {self.losses['Loss/total_loss']:.4f} vs train-sample "
            f"{self.train_losses['Loss/total_loss']:.4f} ({self.seconds:.1f} s)"
            + (f"; {self.num_difficult_boxes} difficult boxes evaluated as ordinary ones"
               if self.num_difficult_boxes else "")
        )


def _eval_label_map(config: pipeline_pb2.TrainEvalPipelineConfig) -> label_maps.LabelMap:
    path = config.eval_input_reader[0].label_map_path if config.eval_input_reader else ""
    if not path:
        raise TfodkitError("eval_input_reader[0].label_map_path: required for the COCO metrics' class names")
    return label_maps.load(path)


def _batches(spec: inputs.InputSpec, dataset: tf.data.Dataset, stop: StopSignals | None) -> Iterator[Batch]:
    """The dataset's batches; an input failure becomes a BadInputData naming the records, a stop request
    (SIGINT / SIGTERM) ends the pass between batches."""
    iterator = iter(dataset)
    while True:
        if stop is not None:
            stop.check()
        try:
            yield next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            if not input_errors.is_input_error(error):
                raise
            raise input_errors.locate(error, spec) from None


class Evaluator:
    """Evaluates the current weights of `model` on the eval split and on a fixed training sample.

    The eval pass runs on one device (the default strategy), whatever strategy trains the model: the split
    is read once per evaluation, its last batch may be partial, and every image goes through pycocotools.
    The training sample is the first N images of the training split in file order, without augmentation,
    N = the number of eval images (or the whole training split when smaller), the same images every time.
    """

    def __init__(
        self,
        config: pipeline_pb2.TrainEvalPipelineConfig,
        model: SSD,
        optimizer: keras.optimizers.Optimizer | None = None,
        skips: inputs.RecordSkips | None = None,
        stop: StopSignals | None = None,
    ) -> None:
        """`optimizer`: the training optimizer, needed only when eval_config.use_moving_averages asks for
        its moving averages of the weights; `skips`: records to leave out; `stop`: ends an evaluation between
        batches when a signal came."""
        self._model = model
        self._stop = stop
        self._averages = None
        if config.eval_config.use_moving_averages:
            if optimizer is None or not optimizer.use_ema:
                raise TfodkitError(
                    "eval_config.use_moving_averages: true, but train_config.optimizer.use_moving_average is "
                    "false, so training keeps no moving averages to evaluate"
                )
            self._averages = optimizer
        self.label_map = _eval_label_map(config)
        self._names = category_names(self.label_map)
        self._visualization = VisualizationOptions.from_eval_config(config.eval_config)
        self._eval_spec = inputs.input_spec(config, "eval", skips=skips)
        self.num_eval_images = inputs.count_records(self._eval_spec)
        if not self.num_eval_images:
            raise TfodkitError(f"{self._eval_spec.reader}.tf_record_input_reader.input_path: the eval "
                               "TFRecords hold no records")
        train_spec = inputs.input_spec(config, "train", training=False, batch_size=self._eval_spec.batch_size,
                                       skips=skips)
        self._train_spec = dataclasses.replace(train_spec, shuffle=False, num_epochs=1)
        if tf.distribute.has_strategy():
            raise RuntimeError("build the Evaluator outside strategy.scope(): it evaluates on one device")
        self._eval_step = make_eval_step(model, tf.distribute.get_strategy())

    def _weights(self) -> contextlib.AbstractContextManager:
        """The weights to evaluate: the model's own, or (use_moving_averages) the optimizer's averages of
        them, swapped in for the evaluation and swapped back after it."""
        if self._averages is None:
            return contextlib.nullcontext()
        return _moving_averages(self._averages, self._model)

    def _train_sample(self) -> tf.data.Dataset:
        batch = self._train_spec.batch_size
        return inputs.build_dataset(self._train_spec).unbatch().take(self.num_eval_images).batch(batch)

    def _run(
        self, step: int, spec: inputs.InputSpec, dataset: tf.data.Dataset, num_images_to_draw: int
    ) -> tuple[CocoDetectionMetrics, LossMeans, list[np.ndarray]]:
        metrics, losses, drawn = CocoDetectionMetrics(self.label_map), LossMeans(), []
        for features, labels in _batches(spec, dataset, self._stop):
            batch_losses, detections = self._eval_step((features, labels))
            batch_losses = {tag: float(value) for tag, value in batch_losses.items()}
            bad = {tag: value for tag, value in batch_losses.items() if not math.isfinite(value)}
            if bad:
                names = b", ".join(labels["source_id"].numpy()).decode("utf-8", "replace")
                raise TfodkitError(f"evaluation at step {step}: {bad} on the batch of images {names}")
            losses.add(batch_losses, int(features["image"].shape[0]))
            detections = {key: value.numpy() for key, value in detections.items()}
            labels = {key: value.numpy() for key, value in labels.items()}
            metrics.add_batch(labels, detections)
            for i in range(len(labels["num_boxes"])):
                if len(drawn) >= num_images_to_draw:
                    break
                count = int(labels["num_boxes"][i])
                drawn.append(side_by_side(
                    features["image"][i].numpy(),
                    {key: value[i] for key, value in detections.items()},
                    labels["boxes"][i, :count], labels["classes"][i, :count], self._names, self._visualization,
                ))
        return metrics, losses, drawn

    def evaluate(self, step: int, summaries: Summaries | None = None) -> Evaluation:
        """Evaluate the model's current weights, labelled `step`; write eval/ summaries when given."""
        start = time.perf_counter()
        with self._weights():
            eval_metrics, eval_losses, drawn = self._run(
                step, self._eval_spec, inputs.build_dataset(self._eval_spec), self._visualization.num_visualizations)
            train_metrics, train_losses, _ = self._run(step, self._train_spec, self._train_sample(), 0)
            eval_mean, train_mean = eval_losses.result(), train_losses.result()
        metrics, train_map_50 = eval_metrics.compute(), train_metrics.compute()[MAP_50]
        gap_values = gaps(eval_mean, train_mean, metrics[MAP_50], train_map_50)
        if summaries is not None:
            summaries.write_evaluation(step, metrics, eval_mean, gap_values)
            if drawn:
                summaries.write_eval_images(step, drawn)
            summaries.flush()
        return Evaluation(
            step=step, metrics=metrics, losses=eval_mean, train_losses=train_mean, train_map_50=train_map_50,
            gaps=gap_values, num_images=eval_metrics.num_images, num_train_images=train_metrics.num_images,
            num_difficult_boxes=eval_metrics.num_difficult_boxes, seconds=time.perf_counter() - start,
        )


@contextlib.contextmanager
def _moving_averages(optimizer: keras.optimizers.Optimizer, model: keras.Model) -> Iterator[None]:
    variables = model.trainable_variables
    saved = [variable.numpy() for variable in variables]
    optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def evaluate_checkpoints(
    config: pipeline_pb2.TrainEvalPipelineConfig,
    checkpoint_dir: str | Path,
    model_dir: str | Path,
    *,
    once: bool,
    timeout_s: float,
    num_steps: int | None = None,
    report: Callable[[str], None] = print,
) -> list[Evaluation]:
    """Evaluate the checkpoints a training run writes to `checkpoint_dir`, writing eval/ summaries under
    `model_dir`: the latest one only (`once`), or, like model_main_tf2's sidecar evaluator, each new one as it
    appears until one reaches `num_steps` (default train_config.num_steps) or none appears for `timeout_s`
    seconds."""
    num_steps = num_steps or config.train_config.num_steps
    model = build_ssd(config)
    optimizer = None
    if config.eval_config.use_moving_averages:
        optimizer = build_optimizer(config.train_config.optimizer)
        optimizer.build(model.trainable_variables)
    input_errors.check_framing([inputs.input_spec(config, "eval"), inputs.input_spec(config, "train")])
    stop = StopSignals(report)
    evaluator = Evaluator(config, model, optimizer, stop=stop)
    summaries = Summaries(model_dir)
    last_seen = [time.monotonic()]  # when the newest checkpoint was evaluated
    if once:
        latest = tf.train.latest_checkpoint(str(checkpoint_dir))
        if latest is None:
            raise TfodkitError(f"--checkpoint_dir {checkpoint_dir}: no checkpoint found")
        prefixes: Iterator[str] = iter([latest])
    else:
        report(f"waiting for checkpoints in {checkpoint_dir} (gives up after {timeout_s:g} s without a new one)")

        def give_up() -> bool:  # polled each second without a new checkpoint
            return stop.requested or time.monotonic() - last_seen[0] > timeout_s

        prefixes = tf.train.checkpoints_iterator(str(checkpoint_dir), timeout=1, timeout_fn=give_up)
    evaluations = []
    try:
        with stop:
            for prefix in prefixes:
                stop.check()
                step = restore_for_evaluation(prefix, model, optimizer)
                evaluations.append(evaluator.evaluate(step, summaries))
                report(f"{prefix}: {evaluations[-1].line()}")
                last_seen[0] = time.monotonic()
                if step >= num_steps:
                    break
            stop.check()
    except Interrupted as interrupted:
        done = ", ".join(str(evaluation.step) for evaluation in evaluations) or "none"
        raise Interrupted(interrupted.signum, f"stopped by {signal_name(interrupted.signum)}; evaluations "
                                              f"finished and written under {model_dir}: steps {done}") from None
    finally:
        summaries.close()
    return evaluations
