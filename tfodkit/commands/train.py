"""`tfodkit train`: train from a pipeline.config with periodic evaluation, or evaluate a run beside it."""

from __future__ import annotations

import argparse
import math

from tfodkit.config.loader import load_pipeline
from tfodkit.training.best_checkpoint import BEST_DIR, DEFAULT_METRIC
from tfodkit.training.checkpoints import DEFAULT_MAX_TO_KEEP
from tfodkit.training.evaluator import evaluate_checkpoints
from tfodkit.training.hparams import parse_hparam
from tfodkit.training.run_summary import RUN_SUMMARY_FILE
from tfodkit.training.trainer import DEFAULT_CHECKPOINT_EVERY_N, DEFAULT_STEPS_PER_CALL, TrainOptions, train

DEFAULT_EVAL_TIMEOUT_S = 3600  # model_main_tf2's --eval_timeout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline_config_path", required=True, help="the pipeline.config to train")
    parser.add_argument("--model_dir", required=True, help="where checkpoints and TensorBoard event files go")
    parser.add_argument("--num_train_steps", type=int, help="default: train_config.num_steps")
    parser.add_argument("--checkpoint_every_n", type=int, default=DEFAULT_CHECKPOINT_EVERY_N,
                        help="save a checkpoint every N steps (default: %(default)s)")
    parser.add_argument("--eval_every_n", type=int,
                        help="evaluate every N steps (default: --checkpoint_every_n; 0: only at the end)")
    parser.add_argument("--max_to_keep", type=int, default=DEFAULT_MAX_TO_KEEP,
                        help="checkpoints kept in --model_dir (default: %(default)s)")
    parser.add_argument("--steps_per_call", type=int, default=DEFAULT_STEPS_PER_CALL,
                        help="optimizer steps per compiled call, also the logging interval (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="fix input order and augmentation (default: random)")
    parser.add_argument("--checkpoint_dir",
                        help="do not train: evaluate the checkpoints another `tfodkit train` writes there "
                             "(each new one, like model_main_tf2's sidecar evaluator), summaries in --model_dir")
    parser.add_argument("--eval_once", action="store_true",
                        help="with --checkpoint_dir: evaluate only its latest checkpoint, then stop")
    parser.add_argument("--eval_timeout", type=float, default=DEFAULT_EVAL_TIMEOUT_S,
                        help="with --checkpoint_dir: stop after this many seconds without a new checkpoint "
                             "(default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a pipeline.config field, e.g. train_config.batch_size=4 (repeatable)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar (log lines only)")
    parser.add_argument("--skip-bad-records", "--skip_bad_records", dest="skip_bad_records", action="store_true",
                        help="read and check every input record first, then train on the good ones; each bad "
                             "record is listed here and in the run's events (default: a bad record stops the run)")
    parser.add_argument("--best-metric", "--best_metric", dest="best_metric", default=DEFAULT_METRIC, metavar="TAG",
                        help="the eval/ tag whose best evaluation's checkpoint is kept in MODEL_DIR/best/ and that "
                             "early stopping follows; Loss/* tags are minimised, the others maximised "
                             "(default: %(default)s)")
    parser.add_argument("--early-stop-patience", "--early_stop_patience", dest="early_stop_patience", type=int,
                        metavar="N", help="stop after N evaluations in a row without an improvement of the best "
                                          "metric (default: never)")
    parser.add_argument("--early-stop-min-delta", "--early_stop_min_delta", dest="early_stop_min_delta", type=float,
                        default=0.0, metavar="X",
                        help="an improvement must change the best metric by more than X (default: %(default)s)")
    parser.add_argument("--hparam", dest="hparams", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra hyperparameter to record for TensorBoard's HParams dashboard; the value is "
                             "read as an int, a float, true/false or a string (repeatable)")


def run(args: argparse.Namespace) -> int:
    if args.checkpoint_dir:
        config = load_pipeline(args.pipeline_config_path, args.overrides)
        evaluate_checkpoints(config, args.checkpoint_dir, args.model_dir, once=args.eval_once,
                             timeout_s=args.eval_timeout, num_steps=args.num_train_steps)
        return 0
    result = train(TrainOptions(
        pipeline_config_path=args.pipeline_config_path,
        model_dir=args.model_dir,
        overrides=tuple(args.overrides),
        num_train_steps=args.num_train_steps,
        checkpoint_every_n=args.checkpoint_every_n,
        eval_every_n=args.eval_every_n,
        max_to_keep=args.max_to_keep,
        steps_per_call=args.steps_per_call,
        seed=args.seed,
        progress=not args.no_progress,
        skip_bad_records=args.skip_bad_records,
        best_metric=args.best_metric,
        early_stop_patience=args.early_stop_patience,
        early_stop_min_delta=args.early_stop_min_delta,
        hparams=tuple(parse_hparam(text) for text in args.hparams),
    ))
    evaluation, summary = result.evaluation, result.summary
    rate = "" if math.isnan(result.steps_per_sec) else f" at {result.steps_per_sec:.2f} steps/s"
    print(f"trained steps {result.start_step}..{result.final_step}{rate}")
    print(f"mAP@0.5 (eval split, step {evaluation.step}): {evaluation.map_50:.4f}")
    if summary.stopped_early:
        print(f"stopped early at step {summary.final_step} of {summary.num_steps}: {summary.stop_reason}")
    print(f"checkpoints: {result.model_dir} (latest {result.latest_checkpoint})")
    if summary.best_step is not None:
        print(f"best checkpoint: {result.model_dir / BEST_DIR} (step {summary.best_step}, {summary.best_metric} "
              f"{summary.best_value:.4f})")
    print(f"run summary: {result.model_dir / RUN_SUMMARY_FILE}")
    print(f"event files: {result.model_dir / 'train'} and {result.model_dir / 'eval'}")
    print(f"tensorboard --logdir {result.model_dir}")
    if args.skip_bad_records:
        print(f"bad records left out (--skip-bad-records): {len(result.skipped_records)}")
        for record in result.skipped_records:
            print(f"  {record.line()}")
    return 0
