"""`tfodkit sweep SWEEP.yaml`: train a grid or list of pipeline.config variants, one run directory each."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

import tensorflow as tf

from tfodkit.errors import Interrupted, TfodkitError
from tfodkit.evaluation.coco_metrics import MAP_50
from tfodkit.experiments.runner import LOG_FILE, Job, Outcome, run_jobs
from tfodkit.experiments.sweep import Run, Sweep, plan_sweep, write_sweep
from tfodkit.experiments.sweep_file import load_sweep_file
from tfodkit.text_table import format_table
from tfodkit.training import run_summary
from tfodkit.training.checkpoints import checkpoint_step
from tfodkit.training.interruption import signal_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_file", metavar="SWEEP.yaml", help="the sweep file (docs/sweep.md)")
    parser.add_argument("--runs-dir", "--runs_dir", dest="runs_dir", default="runs",
                        help="runs go to RUNS_DIR/SWEEP/RUN (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="runs trained at once (default: 1)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                      help="print each run's name, overrides and hyperparameters; write nothing, train nothing")
    what.add_argument("--print-commands", "--print_commands", dest="print_commands", action="store_true",
                      help="render the runs' pipeline.config files, then print one `tfodkit train` line per run "
                           "(for a cluster scheduler) instead of training")


def _print_plan(sweep: Sweep) -> None:
    scale = sweep.file.scale_lr or "not set"
    print(f"sweep {sweep.file.name}: {len(sweep.runs)} run(s) in {sweep.root} (base batch size "
          f"{sweep.base_batch_size}, scale_lr {scale}); nothing written (--dry-run)")
    for run in sweep.runs:
        print(f"\n{run.name}")
        seed = "" if run.seed is None else f", seed {run.seed}"
        print(f"  model: {run.model or 'the base pipeline.config'}{seed}")
        for override in run.overrides:
            print(f"  --set {override}")
        print("  hparams: " + ", ".join(f"{name}={value}" for name, value in run.hparams.items()))


def _best(summary: run_summary.RunSummary | None) -> str:
    if summary is None or summary.best_value is None:
        return "-"
    return f"{summary.best_value:.4f} (step {summary.best_step})"


def _table(sweep: Sweep, outcomes: dict[str, Outcome]) -> str:
    """Each run's state, steps (a finished run's summary, else its latest checkpoint), best evaluation and time."""
    summaries = {run.name: run_summary.read(run.directory) for run in sweep.runs}
    rows = []
    for run in sweep.runs:
        summary, outcome = summaries[run.name], outcomes.get(run.name)
        if outcome is None:
            state = "finished before" if summary is not None else "not started"
        else:
            state = outcome.state + ("" if outcome.state == "finished" else f" (exit {outcome.exit_code})")
        latest = tf.train.latest_checkpoint(str(run.directory)) if summary is None else None
        steps = f"{summary.final_step}/{summary.num_steps}" if summary is not None else "-"
        if latest:
            steps = f"{checkpoint_step(latest)}/{run.config.train_config.num_steps}"
        rows.append((run.name, state, steps, _best(summary), "-" if outcome is None else f"{outcome.seconds:.0f}"))
    metric = next((summary.best_metric for summary in summaries.values() if summary is not None), MAP_50)
    header = "best mAP@0.5" if metric == MAP_50 else f"best {metric}"
    return format_table(("run", "state", "steps", header, "seconds"), rows, title=f"sweep {sweep.file.name}")


def _jobs(runs: list[Run]) -> list[Job]:
    """Each run's command as this Python runs it (the same `tfodkit train` line --print-commands prints)."""
    return [Job(run.name, run.directory, (sys.executable, "-m", "tfodkit.cli", *run.command[1:])) for run in runs]


def _print_commands(sweep: Sweep, to_train: list[Run]) -> None:
    skipped = len(sweep.runs) - len(to_train)
    note = f", {skipped} finished before and left out" if skipped else ""
    print(f"# sweep {sweep.file.name}: {len(to_train)} run(s) to train{note}; pipeline.config files in {sweep.root}; "
          f"run each line from {os.getcwd()}", file=sys.stderr)
    for run in to_train:
        print(shlex.join(run.command))


def _train(sweep: Sweep, to_train: list[Run], jobs: int) -> int:
    cores = os.cpu_count() or 1
    if jobs > cores:
        print(f"warning: --jobs {jobs} is more than this machine's {cores} CPU cores; the runs will compete for them",
              file=sys.stderr)
    skipped = len(sweep.runs) - len(to_train)
    print(f"sweep {sweep.file.name}: {len(sweep.runs)} run(s) in {sweep.root}, {len(to_train)} to train"
          + (f" ({skipped} finished before, skipped)" if skipped else "")
          + (f", {jobs} at once" if jobs > 1 else ""), flush=True)
    outcomes, signum = run_jobs(_jobs(to_train), jobs, lambda line: print(line, flush=True))
    print("\n" + _table(sweep, outcomes))
    failed = [run for run in to_train if outcomes.get(run.name) and outcomes[run.name].state == "failed"]
    if failed:
        print(f"\nfailed runs ({len(failed)}; the last lines of each are in its sweep_status.json):")
        for run in failed:
            last = outcomes[run.name].error.splitlines()[-1:] or ["no output"]
            print(f"  {run.name}: {last[0]}  (log: {run.directory / LOG_FILE})")
    print(f"\ntfodkit report {sweep.root}\ntensorboard --logdir {sweep.root}")
    if signum is not None:
        stopped = sum(1 for outcome in outcomes.values() if outcome.state == "interrupted")
        raise Interrupted(signum, f"stopped by {signal_name(signum)}: {stopped} run(s) interrupted after saving a "
                                  "checkpoint; they resume from it, and finished runs are skipped", resumable=True)
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise TfodkitError(f"--jobs {args.jobs}: must be at least 1")
    sweep = plan_sweep(load_sweep_file(args.sweep_file), args.runs_dir)
    if args.dry_run:
        _print_plan(sweep)
        return 0
    write_sweep(sweep)
    to_train = [run for run in sweep.runs if run_summary.read(run.directory) is None]
    if args.print_commands:
        _print_commands(sweep, to_train)
        return 0
    return _train(sweep, to_train, args.jobs)
