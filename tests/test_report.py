"""`tfodkit report` on real tiny runs, an OD API-like run, a failed run and a run without evaluations: every
number of report.csv checked against the event files read here independently (not with the report's reader)."""

import csv
import json
import math
import statistics
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf
from conftest import demo_records
from test_trainer import TINY

from tfodkit import label_map as label_maps
from tfodkit.cli import main
from tfodkit.config.templates import template_text
from tfodkit.evaluation.coco_metrics import CocoDetectionMetrics
from tfodkit.experiments.plateau import Rule, find_plateau
from tfodkit.experiments.report_val_curves import confusion_matrix, pr_curves

MAP_50 = "DetectionBoxes_Precision/mAP@.50IOU"
EVAL_TAGS = {"map50": MAP_50, "map": "DetectionBoxes_Precision/mAP", "ar1": "DetectionBoxes_Recall/AR@1",
             "ar10": "DetectionBoxes_Recall/AR@10", "ar100": "DetectionBoxes_Recall/AR@100",
             "eval_loss": "Loss/total_loss"}
GAP = "Gap/eval_minus_train_total_loss"
PNGS = ("map50.png", "loss.png", "gap.png", "ar100.png", "per_class_ap50.png", "pr_curve.png",
        "confusion_matrix.png")
# The sweep's report is made with patience 1 so that three evaluations can plateau.
SWEEP_FLAGS = ("--map-patience", "1", "--loss-patience", "1", "--map-min-delta", "0.01", "--loss-min-delta", "0.01")


SWEEP_RUNS = tuple(f"classification_weight_{c}-localization_weight_{loc}" for c in (0.5, 1.0) for loc in (0.5, 1.0))


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `tfodkit sweep`: classification x localization weights {0.5, 1.0}^2 of a tiny SSD, 6 steps each,
    evaluated every 2, two runs at a time, on a 24-image demo set with train, val and test splits."""
    root = tmp_path_factory.mktemp("report")
    records = demo_records(root, 24, seed=3, split={"train": 0.5, "val": 0.25, "test": 0.25})
    pipeline = root / "pipeline.config"
    pipeline.write_text(template_text("ssd_mobilenet_v2_320x320").replace("PATH_TO_BE_CONFIGURED", str(records)))
    fixed = "\n".join(f"  {override.replace('=', ': ', 1)}" for override in TINY)
    sweep_file = root / "sweep.yaml"
    sweep_file.write_text(f"""name: sweep
base:
  pipeline: {pipeline}
set:
{fixed}
  num_steps: 6
  seed: 0
grid:
  model.ssd.loss.classification_weight: [0.5, 1.0]
  model.ssd.loss.localization_weight: [0.5, 1.0]
train:
  checkpoint_every_n: 2
  eval_every_n: 2
  steps_per_call: 2
