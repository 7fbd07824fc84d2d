"""Mean inference-mode losses over a data set, and the eval-minus-train gaps computed from them."""

from __future__ import annotations

import math
from typing import Mapping

from tfodkit.evaluation.coco_metrics import UNDEFINED

# The OD API's loss tags (model_lib_v2: the model's losses dict plus regularization and total).
LOSS_COMPONENTS: tuple[str, ...] = ("classification_loss", "localization_loss", "regularization_loss")
TOTAL_LOSS = "Loss/total_loss"
LOSS_TAGS: tuple[str, ...] = tuple(f"Loss/{name}" for name in LOSS_COMPONENTS) + (TOTAL_LOSS,)
MAP_GAP = "Gap/train_minus_eval_mAP@.50IOU"
# Gap/eval_minus_train_<loss>, in LOSS_TAGS order.
LOSS_GAPS: tuple[str, ...] = tuple("Gap/eval_minus_train_" + tag.removeprefix("Loss/") for tag in LOSS_TAGS)


class LossMeans:
    """Mean of each Loss/* tag over a pass through a data set, fed one batch's losses at a time.

    Each batch's value is weighted by its image count, so a short last batch counts for what it holds; at
    the OD API's default eval batch_size of 1 this is exactly its mean of per-batch losses.
    """

    def __init__(self) -> None:
        self._sums = {tag: 0.0 for tag in LOSS_TAGS}
        self.num_images = 0

    def add(self, losses: Mapping[str, float], batch_size: int) -> None:
        """Add one batch's losses (keys: exactly LOSS_TAGS; values: floats or scalar tensors)."""
        if set(losses) != set(LOSS_TAGS):
            raise ValueError(f"losses must have exactly the keys {list(LOSS_TAGS)}, got {sorted(losses)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for tag in LOSS_TAGS:
            value = float(losses[tag])
            if not math.isfinite(value):
                raise ValueError(f"{tag} is {value} on an evaluation batch")
            self._sums[tag] += value * batch_size
        self.num_images += batch_size

    def result(self) -> dict[str, float]:
        """Loss tag -> mean over all images added."""
        if not self.num_images:
            raise ValueError("no batches were added, so there is no mean loss")
        return {tag: total / self.num_images for tag, total in self._sums.items()}


def gaps(
    eval_losses: Mapping[str, float],
    train_losses: Mapping[str, float],
    eval_map_50: float,
    train_map_50: float,
) -> dict[str, float]:
    """Gap/eval_minus_train_<loss> = eval mean - train-sample mean, for total_loss and each component, and
    Gap/train_minus_eval_mAP@.50IOU = train-sample mAP@0.5 - eval mAP@0.5.

    Both loss means come from the same weights in inference mode. The mAP gap is left out when either
    mAP@0.5 is UNDEFINED (a set with no ground-truth box), since the difference would mean nothing.
    """
    for name, losses in (("eval", eval_losses), ("train", train_losses)):
        if set(losses) != set(LOSS_TAGS):
            raise ValueError(f"{name} losses must have exactly the keys {list(LOSS_TAGS)}, got {sorted(losses)}")
    result = {gap: float(eval_losses[tag]) - float(train_losses[tag]) for tag, gap in zip(LOSS_TAGS, LOSS_GAPS)}
    if eval_map_50 != UNDEFINED and train_map_50 != UNDEFINED:
        result[MAP_GAP] = float(train_map_50) - float(eval_map_50)
    return result
