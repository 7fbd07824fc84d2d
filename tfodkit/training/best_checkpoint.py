"""MODEL_DIR/best/: a copy of the checkpoint whose evaluation gave the best value of one eval/ tag so far."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from tfodkit.errors import TfodkitError
from tfodkit.evaluation.coco_metrics import MAP_50, SUMMARY_METRICS, category_names, per_class_tag
from tfodkit.evaluation.loss_gap import LOSS_TAGS
from tfodkit.label_map import LabelMap
from tfodkit.training.evaluator import Evaluation

BEST_DIR = "best"
BEST_FILE = "best.json"
DEFAULT_METRIC = MAP_50
# The best/ being replaced, for the instant between the two renames (restored if a run dies there).
_PREVIOUS = ".best-previous"
_STAGING_PREFIX = ".best-new-"
_STATE_FILE = "checkpoint"  # TensorFlow's checkpoint state file name, read by tf.train.latest_checkpoint


def minimised(tag: str) -> bool:
    """Loss tags are better lower; the COCO metrics higher."""
    return tag.startswith("Loss/")


def metric_tags(label_map: LabelMap | None) -> tuple[str, ...]:
    """The eval/ tags a best checkpoint can follow: the COCO metrics (summary, and per class of the eval label map)
    and the eval losses. The Gap/* tags measure overfitting, not quality, so they are not among them."""
    names = category_names(label_map).values() if label_map is not None else ()
    return SUMMARY_METRICS + tuple(per_class_tag(name) for name in names) + LOSS_TAGS


def check_metric(tag: str, label_map: LabelMap | None) -> None:
    """A TfodkitError naming --best-metric and the known tags when evaluation does not write `tag`."""
    known = metric_tags(label_map)
    if tag not in known:
        raise TfodkitError(f"--best-metric {tag}: not a tag evaluation writes; use one of: {', '.join(known)}")


def metric_value(evaluation: Evaluation, tag: str) -> float:
    """The value of an eval/ tag (COCO metric or eval loss) in an evaluation, as its eval/ event holds it
    (float32), so that values replayed from the events on resume compare with new ones exactly."""
    return float(np.float32({**evaluation.metrics, **evaluation.losses}[tag]))


@dataclasses.dataclass(frozen=True)
class Best:
    """best.json: the evaluation best/ holds."""

    step: int
    metric: str
    value: float
    checkpoint: str  # the checkpoint's name in best/, ckpt-<step>


def read(model_dir: str | Path) -> Best | None:
    """MODEL_DIR/best/best.json, or None when the run has no best checkpoint yet."""
    for directory in (Path(model_dir) / BEST_DIR, Path(model_dir) / _PREVIOUS):
        path = directory / BEST_FILE
        if path.is_file():
            try:
                return Best(**json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as error:
                raise TfodkitError(f"{path}: not a tfodkit best.json ({error}); delete {directory} to start it "
                                   "again") from None
    return None


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (checkpoint files are never rewritten, only deleted) or, where the filesystem has none, a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class BestCheckpoint:
    """Follows one eval/ tag over a run's evaluations and keeps the checkpoint of the best one in MODEL_DIR/best/.

    Better means strictly better (lower for Loss/* tags, higher otherwise): on a tie the earlier checkpoint
    stays. best/ is replaced atomically: the new one is built beside it and renamed into place. A resumed run
    continues from best.json; when that follows another tag, the next evaluation starts best/ again. `writes`
    is false on the workers of a MultiWorkerMirroredStrategy cluster other than the chief: they write nothing.
    """

    def __init__(self, model_dir: str | Path, metric: str, writes: bool, report: Callable[[str], None]) -> None:
        self.model_dir = Path(model_dir)
        self.metric = metric
        self._writes = writes
        if writes:
            self._recover()
        self.best = read(self.model_dir)
        if self.best is not None and self.best.metric != metric:
            report(f"{self.model_dir / BEST_DIR} holds the best checkpoint by {self.best.metric}; from the next "
                   f"evaluation on it follows {metric}")
            self.best = None

    def _recover(self) -> None:
        """Undo what a run killed while replacing best/ left: a half-built new one, a missing best/."""
        for staging in self.model_dir.glob(_STAGING_PREFIX + "*"):
            shutil.rmtree(staging, ignore_errors=True)
        previous, current = self.model_dir / _PREVIOUS, self.model_dir / BEST_DIR
        if previous.is_dir():
            if current.is_dir():
                shutil.rmtree(previous)
            else:
                previous.rename(current)

    def improves(self, value: float) -> bool:
        """Whether `value` beats the best so far (any value does when there is none)."""
        if self.best is None:
            return True
        return value < self.best.value if minimised(self.metric) else value > self.best.value

    def keep(self, step: int, value: float, checkpoint: str) -> Best:
        """Make `checkpoint` (a ckpt-<step> prefix in MODEL_DIR, with this value) the best one."""
        name = Path(checkpoint).name
        self.best = Best(step=step, metric=self.metric, value=float(value), checkpoint=name)
        if self._writes:
            self._replace(Path(checkpoint))
        return self.best

    def _replace(self, checkpoint: Path) -> None:
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.model_dir))
        files = list(checkpoint.parent.glob(checkpoint.name + ".*"))
        if not any(path.suffix == ".index" for path in files):
            raise FileNotFoundError(f"{checkpoint}.index: no such checkpoint to keep as the best one")
        for path in files:
            _link_or_copy(path, staging / path.name)
        (staging / _STATE_FILE).write_text(
            f'model_checkpoint_path: "{checkpoint.name}"\nall_model_checkpoint_paths: "{checkpoint.name}"\n',
            encoding="utf-8")
        (staging / BEST_FILE).write_text(json.dumps(dataclasses.asdict(self.best), indent=2) + "\n",
                                         encoding="utf-8")
        current, previous = self.model_dir / BEST_DIR, self.model_dir / _PREVIOUS
        if current.is_dir():
            current.rename(previous)
        staging.rename(current)
        shutil.rmtree(previous, ignore_errors=True)
