"""The OD API's MobileNetV2 backbone: keras.applications.MobileNetV2 transformed the way the OD API overrides it.

The OD API builds keras.applications.MobileNetV2 with a layers override; Keras 3 has no such argument, so we
build the application model and clone it layer by layer, keeping every keras.applications layer name:
- ZeroPadding2D layers become identities and stride-2 depthwise convolutions use 'same' padding;
- the last 1x1 convolution (Conv_1) has 1280 filters, scaled only when depth_multiplier < 1;
- every convolution except the expansions has at least `min_depth` filters (expansions follow their input);
- kernels, batch norms and activations follow `conv_hyperparams` (or the OD API's MobileNetV2 defaults).
"""

from __future__ import annotations

import re

import keras

from tfodkit.errors import TfodkitError
from tfodkit.model.hyperparams import BatchNormParams, ConvHyperparams

# What the OD API's MobileNetV2 uses when the feature extractor does not override its hyperparameters.
DEFAULT_HYPERPARAMS = ConvHyperparams(
    l2_weight=0.00004,
    initializer=("truncated_normal", 0.0, 0.09),
    activation="relu6",
    batch_norm=BatchNormParams(decay=0.9997, center=True, scale=True, epsilon=1e-3),
)
_EXPAND = re.compile(r"block_(\d+)_expand$")
_PROJECT = re.compile(r"(?:block_(\d+)|expanded_conv)_project$")


def _make_divisible(value: float, divisor: int = 8) -> int:
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _od_api_filters(app: keras.Model, alpha: float, min_depth: int) -> dict[str, int]:
    """Filters of every Conv2D after the OD API's overrides, keyed by layer name."""
    project_out: dict[int, int] = {}  # block id -> output channels (expanded_conv is block 0)
    filters: dict[str, int] = {}
    original_project: dict[int, int] = {}
    for layer in app.layers:
        if not isinstance(layer, keras.layers.Conv2D) or isinstance(layer, keras.layers.DepthwiseConv2D):
            continue
        name, count = layer.name, layer.filters
        expand = _EXPAND.match(name)
        project = _PROJECT.match(name)
        if expand:
            block = int(expand.group(1))
            # Keras sizes an expansion as 6 x its input channels; the input may have grown with min_depth.
            count = count // original_project[block - 1] * project_out[block - 1]
        elif name == "Conv_1":
            count = _make_divisible(1280 * alpha, 8) if alpha < 1.0 else 1280
        if not expand and min_depth and count < min_depth:
            count = min_depth
        if project:
            block = int(project.group(1) or 0)
            original_project[block] = layer.filters
            project_out[block] = count
        filters[name] = count
    return filters


def mobilenet_v2_backbone(
    depth_multiplier: float,
    min_depth: int,
    hyperparams: ConvHyperparams | None,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    use_explicit_padding: bool = False,
) -> keras.Model:
    """MobileNetV2 without top, as the OD API's SSD extractors build it; layer names are keras.applications'."""
    if use_explicit_padding:
        raise TfodkitError(
            "feature_extractor.use_explicit_padding: true is not supported (the zoo SSD configs use false)"
        )
    params = hyperparams or DEFAULT_HYPERPARAMS
    app = keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=depth_multiplier, include_top=False, weights=None
    )
    filters = _od_api_filters(app, depth_multiplier, min_depth)

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, keras.layers.ZeroPadding2D):
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            config.update(padding="same", **_serialized(params.depthwise_kwargs(use_bias=False)))
            return keras.layers.DepthwiseConv2D.from_config(config)
        if isinstance(layer, keras.layers.Conv2D):
            kwargs = _serialized(params.conv_kwargs(use_bias=False))
            config.update(padding="same", filters=filters[layer.name], **kwargs)
            return keras.layers.Conv2D.from_config(config)
        if isinstance(layer, keras.layers.BatchNormalization):
            return params.batch_norm_layer(layer.name)
        if isinstance(layer, keras.layers.ReLU):
            return params.activation_layer(layer.name)
        return layer.__class__.from_config(config)

    return keras.models.clone_model(app, clone_function=clone)


def _serialized(kwargs: dict) -> dict:
    """Layer-config form of initializer/regularizer objects (from_config expects serialized values)."""
    return {
        key: keras.saving.serialize_keras_object(value) if hasattr(value, "get_config") else value
        for key, value in kwargs.items()
    }