""")
    assert main(["sweep", str(sweep_file), "--runs-dir", str(root), "--jobs", "2"]) == 0
    assert sorted(path.name for path in (root / "sweep").iterdir() if path.is_dir()) == sorted(SWEEP_RUNS)
    return root / "sweep"


@pytest.fixture(scope="module")
def runs_dir(sweep_dir: Path) -> Path:
    """The sweep plus a failed run (sweep_status.json) and a run that never evaluated (train/ only)."""
    failed = sweep_dir / "failed_run"
    failed.mkdir(exist_ok=True)
    (failed / "sweep_status.json").write_text(json.dumps(
        {"state": "failed", "command": ["tfodkit", "train"], "exit_code": 1, "seconds": 3.0,
         "error": "Traceback ...\ntfodkit train: error: training diverged in steps 1..2"}))
    silent = sweep_dir / "no_eval_run"
    writer = tf.summary.create_file_writer(str(silent / "train"))
    with writer.as_default(step=2):
        tf.summary.scalar("Loss/total_loss", 1.0)
    writer.close()
    return sweep_dir


def _read_events(directory: Path) -> tuple[dict[str, dict[int, tuple[float, float]]], float | None]:
    """tag -> step -> (value, wall time), the last written per step, and the first event's wall time: the
    records parsed as tf.compat.v1.Event protos."""
    curves: dict[str, dict[int, tuple[float, float]]] = {}
    first = None
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            first = event.wall_time if first is None else min(first, event.wall_time)
            for value in event.summary.value:
                if value.HasField("tensor"):
                    if value.metadata.plugin_data.plugin_name not in ("", "scalars"):
                        continue
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    number = float(value.simple_value)
                curves.setdefault(value.tag, {})[event.step] = (number, event.wall_time)
    return curves, first


def _csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as file:
        return {row["run"]: row for row in csv.DictReader(file)}


def _number(text: str) -> float | None:
    return None if text == "n/a" else float(text)


def _expected_point(evaluation, training, start, step, plateaued) -> dict[str, object]:
    """Every column of a point, from the events, as docs/report.md defines it."""
    values = {key: evaluation[tag][step][0] if step in evaluation.get(tag, {}) else None
              for key, tag in EVAL_TAGS.items()}
    gap = evaluation.get(GAP, {}).get(step)
    values["gap"] = gap[0] if gap else None
    values["train_loss_inference"] = values["eval_loss"] - gap[0] if gap else None
    previous = max([s for s in evaluation["Loss/total_loss"] if s < step], default=-1)
    window = [value for s, (value, _) in training["Loss/total_loss"].items() if previous < s <= step]
    values["od_api_style_gap"] = values["eval_loss"] - sum(window) / len(window)
    speeds = [value for s, (value, _) in training["steps_per_sec"].items() if s <= step]
    values["steps_per_sec"] = statistics.median(speeds)
    values["wall_seconds"] = evaluation[MAP_50][step][1] - start
    values["step"] = step
    values["plateaued"] = "yes" if plateaued else "no"
    return values


def _check_report(report_csv: Path, runs: dict[str, Path], map_rule: Rule, loss_rule: Rule) -> str:
    """Check every number of every evaluated run's row; return the name of the run the rule recommends."""
    rows = _csv(report_csv)
    at_b = {}
    for name, run in runs.items():
        row = rows[name]
        evaluation, eval_start = _read_events(run / "eval")
        training, train_start = _read_events(run / "train")
        start = min(eval_start, train_start)
        assert int(row["evaluations"]) == len(evaluation[MAP_50]) >= 3
        for point, tag, rule in (("a", MAP_50, map_rule), ("b", "Loss/total_loss", loss_rule)):
            steps = sorted(evaluation[tag])
            plateau = find_plateau(steps, [evaluation[tag][s][0] for s in steps], rule)
            expected = _expected_point(evaluation, training, start, plateau.step, plateau.plateaued)
            for key, value in expected.items():
                found = row[f"{point}_{key}"]
                if value is None or isinstance(value, str):
                    assert found == (value or "n/a"), (name, point, key)
                else:
                    assert _number(found) == pytest.approx(value, rel=1e-12, abs=1e-12), (name, point, key)
        best_file = run / "best" / "best.json"
        if best_file.is_file():
            best = json.loads(best_file.read_text())
            assert row["best_source"] == "best/best.json"
            assert (int(row["best_step"]), float(row["best_map50"])) == (best["step"], best["value"])
            assert row["best_checkpoint"] == str(run / "best" / best["checkpoint"])
            assert row["best_checkpoint_exists"] == "yes"
            assert evaluation[MAP_50][best["step"]][0] == pytest.approx(best["value"])
        else:
            steps = sorted(evaluation[MAP_50])
            best_step = max(steps, key=lambda s: evaluation[MAP_50][s][0])
            assert (row["best_source"], int(row["best_step"])) == ("eval events", best_step)
            assert float(row["best_map50"]) == evaluation[MAP_50][best_step][0]
        at_b[name] = (float(row["b_map50"]), _number(row["b_gap"]), _number(row["b_od_api_style_gap"]))
    # The rule: highest mAP@0.5 at (b); within min_delta of it, the smallest gap (OD API-style where a run has
    # no Gap/*); then by name.
    top = max(value[0] for value in at_b.values())
    tied = sorted(name for name, value in at_b.items() if top - value[0] <= map_rule.min_delta)
    column = 1 if all(at_b[name][1] is not None for name in tied) else 2
    chosen = min(tied, key=lambda name: (at_b[name][column], name))
    for name, value in at_b.items():
        assert rows[name]["recommended"] == ("yes" if name == chosen else "no")
        assert float(rows[name]["delta_map50_b"]) == pytest.approx(value[0] - at_b[chosen][0], abs=1e-12)
        assert float(rows[name]["delta_gap_b"]) == pytest.approx(value[column] - at_b[chosen][column], abs=1e-12)
    return chosen


