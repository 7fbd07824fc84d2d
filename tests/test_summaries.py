"""TensorBoard summaries written for a run and read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from eval_scenes import LABEL_MAP, scenes
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from tfodkit import inputs, label_map
from tfodkit.config.loader import parse_pipeline_text
from tfodkit.config.templates import template_text
from tfodkit.dataset import demo_data
from tfodkit.dataset.convert import ConvertOptions, convert
from tfodkit.dataset.draw import class_colour
from tfodkit.evaluation import loss_gap
from tfodkit.evaluation.coco_metrics import SUMMARY_METRICS, CocoDetectionMetrics, category_names
from tfodkit.evaluation.images import VisualizationOptions, detections_image, side_by_side, to_uint8
from tfodkit.evaluation.summaries import Summaries
from tfodkit.protos import pipeline_eval_pb2

IMAGES = scenes(4, seed=1)
NAMES = category_names(LABEL_MAP)
STEP = 7

# The tags of issue 5, spelled out rather than taken from the code under test.
TRAIN_SCALARS = {
    "Loss/classification_loss", "Loss/localization_loss", "Loss/regularization_loss", "Loss/total_loss",
    "learning_rate", "steps_per_sec",
}
EVAL_SCALARS = {
    "DetectionBoxes_Precision/mAP", "DetectionBoxes_Precision/mAP@.50IOU", "DetectionBoxes_Precision/mAP@.75IOU",
    "DetectionBoxes_Precision/mAP (small)", "DetectionBoxes_Precision/mAP (medium)",
    "DetectionBoxes_Precision/mAP (large)", "DetectionBoxes_Recall/AR@1", "DetectionBoxes_Recall/AR@10",
    "DetectionBoxes_Recall/AR@100", "DetectionBoxes_Recall/AR@100 (small)", "DetectionBoxes_Recall/AR@100 (medium)",
    "DetectionBoxes_Recall/AR@100 (large)",
    "Loss/classification_loss", "Loss/localization_loss", "Loss/regularization_loss", "Loss/total_loss",
    "Gap/eval_minus_train_total_loss", "Gap/eval_minus_train_classification_loss",
    "Gap/eval_minus_train_localization_loss", "Gap/eval_minus_train_regularization_loss",
    "Gap/train_minus_eval_mAP@.50IOU",
} | {f"DetectionBoxes_PerformanceByCategory/mAP@.50IOU/{digit}" for digit in range(10)}


def _detections(image, scores=None):
    scores = np.full(len(image.boxes), 0.9) if scores is None else np.asarray(scores)
    # Padded to 100 rows as the model outputs them; num_detections says how many are real.
    boxes = np.zeros((100, 4))
    boxes[: len(image.boxes)] = image.boxes
    return {
        "detection_boxes": boxes,
        "detection_scores": np.pad(scores, (0, 100 - len(scores))),
        "detection_classes": np.pad(image.classes.astype(np.float32), (0, 100 - len(image.classes)),
                                    constant_values=1),
        "num_detections": len(image.boxes),
    }


def _losses(offset: float) -> dict[str, float]:
    parts = {"Loss/classification_loss": 0.8 + offset, "Loss/localization_loss": 0.4 + offset,
             "Loss/regularization_loss": 0.15}
    return {**parts, "Loss/total_loss": sum(parts.values())}


def _read(directory) -> event_accumulator.EventAccumulator:
    accumulator = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return accumulator


def _tags_by_plugin(accumulator) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for tag in accumulator.Tags()["tensors"]:
        result.setdefault(accumulator.SummaryMetadata(tag).plugin_data.plugin_name, set()).add(tag)
    return result


def _png_images(accumulator, tag) -> list[np.ndarray]:
    (event,) = accumulator.Tensors(tag)
    width, height, *encoded = tf.make_ndarray(event.tensor_proto)
    images = [np.asarray(Image.open(io.BytesIO(png))) for png in encoded]
    assert all(image.shape[:2] == (int(height), int(width)) for image in images)
    return images


def _write_run(model_dir):
    metrics = CocoDetectionMetrics(LABEL_MAP)
    for image in IMAGES:
        metrics.add_image(image.key, image.height, image.width, image.boxes, image.classes,
                          np.zeros(len(image.boxes)), **_detections(image))
    coco = metrics.compute()
    train_losses, eval_losses = _losses(0.0), _losses(0.5)
    gaps = loss_gap.gaps(eval_losses, train_losses, coco["DetectionBoxes_Precision/mAP@.50IOU"], 1.0)
    inputs = [np.asarray(Image.fromarray(image.image).resize((300, 300), Image.BILINEAR), dtype=np.float32)
              for image in IMAGES]
    options = VisualizationOptions()
    pictures = [side_by_side(image.image, _detections(image), image.boxes, image.classes, NAMES, options)
                for image in IMAGES[:2]]

    summaries = Summaries(model_dir)
    summaries.write_train_step(STEP, train_losses, learning_rate=0.004, steps_per_sec=2.5)
    summaries.write_train_images(STEP, inputs, [im.boxes for im in IMAGES], [im.classes for im in IMAGES], NAMES)
    summaries.write_evaluation(STEP, coco, eval_losses, gaps)
    summaries.write_eval_images(STEP, pictures)
    summaries.close()
    return coco, gaps, eval_losses, pictures


def test_every_issue_tag_is_written_and_read_back(tmp_path):
    coco, gaps, eval_losses, pictures = _write_run(tmp_path)

    train = _read(tmp_path / "train")
    train_tags = _tags_by_plugin(train)
    assert train_tags["scalars"] == TRAIN_SCALARS
    assert train_tags["images"] == {"train_input_images"}
    (lr_event,) = train.Tensors("learning_rate")
    assert lr_event.step == STEP
    assert float(tf.make_ndarray(lr_event.tensor_proto)) == pytest.approx(0.004)
    train_images = _png_images(train, "train_input_images")
    assert len(train_images) == 3 and train_images[0].shape == (300, 300, 3)

    evaluation = _read(tmp_path / "eval")
    eval_tags = _tags_by_plugin(evaluation)
    assert eval_tags["scalars"] == EVAL_SCALARS
    assert eval_tags["images"] == {"eval_side_by_side_0_0", "eval_side_by_side_1_0"}
    written = {**coco, **gaps, **eval_losses}
    for tag in EVAL_SCALARS:
        (event,) = evaluation.Tensors(tag)
        assert event.step == STEP
        assert float(tf.make_ndarray(event.tensor_proto)) == pytest.approx(written[tag], abs=1e-6), tag
    assert written["Gap/eval_minus_train_total_loss"] == pytest.approx(1.0)
    (picture,) = _png_images(evaluation, "eval_side_by_side_0_0")
    np.testing.assert_array_equal(picture, pictures[0])
    assert picture.shape == (IMAGES[0].height, 2 * IMAGES[0].width, 3)


def test_side_by_side_shows_detections_left_and_ground_truth_right():
    image = IMAGES[0]
    height, width = image.height, image.width
    options = VisualizationOptions()
    picture = side_by_side(image.image, _detections(image), image.boxes, image.classes, NAMES, options)
    assert picture.shape == (height, 2 * width, 3) and picture.dtype == np.uint8
    # Each box's outline starts at its top-left pixel, in its class colour, on both halves.
    for (ymin, xmin, _, _), class_id in zip(image.boxes, image.classes):
        row, col = round(ymin * height), round(xmin * width)
        assert tuple(picture[row, col]) == class_colour(int(class_id))
        assert tuple(picture[row, width + col]) == class_colour(int(class_id))

    # Detections under min_score_threshold are not drawn: the left half is the untouched image.
    faint = side_by_side(image.image, _detections(image, np.full(len(image.boxes), 0.3)), image.boxes,
                         image.classes, NAMES, options)
    np.testing.assert_array_equal(faint[:, :width], image.image)
    np.testing.assert_array_equal(faint[:, width:], picture[:, width:])


def test_at_most_max_boxes_highest_scores_are_drawn():
    image = next(im for im in IMAGES if len(im.boxes) >= 2)
    scores = np.linspace(0.6, 0.9, len(image.boxes))
    best = int(np.argmax(scores))
    one = VisualizationOptions(max_boxes=1)
    drawn = detections_image(image.image, image.boxes, scores, image.classes, NAMES, one)
    only_best = detections_image(image.image, image.boxes[best:best + 1], scores[best:best + 1],
                                 image.classes[best:best + 1], NAMES, one)
    np.testing.assert_array_equal(drawn, only_best)
    assert not np.array_equal(drawn, image.image)


def test_visualization_options_follow_eval_config():
    config = pipeline_eval_pb2.EvalConfig(num_visualizations=4, min_score_threshold=0.3,
                                          max_num_boxes_to_visualize=7)
    assert VisualizationOptions.from_eval_config(config) == VisualizationOptions(4, pytest.approx(0.3), 7)
    assert VisualizationOptions.from_eval_config(pipeline_eval_pb2.EvalConfig()) == VisualizationOptions()


def test_float_pixels_become_uint8():
    np.testing.assert_array_equal(to_uint8(np.array([[[0.4, 254.6, 300.0]]])), [[[0, 255, 255]]])


def test_missing_or_unknown_tags_are_refused(tmp_path):
    summaries = Summaries(tmp_path)
    with pytest.raises(ValueError, match="Loss/total_loss"):
        summaries.write_train_step(1, {"Loss/classification_loss": 1.0}, 0.1, 1.0)
    coco = dict.fromkeys(SUMMARY_METRICS, 0.5)
    gaps = loss_gap.gaps(_losses(0.0), _losses(0.0), 0.5, 0.5)
    with pytest.raises(ValueError, match="not evaluation tags.*mAP50"):
        summaries.write_evaluation(1, {**coco, "mAP50": 0.5}, _losses(0.0), gaps)
    with pytest.raises(ValueError, match="DetectionBoxes_Recall/AR@1"):
        summaries.write_evaluation(1, {k: v for k, v in coco.items() if k != "DetectionBoxes_Recall/AR@1"},
                                   _losses(0.0), gaps)
    summaries.close()


def test_real_eval_pipeline_batches_feed_metrics_and_pictures(tmp_path):
    """Records converted from a demo set, read by tfodkit.inputs' eval pipeline: perfect detections built from
    each batch's labels score mAP@0.5 = 1 over every record, and its resized images draw side by side."""
    demo_data.write_dataset(tmp_path / "demo", num_images=6, seed=5)
    convert(ConvertOptions(images=tmp_path / "demo", annotations=tmp_path / "demo", out=tmp_path / "records",
                           split={"train": 0.5, "val": 0.5}, seed=0, workers=1))
    config = parse_pipeline_text(template_text("ssd_mobilenet_v2_320x320").replace(
        "PATH_TO_BE_CONFIGURED", str(tmp_path / "records")), "template")
    config.model.ssd.image_resizer.fixed_shape_resizer.height = 64
    config.model.ssd.image_resizer.fixed_shape_resizer.width = 64
    records_map = label_map.load(tmp_path / "records" / "label_map.pbtxt")
    metrics = CocoDetectionMetrics(records_map)
    pictures = []
    for features, labels in inputs.eval_dataset(config, batch_size=2).as_numpy_iterator():
        detections = {"detection_boxes": labels["boxes"], "detection_scores": np.full(labels["classes"].shape, 0.9),
                      "detection_classes": labels["classes"].astype(np.float32),
                      "num_detections": labels["num_boxes"]}
        metrics.add_batch(labels, detections)
        for i, image in enumerate(features["image"]):
            count = labels["num_boxes"][i]
            one = {name: value[i] for name, value in detections.items()}
            pictures.append(side_by_side(image, one, labels["boxes"][i, :count], labels["classes"][i, :count],
                                         NAMES, VisualizationOptions()))
    val_files = sorted(str(path) for path in (tmp_path / "records").glob("val-*"))
    assert metrics.num_images == sum(1 for _ in tf.data.TFRecordDataset(val_files)) > 0
    assert metrics.compute()["DetectionBoxes_Precision/mAP@.50IOU"] == pytest.approx(1.0)
    assert all(picture.shape == (64, 128, 3) for picture in pictures)
    assert len(pictures) == metrics.num_images
