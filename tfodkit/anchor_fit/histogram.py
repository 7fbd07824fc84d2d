"""The histogram of every ground-truth box's best IoU with any anchor, as a PNG (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfodkit.anchor_fit.coverage import Coverage
from tfodkit.errors import TfodkitError

BINS = np.linspace(0.0, 1.0, 41)


def draw_histogram(path: str | Path, curves: dict[str, Coverage], title: str) -> None:
    """One step histogram per labelled coverage (e.g. the config's anchors and the suggested ones), with the
    matched threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4), dpi=100)
    try:
        for label, coverage in curves.items():
            axes.hist(coverage.best_iou, bins=BINS, histtype="step", linewidth=1.8,
                      label=f"{label}: {coverage.num_anchors} anchors, matched {coverage.share:.1%}")
        threshold = next(iter(curves.values())).matched_threshold
        if threshold is not None:
            axes.axvline(threshold, color="black", linestyle="--", linewidth=1,
                         label=f"matched_threshold {threshold:g}")
        axes.set_xlabel("best IoU of a ground-truth box with any anchor")
        axes.set_ylabel("boxes")
        axes.set_xlim(0.0, 1.0)
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8, loc="upper left")
        figure.tight_layout()
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, format="png")
        except OSError as error:
            raise TfodkitError(f"--histogram {path}: cannot write: {error}") from None
    finally:
        pyplot.close(figure)