def _check_png(path: Path) -> None:
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 300 and image.shape[1] >= 400, path
    assert float(np.std(image[..., :3])) > 0.02, f"{path} is nearly blank"


def test_report_of_a_sweep_matches_the_event_files(runs_dir: Path, capsys: pytest.CaptureFixture):
    out = runs_dir / "report"
    assert main(["report", str(runs_dir), "--test", *SWEEP_FLAGS]) == 0
    printed = capsys.readouterr().out
    for name in ("report.md", "report.csv", "report.html", *PNGS):
        assert (out / name).is_file(), name
    for name in PNGS:
        _check_png(out / name)
    runs = {name: runs_dir / name for name in SWEEP_RUNS}
    chosen = _check_report(out / "report.csv", runs, Rule(0.01, 1, False), Rule(0.01, 1, True))
    assert f"recommended: {chosen}" in printed
    rows = _csv(out / "report.csv")
    assert set(rows) == {*SWEEP_RUNS, "failed_run", "no_eval_run"}
    assert {rows[name]["status"] for name in runs} == {"finished"}
    failed = rows["failed_run"]
    assert failed["status"] == "failed"
    assert failed["note"] == "failed: tfodkit train: error: training diverged in steps 1..2"
    assert all(value == "n/a" for key, value in failed.items() if key.startswith(("a_", "b_", "best_")))
    assert rows["no_eval_run"]["note"].startswith("no evaluations")
    assert rows["no_eval_run"]["a_map50"] == "n/a"

    markdown, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert f"Recommended run: {chosen}" in markdown and f"Recommended run: {chosen}" in page
    assert "Keras EarlyStopping: min_delta=0.01, patience=1" in markdown
    for name in PNGS:
        assert f'<img src="{name}"' in page and f"]({name})" in markdown
    # The test split: apart, last, and as evaluated (its eval/ events written under REPORT_DIR/test).
    test_part = markdown.split("## Test split (used for no choice)")[1]
    assert "## " not in test_part
    test_events, _ = _read_events(out / "test" / "eval")
    ((step, (value, _)),) = test_events[MAP_50].items()
    best = json.loads((runs_dir / chosen / "best" / "best.json").read_text())
    assert step == best["step"]
    assert f"| {MAP_50} | {value:.4f} |" in test_part
    assert "6 test image(s)" in test_part
    assert '<section class="test">' in page


