"""The pipeline.config templates shipped inside the package (tfodkit/config/templates/, copied to pipelines/)."""

from __future__ import annotations

from importlib import resources

from tfodkit.errors import TfodkitError

# Template name (the `--model` choice) -> one-line description.
TEMPLATES: dict[str, str] = {
    "ssd_mobilenet_v2_320x320": "SSD MobileNetV2, 320x320, focal loss (zoo ssd_mobilenet_v2_320x320_coco17_tpu-8)",
    "ssd_mobilenet_v2_fpnlite_320x320": "SSD MobileNetV2 FPNLite, 320x320 (zoo ssd_mobilenet_v2_fpnlite_320x320)",
    "ssd_mobilenet_v2_fpnlite_640x640": "SSD MobileNetV2 FPNLite, 640x640, for small objects (zoo "
                                        "ssd_mobilenet_v2_fpnlite_640x640)",
    "ssdlite_mobilenet_v2_320x320": "SSDLite MobileNetV2, 320x320, hard example mining (zoo ssdlite_mobilenet_v2_coco)",
}


def template_text(name: str) -> str:
    """The text of template `name` as shipped with the installed package."""
    if name not in TEMPLATES:
        raise TfodkitError(f"unknown pipeline template {name!r}; choose one of: {', '.join(TEMPLATES)}")
    return resources.files("tfodkit.config").joinpath("templates", f"{name}.config").read_text(encoding="utf-8")
