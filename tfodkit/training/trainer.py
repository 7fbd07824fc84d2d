"""The training loop of `tfodkit train`: compiled steps, checkpoints, periodic evaluation, summaries, progress."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import tensorflow as tf
from tqdm import tqdm

from tfodkit import inputs
from tfodkit.checkpoints.pretrained import restore_fine_tune_checkpoint
from tfodkit.config.loader import load_pipeline, pipeline_text
from tfodkit.dataset.record_check import BadRecord
from tfodkit.errors import BadInputData, Interrupted, TfodkitError
from tfodkit.evaluation.coco_metrics import category_names
from tfodkit.evaluation.loss_gap import LOSS_TAGS, TOTAL_LOSS
from tfodkit.evaluation.summaries import EVAL_DIR, Summaries
from tfodkit.label_map import LabelMap
from tfodkit.model.builder import build_ssd
from tfodkit.model.ssd import SSD
from tfodkit.protos import pipeline_pb2
from tfodkit.training import early_stopping, input_errors, run_summary
from tfodkit.training.best_checkpoint import (
    BEST_DIR, DEFAULT_METRIC, BestCheckpoint, check_metric, metric_value, minimised)
from tfodkit.training.checkpoints import CHECKPOINT_PREFIX, DEFAULT_MAX_TO_KEEP, TrainingCheckpoints
from tfodkit.training.evaluator import Evaluation, Evaluator
from tfodkit.training.hparams import run_hparams, write_run_hparams
from tfodkit.training.interruption import SIGNALS, StopSignals, signal_name
from tfodkit.training.optimizers import build_optimizer, gradient_clip_norm
from tfodkit.training.run_summary import RunSummary
from tfodkit.training.step import LEARNING_RATE_KEY, make_train_step

PIPELINE_FILE = "pipeline.config"  # the config a run used, copied into MODEL_DIR as the OD API does
DEFAULT_CHECKPOINT_EVERY_N = 1000  # model_main_tf2's --checkpoint_every_n default
DEFAULT_STEPS_PER_CALL = 10  # optimizer steps per compiled call: also how often losses are logged


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """What `tfodkit train` was asked to do (flags named as model_main_tf2's)."""

    pipeline_config_path: str
    model_dir: str
    overrides: tuple[str, ...] = ()
    num_train_steps: int | None = None  # None: train_config.num_steps
    checkpoint_every_n: int = DEFAULT_CHECKPOINT_EVERY_N
    eval_every_n: int | None = None  # None: checkpoint_every_n; 0: only at the end
    max_to_keep: int = DEFAULT_MAX_TO_KEEP
    steps_per_call: int = DEFAULT_STEPS_PER_CALL
    seed: int | None = None  # input order and augmentation draws; None: different every run
    progress: bool = True  # show the tqdm progress bar
    skip_bad_records: bool = False  # leave out (and list) records that cannot be read, instead of stopping
    best_metric: str = DEFAULT_METRIC  # the eval/ tag MODEL_DIR/best/ and early stopping follow
    early_stop_patience: int | None = None  # stop after this many evaluations without improvement; None: never
    early_stop_min_delta: float = 0.0  # an improvement must exceed this absolute change
    hparams: tuple[tuple[str, object], ...] = ()  # extra hyperparameters recorded for the HParams dashboard


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Where a finished run left its artifacts, and its last evaluation."""

    start_step: int
    final_step: int
    latest_checkpoint: str
    evaluation: Evaluation
    model_dir: Path
    steps_per_sec: float  # training steps per second, evaluations and each step size's first (compiling) call
    # excluded; NaN when every call compiled
    summary: RunSummary  # as written to MODEL_DIR/run_summary.json: how the run ended, its best evaluation
    skipped_records: tuple[BadRecord, ...] = ()  # left out by --skip-bad-records


def choose_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy over several GPUs, else the
    default strategy (CPU or one GPU). Must run before any other TensorFlow op when TF_CONFIG is set."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _sharded(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy, num_files: int) -> tf.data.Dataset:
    """The training dataset with its multi-worker sharding chosen: by file when every worker gets at least one
    TFRecord file, else by batch (each worker reads every file and keeps its share of the batches)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if workers <= 1 or num_files >= workers:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _check_options(options: TrainOptions, num_steps: int) -> None:
    if num_steps < 1:
        raise TfodkitError(f"--num_train_steps: must be at least 1, got {num_steps}")
    if options.checkpoint_every_n < 1:
        raise TfodkitError(f"--checkpoint_every_n: must be at least 1, got {options.checkpoint_every_n}")
    if options.eval_every_n is not None and options.eval_every_n < 0:
        raise TfodkitError(f"--eval_every_n: must be 0 (only at the end) or more, got {options.eval_every_n}")
    if options.steps_per_call < 1:
        raise TfodkitError(f"--steps_per_call: must be at least 1, got {options.steps_per_call}")
    if options.early_stop_patience is not None:
        if options.early_stop_patience < 1:
            raise TfodkitError(f"--early-stop-patience: must be at least 1, got {options.early_stop_patience}")
        if options.eval_every_n == 0:
            raise TfodkitError("--early-stop-patience: needs periodic evaluations, but --eval_every_n 0 evaluates "
                               "only at the end")
    if not 0.0 <= options.early_stop_min_delta < math.inf:
        raise TfodkitError(f"--early-stop-min-delta: must be 0 or more, got {options.early_stop_min_delta}")


def _chunk(step: int, num_steps: int, steps_per_call: int, every: Sequence[int]) -> int:
    """How many steps the next compiled call runs: at most steps_per_call, stopping on each checkpoint /
    evaluation boundary and on num_steps (only a run resumed from another step count can need a shorter one)."""
    stop = min([num_steps] + [(step // n + 1) * n for n in every if n > 0])
    return min(steps_per_call, stop - step)


@tf.function
def _all_finite(variables: list[tf.Variable]) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])


class _Diverged(Exception):
    """A non-finite training loss or weight: stop without saving."""


class _TrainImages:
    """Training batches as the model receives them, for the train_input_images summary."""

    def __init__(self, config: pipeline_pb2.TrainEvalPipelineConfig, label_map: LabelMap, seed: int | None,
                 skips: inputs.RecordSkips | None) -> None:
        self._batches = iter(inputs.train_dataset(config, seed, skips))
        self._names = category_names(label_map)

    def write(self, summaries: Summaries, step: int) -> None:
        features, labels = next(self._batches)
        counts = labels["num_boxes"].numpy()
        summaries.write_train_images(
            step,
            list(features["image"].numpy()),
            [boxes[:count] for boxes, count in zip(labels["boxes"].numpy(), counts)],
            [classes[:count] for classes, count in zip(labels["classes"].numpy(), counts)],
            self._names,
        )


class Trainer:
    """One training run in MODEL_DIR: fresh (fine_tune_checkpoint restored) or resumed from its last checkpoint."""

    def __init__(self, options: TrainOptions, report: Callable[[str], None] = tqdm.write) -> None:
        self.options = options
        self._report = report
        self.strategy = choose_strategy()
        self.config = load_pipeline(options.pipeline_config_path, options.overrides)
        self.num_steps = options.num_train_steps or self.config.train_config.num_steps
        _check_options(options, self.num_steps)
        self.eval_every_n = options.checkpoint_every_n if options.eval_every_n is None else options.eval_every_n
        train_spec, eval_spec = inputs.input_spec(self.config, "train"), inputs.input_spec(self.config, "eval")
        check_metric(options.best_metric, eval_spec.label_map)
        self.skips = self._check_inputs([train_spec, eval_spec])
        self.train_spec = dataclasses.replace(train_spec, skips=self.skips)
        self.model_dir = Path(options.model_dir)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        with self.strategy.scope():
            self.model: SSD = build_ssd(self.config)
            self.optimizer = build_optimizer(self.config.train_config.optimizer)
        # Calls end exactly on checkpoint and evaluation steps, so one step count serves every call (each
        # distinct count is a separate, slow, compilation).
        self.steps_per_call = math.gcd(options.steps_per_call, options.checkpoint_every_n, self.eval_every_n,
                                       self.num_steps)
        if self.steps_per_call != options.steps_per_call:
            report(f"steps per compiled call: {self.steps_per_call} (the largest number dividing --steps_per_call, "
                   "--checkpoint_every_n, --eval_every_n and the step count)")
        self._train_steps: dict[int, Callable] = {}
        self._train_step(self.steps_per_call)  # builds the optimizer's variables, before any restore
        self.checkpoints = TrainingCheckpoints(
            self.model_dir, self.model, self.optimizer, self.strategy, options.max_to_keep)
        # One machine: SIGINT and SIGTERM end the run after the current call, with a checkpoint. Several workers:
        # TensorFlow's PreemptionCheckpointHandler takes SIGTERM (every worker saves at the same step), and
        # Ctrl-C keeps its default (a worker cannot stop alone).
        self.multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.stop = StopSignals(report, () if self.multi_worker else SIGNALS)
        self._preemption = None
        if self.multi_worker:
            self._preemption = tf.distribute.experimental.PreemptionCheckpointHandler(
                self.strategy.cluster_resolver, self.checkpoints.manager,
                termination_config=tf.distribute.experimental.TerminationConfig(
                    exit_fn=self._preempted, save_fn=lambda *_, **__: self.checkpoints.save()))
        self.evaluator = Evaluator(self.config, self.model, self.optimizer, self.skips, self.stop)
        # Under MultiWorkerMirroredStrategy only the chief writes best/; its decisions reach the others (_chiefs).
        self.best = BestCheckpoint(self.model_dir, options.best_metric, self.checkpoints.is_chief, report)
        # Under MultiWorkerMirroredStrategy only the chief's summaries land in MODEL_DIR.
        self.summaries = Summaries(self.model_dir if self.checkpoints.is_chief
                                   else tempfile.mkdtemp(prefix="tfodkit-worker-summaries-"))

    def _check_inputs(self, specs: list[inputs.InputSpec]) -> inputs.RecordSkips | None:
        """Before any compute: the framing checksums of every input file (a damaged file stops the run here), or
        with --skip-bad-records every record read and checked, the bad ones listed and left out."""
        if not self.options.skip_bad_records:
            input_errors.check_framing(specs)
            return None
        skips = input_errors.skips(specs)
        for record in skips.records:
            self._report(f"skipping {record.line()}")
        self._report(f"--skip-bad-records: {len(skips)} bad record(s) left out")
        return skips

    @staticmethod
    def _preempted() -> None:
        """PreemptionCheckpointHandler's exit_fn: called once every worker has saved the checkpoint."""
        raise Interrupted(signal.SIGTERM)

    def _train_step(self, steps: int) -> Callable:
        if steps not in self._train_steps:
            self._train_steps[steps] = make_train_step(
                self.model, self.optimizer, self.strategy, steps, gradient_clip_norm(self.config.train_config))
        return self._train_steps[steps]

    def _start(self) -> int:
        """Resume from MODEL_DIR's last checkpoint, or start fresh from the fine_tune_checkpoint."""
        step = self.checkpoints.restore_latest()
        if step is not None:
            self._report(f"resuming from {self.checkpoints.latest} at step {step}")
            return step
        train_config = self.config.train_config
        if train_config.fine_tune_checkpoint:
            restore_fine_tune_checkpoint(
                self.model, train_config.fine_tune_checkpoint,
                train_config.fine_tune_checkpoint_type or "classification", self._report)
        if self.checkpoints.is_chief:
            (self.model_dir / PIPELINE_FILE).write_text(pipeline_text(self.config), encoding="utf-8")
        return 0

    def _run_call(self, iterator: Iterator, steps: int) -> dict[str, float]:
        try:
            result = self._train_step(steps)(iterator)
        except tf.errors.OpError as error:
            if not input_errors.is_input_error(error):
                raise
            raise input_errors.locate(error, self.train_spec) from None
        return {key: float(value) for key, value in result.items()}

    def _save_progress(self, saved_at: int) -> str:
        """A checkpoint of the last completed step (written unless the newest one already holds it)."""
        if int(self.checkpoints.step.numpy()) != saved_at or self.checkpoints.latest is None:
            self.checkpoints.save()
        return self.checkpoints.latest or ""

    def _check_finite(self, values: dict[str, float], first: int, last: int) -> None:
        bad = {tag: value for tag, value in values.items() if not math.isfinite(value)}
        if not bad and bool(_all_finite(self.model.trainable_variables)):
            return
        what = ", ".join(f"{tag} = {value}" for tag, value in bad.items()) or "a weight became NaN or infinite"
        raise _Diverged(f"training diverged in steps {first}..{last}: {what}")

    def _evaluate(self, step: int, images: _TrainImages) -> Evaluation:
        images.write(self.summaries, step)
        evaluation = self.evaluator.evaluate(step, self.summaries)
        self._report(evaluation.line())
        return evaluation

    def _chiefs(self, decision: bool) -> bool:
        """The chief's decision, on every worker. Decisions taken from evaluation values must agree, yet the values
        differ slightly between workers (each one's batch norms keep their own moving statistics): an all-reduce
        (SUM) where only the chief offers its decision. One machine: the decision itself."""
        if not self.multi_worker:
            return decision
        offered = tf.constant(float(decision and self.checkpoints.is_chief))
        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(lambda: tf.identity(offered)),
                                     axis=None)
        return bool(total.numpy() > 0)

    def _keep_best(self, evaluation: Evaluation, saved_at: int) -> int:
        """best/ takes this evaluation's checkpoint when its value beats the best so far (a checkpoint of the
        step is saved first when there is none); returns the step of the newest checkpoint."""
        value = metric_value(evaluation, self.options.best_metric)
        if not self._chiefs(self.best.improves(value)):
            return saved_at
        if saved_at != evaluation.step:
            self.checkpoints.save()
        best = self.best.keep(evaluation.step, value, str(self.model_dir / f"{CHECKPOINT_PREFIX}-{evaluation.step}"))
        self._report(f"best {best.metric} so far: {best.value:.4f} at step {best.step}, kept in "
                     f"{self.model_dir / BEST_DIR}")
        return evaluation.step

    def _early_stopping(self, start: int) -> early_stopping.EarlyStopping:
        """Early stopping as it stood at `start`: the evaluations up to it replayed from MODEL_DIR's eval/ events."""
        options = self.options
        stopping = early_stopping.resume(self.model_dir / EVAL_DIR, options.best_metric, options.early_stop_patience,
                                         options.early_stop_min_delta, minimised(options.best_metric), start)
        if stopping.stopped:
            self._report(f"this run already stopped early: {stopping.reason()}")
        return stopping

    def _stop_early(self, evaluation: Evaluation, stopping: early_stopping.EarlyStopping) -> bool:
        """Whether early stopping ends the run at this evaluation (written to the train/ events when it does)."""
        if not self._chiefs(stopping.update(evaluation.step, metric_value(evaluation, self.options.best_metric))):
            return False
        reason = stopping.reason() or "the chief's early stopping"
        self._report(f"early stopping: {reason}")
        self.summaries.write_early_stopping(evaluation.step, reason)
        return True

    def _record_start(self) -> None:
        """The chief's records of a run that trains: no run_summary.json until it ends, its HParams."""
        if not self.checkpoints.is_chief:
            return
        run_summary.clear(self.model_dir)
        extra = {"num_steps": self.num_steps, **dict(self.options.hparams)}
        write_run_hparams(self.model_dir, run_hparams(self.config, self.options.seed, extra), self.model_dir.name)

    def run(self) -> TrainResult:
        """Train to num_steps, checkpointing and evaluating on schedule; evaluate and save at the end."""
        with self.stop:
            return self._run()

    def _run(self) -> TrainResult:
        run_began = time.monotonic()
        start = self._start()
        options = self.options
        stopping = self._early_stopping(start)
        stopped = self._chiefs(stopping.stopped)
        self._record_start()
        images = _TrainImages(self.config, self.evaluator.label_map, options.seed, self.skips)
        if start == 0:
            images.write(self.summaries, 0)
        if self.skips is not None:
            self.summaries.write_skipped_records(start, [record.line() for record in self.skips.records])
        spec = self.train_spec
        dataset = self.strategy.experimental_distribute_dataset(_sharded(
            inputs.build_dataset(spec, options.seed), self.strategy, len(spec.record_files)))
        iterator = iter(dataset)
        step, evaluation, saved_at = start, None, start
        timed_steps, timed_seconds, compiled = 0, 0.0, set()
        bar = tqdm(total=self.num_steps, initial=start, unit="step", disable=not options.progress,
                   dynamic_ncols=True, desc="train")
        try:
            while step < self.num_steps and not stopped:
                steps = _chunk(step, self.num_steps, self.steps_per_call,
                               (options.checkpoint_every_n, self.eval_every_n))
                began = time.perf_counter()
                values = self._run_call(iterator, steps)
                seconds = time.perf_counter() - began
                if steps in compiled:
                    timed_steps, timed_seconds = timed_steps + steps, timed_seconds + seconds
                compiled.add(steps)
                self._check_finite(values, step + 1, step + steps)
                step = int(self.checkpoints.step.numpy())
                losses = {tag: values[tag] for tag in LOSS_TAGS}
                self.summaries.write_train_step(step, losses, values[LEARNING_RATE_KEY], steps / seconds)
                bar.update(steps)
                bar.set_postfix(loss=f"{values[TOTAL_LOSS]:.4f}", lr=f"{values[LEARNING_RATE_KEY]:.4g}",
                                steps_per_s=f"{steps / seconds:.2f}", refresh=False)
                if step % options.checkpoint_every_n == 0 or step == self.num_steps:
                    self.checkpoints.save()
                    saved_at = step
                if (self.eval_every_n and step % self.eval_every_n == 0) or step == self.num_steps:
                    evaluation = self._evaluate(step, images)
                    saved_at = self._keep_best(evaluation, saved_at)
                    stopped = self._stop_early(evaluation, stopping)
                if self._preemption is not None:
                    self._preemption.save_checkpoint_if_preempted()
                self.stop.check()
        except Interrupted as interrupted:
            if not self.multi_worker:
                latest = self._save_progress(saved_at)
            else:  # PreemptionCheckpointHandler saved it, every worker at the same step
                latest = self.checkpoints.latest if self.checkpoints.is_chief else "(the chief's, in its MODEL_DIR)"
            raise Interrupted(interrupted.signum, (
                f"stopped by {signal_name(interrupted.signum)} at step {int(self.checkpoints.step.numpy())} of "
                f"{self.num_steps}: checkpoint {latest} written, summaries flushed"), resumable=True) from None
        except BadInputData as error:
            if self.multi_worker:  # a save needs every worker, and the others may have stopped
                kept = f"the last periodic checkpoint {self.checkpoints.latest} is intact"
            else:
                kept = f"checkpoint {self._save_progress(saved_at)} holds the steps trained so far"
            raise BadInputData(f"{error}\nTraining stopped at step {int(self.checkpoints.step.numpy())}: {kept}; "
                               "once the data is fixed, the same command resumes from it.") from None
        except _Diverged as error:
            latest = self.checkpoints.latest
            kept = (f"the last good checkpoint {latest} (step {saved_at}) is intact" if latest
                    else "no checkpoint was written")
            raise TfodkitError(
                f"{error}; stopped without saving: {kept}. Lower the learning rate (or set "
                "train_config.gradient_clipping_by_norm) and run again"
            ) from None
        finally:
            bar.close()
            self.summaries.flush()
        if saved_at != step or self.checkpoints.latest is None:
            self.checkpoints.save()
        if evaluation is None:
            evaluation = self._evaluate(step, images)
            self._keep_best(evaluation, step)
        self.summaries.close()
        steps_per_sec = timed_steps / timed_seconds if timed_seconds else float("nan")
        best = self.best.best
        summary = RunSummary(
            final_step=step, num_steps=self.num_steps, stopped_early=stopped,
            stop_reason=(stopping.reason() or "the chief's early stopping") if stopped
            else f"trained to step {self.num_steps}",
            best_step=best.step if best else None, best_metric=options.best_metric,
            best_value=best.value if best else None, steps_per_sec=steps_per_sec,
            wall_seconds=time.monotonic() - run_began,
        )
        if self.checkpoints.is_chief:
            run_summary.write(self.model_dir, summary)
        return TrainResult(
            start_step=start, final_step=step, latest_checkpoint=self.checkpoints.latest or "",
            evaluation=evaluation, model_dir=self.model_dir, steps_per_sec=steps_per_sec, summary=summary,
            skipped_records=self.skips.records if self.skips is not None else (),
        )


def train(options: TrainOptions, report: Callable[[str], None] = tqdm.write) -> TrainResult:
    """Run `tfodkit train`: build, restore or resume, train, evaluate; see Trainer."""
    return Trainer(options, report).run()