def _write_od_api_run(run: Path) -> None:
    """eval/ and train/ events with model_main_tf2's tags (no Gap/*, no best/, no run_summary.json)."""
    map_50 = [0.1, 0.3, 0.5, 0.55, 0.552, 0.556, 0.549]
    loss = [2.0, 1.5, 1.2, 1.195, 1.198, 1.193, 1.19]
    writer = tf.summary.create_file_writer(str(run / "eval"))
    with writer.as_default():
        for i, step in enumerate(range(100, 800, 100)):
            tf.summary.scalar(MAP_50, map_50[i], step=step)
            tf.summary.scalar("DetectionBoxes_Precision/mAP", map_50[i] / 2, step=step)
            for k, tag in enumerate(("AR@1", "AR@10", "AR@100")):
                tf.summary.scalar(f"DetectionBoxes_Recall/{tag}", map_50[i] * (0.5 + 0.2 * k), step=step)
            tf.summary.scalar("Loss/total_loss", loss[i], step=step)
            for k, name in enumerate(("cat", "dog")):
                tf.summary.scalar(f"DetectionBoxes_PerformanceByCategory/mAP@.50IOU/{name}", map_50[i] + 0.1 * k,
                                  step=step)
    writer.close()
    writer = tf.summary.create_file_writer(str(run / "train"))
    with writer.as_default():
        for step in range(10, 710, 10):
            tf.summary.scalar("Loss/total_loss", 2.5 - step / 500, step=step)
            tf.summary.scalar("steps_per_sec", 5.0 + (step % 30) / 10, step=step)
    writer.close()


def test_report_of_a_model_main_tf2_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture):
    run = tmp_path / "od_api_run"
    _write_od_api_run(run)
    assert main(["report", str(run)]) == 0
    rows = _csv(run / "report" / "report.csv")
    assert list(rows) == ["od_api_run"]
    row = rows["od_api_run"]
    # The defaults: mAP@0.5 plateaus at 0.55 (step 400), the eval loss at 1.2 (step 300).
    assert (row["a_step"], row["b_step"], row["a_plateaued"], row["b_plateaued"]) == ("400", "300", "yes", "yes")
    assert row["status"] == "no run_summary.json"
    assert row["b_gap"] == row["b_train_loss_inference"] == "n/a" and row["b_od_api_style_gap"] != "n/a"
    assert row["best_checkpoint_exists"] == "no"
    _check_report(run / "report" / "report.csv", {"od_api_run": run}, Rule(0.01, 3, False), Rule(0.01, 3, True))
    printed = capsys.readouterr().out
    assert "note: no PR curve or confusion matrix: the best checkpoint (step 600" in printed
    for name in PNGS[:5]:
        _check_png(run / "report" / name)


def test_missing_or_empty_runs_dir_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    assert main(["report", str(tmp_path / "empty")]) == 1
    assert "no runs found" in capsys.readouterr().err


def test_confusion_matrix_pairs_detections_with_ground_truth_at_iou_half():
    metrics = CocoDetectionMetrics(label_maps.LabelMap(ids={"a": 1, "b": 2}, display_names={}))
    box, other = [[0.0, 0.0, 0.5, 0.5]], [[0.5, 0.5, 1.0, 1.0]]
    none = np.zeros((0, 4))
    images = [  # (ground truth boxes, classes), (detection boxes, scores, classes)
        ((box, [1]), (box, [0.9], [1])),  # right
        ((box, [2]), (box, [0.8], [1])),  # b detected as a
        ((box, [1]), (none, [], [])),  # a missed
        ((none, []), (other, [0.7], [2])),  # a false b
        ((box, [2]), (box, [0.3], [2])),  # below the score threshold: b missed
        ((box, [1]), ([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.49, 0.5]], [0.9, 0.95], [1, 1])),  # one right, one extra
    ]
    for index, ((gt, gt_classes), (found, scores, classes)) in enumerate(images):
        metrics.add_image(f"image{index}", 100, 100, gt, gt_classes, [0] * len(gt_classes), found, scores, classes)
    matrix, names = confusion_matrix(metrics, score_threshold=0.5)
    assert names == ["a", "b", "background"]
    np.testing.assert_array_equal(matrix, [[2, 0, 1], [1, 0, 1], [1, 1, 0]])
    curves = pr_curves(metrics)
    assert set(curves) == {"a", "b"}
    recall, precision = curves["a"]
    assert recall[0] == 0 and np.all((precision >= 0) & (precision <= 1)) and precision[0] > 0
    assert math.isclose(recall[1] - recall[0], 0.01)
