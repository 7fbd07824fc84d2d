"""SSD feature extractors: `ssd_mobilenet_v2_keras` (6 maps) and `ssd_mobilenet_v2_fpn_keras` (FPN levels).

Each returns a functional keras.Model named "feature_extractor" that maps the preprocessed image to a list
of feature maps (highest resolution first). The MobileNetV2 part is a nested model named
"classification_backbone" (keras.applications layer names); the added layers carry the OD API's names.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from tfodkit.model.hyperparams import ConvHyperparams
from tfodkit.model.mobilenet_v2 import mobilenet_v2_backbone
from tfodkit.model.upsampling import NearestNeighborUpsampling

# The OD API's layout for SSD MobileNetV2: two backbone maps then four extra stride-2 layers.
SSD_EXTRA_LAYER_DEPTHS = (512, 256, 256, 128)
SSD_BACKBONE_LAYERS = ("block_13_expand_relu", "out_relu")  # the OD API's layer_15/expansion_output, layer_19
# FPN inputs: the OD API's layer_4, layer_7, layer_14 and layer_19 of MobileNetV2, keyed by pyramid level.
FPN_BACKBONE_BLOCKS = {2: 2, 3: 5, 4: 12}  # level -> keras block id whose output feeds it (level 5 is out_relu)


@dataclass(frozen=True)
class FeatureExtractorConfig:
    """Options shared by the MobileNetV2 SSD extractors (the `feature_extractor` block)."""

    depth_multiplier: float = 1.0
    min_depth: int = 16
    hyperparams: ConvHyperparams = ConvHyperparams()
    override_base_hyperparams: bool = False
    use_depthwise: bool = False
    pad_to_multiple: int = 1


def _depth(config: FeatureExtractorConfig, depth: float) -> int:
    return max(int(depth * config.depth_multiplier), config.min_depth)


def _backbone(config: FeatureExtractorConfig, image_shape: tuple[int, int], layer_names: list[str]) -> keras.Model:
    full = mobilenet_v2_backbone(
        config.depth_multiplier,
        config.min_depth,
        config.hyperparams if config.override_base_hyperparams else None,
        input_shape=(image_shape[0], image_shape[1], 3),
    )
    outputs = [full.get_layer(name).output for name in layer_names]
    return keras.Model(full.inputs, outputs, name="classification_backbone")


def _check_image_shape(config: FeatureExtractorConfig, image_shape: tuple[int, int]) -> None:
    if min(image_shape) < 33:
        raise ValueError(f"image size {image_shape} is below the 33 pixels the MobileNetV2 extractors need")
    if config.pad_to_multiple > 1 and any(side % config.pad_to_multiple for side in image_shape):
        raise ValueError(
            f"feature_extractor.pad_to_multiple: {config.pad_to_multiple} does not divide "
            f"the resizer size {image_shape}"
        )


def ssd_mobilenet_v2(config: FeatureExtractorConfig, image_shape: tuple[int, int]) -> keras.Model:
    """`ssd_mobilenet_v2_keras`: block_13_expand_relu, out_relu, then 4 maps of 512/256/256/128 at stride 2."""
    _check_image_shape(config, image_shape)
    params = config.hyperparams
    backbone = _backbone(config, image_shape, list(SSD_BACKBONE_LAYERS))
    image = keras.Input((image_shape[0], image_shape[1], 3), name="preprocessed_inputs")
    feature_maps = list(backbone(image))
    net = feature_maps[-1]
    for index, layer_depth in enumerate(SSD_EXTRA_LAYER_DEPTHS, start=len(SSD_BACKBONE_LAYERS)):
        half = _depth(config, layer_depth / 2)
        name = f"layer_19_1_Conv2d_{index}_1x1_{half}"
        net = keras.layers.Conv2D(half, 1, padding="same", name=name + "_conv", **params.conv_kwargs())(net)
        net = params.batch_norm_layer(name + "_batchnorm")(net)
        net = params.activation_layer(name)(net)
        full = _depth(config, layer_depth)
        name = f"layer_19_2_Conv2d_{index}_3x3_s2_{full}"
        if config.use_depthwise:
            # The OD API hands conv_hyperparams to this layer as kernel_* arguments, which a depthwise
            # convolution ignores: its kernel keeps Keras' default initializer and no regularizer.
            net = keras.layers.DepthwiseConv2D(
                3, strides=2, padding="same", name=name + "_depthwise_conv", use_bias=params.use_bias()
            )(net)
            net = params.batch_norm_layer(name + "_depthwise_batchnorm")(net)
            net = params.activation_layer(name + "_depthwise")(net)
            net = keras.layers.Conv2D(full, 1, padding="same", name=name + "_conv", **params.conv_kwargs())(net)
        else:
            net = keras.layers.Conv2D(
                full, 3, strides=2, padding="same", name=name + "_conv", **params.conv_kwargs()
            )(net)
        net = params.batch_norm_layer(name + "_batchnorm")(net)
        net = params.activation_layer(name)(net)
        feature_maps.append(net)
    return keras.Model(image, feature_maps, name="feature_extractor")


def _conv_block(
    params: ConvHyperparams, use_depthwise: bool, depth: int, stride: int, name: str
) -> list[keras.layers.Layer]:
    """3x3 convolution (separable when use_depthwise), batch norm, activation: the OD API's create_conv_block."""
    if use_depthwise:
        # The OD API gives the depthwise kernel the config's initializer/regularizer;
        # the pointwise kernel keeps Keras defaults.
        conv = keras.layers.SeparableConv2D(
            depth, 3, strides=stride, padding="same", name=name + "_depthwise_conv", **params.separable_kwargs()
        )
    else:
        conv = keras.layers.Conv2D(
            depth, 3, strides=stride, padding="same", name=name + "_conv", **params.conv_kwargs()
        )
    return [conv, params.batch_norm_layer(name + "_batchnorm"), params.activation_layer(name)]


def ssd_mobilenet_v2_fpn(
    config: FeatureExtractorConfig,
    image_shape: tuple[int, int],
    min_level: int = 3,
    max_level: int = 7,
    additional_layer_depth: int = 256,
) -> keras.Model:
    """`ssd_mobilenet_v2_fpn_keras`: top-down FPN on MobileNetV2 levels min_level..5, stride-2 levels above."""
    _check_image_shape(config, image_shape)
    if not 2 <= min_level <= 5 or max_level < min_level:
        raise ValueError(f"fpn min_level {min_level} / max_level {max_level}: need 2 <= min_level <= 5 <= max_level")
    params = config.hyperparams
    depth = _depth(config, additional_layer_depth)
    base_max_level = min(max_level, 5)
    if any(side % 2**base_max_level for side in image_shape):
        raise ValueError(
            f"the FPN's top-down sums need an image size divisible by {2**base_max_level}, got {image_shape}"
        )
    levels = list(range(min_level, base_max_level + 1))
    names = [f"block_{FPN_BACKBONE_BLOCKS[level]}_add" if level < 5 else "out_relu" for level in levels]
    backbone = _backbone(config, image_shape, names)
    image = keras.Input((image_shape[0], image_shape[1], 3), name="preprocessed_inputs")
    features = backbone(image)
    features = list(features) if isinstance(features, (list, tuple)) else [features]
    num_levels = len(levels)
    # Top-down pathway: 1x1 projection of the coarsest map, then upsample + lateral 1x1 + 3x3 smoothing.
    top_down = keras.layers.Conv2D(
        depth, 1, padding="same", name=f"projection_{num_levels}", **params.conv_kwargs(use_bias=True)
    )(features[-1])
    outputs = [top_down]
    for level_index in reversed(range(num_levels - 1)):
        residual = keras.layers.Conv2D(
            depth, 1, padding="same", name=f"projection_{level_index + 1}", **params.conv_kwargs(use_bias=True)
        )(features[level_index])
        upsample = NearestNeighborUpsampling(2, name=f"nearest_neighbor_upsampling_{level_index + 1}")
        upsampled = upsample(outputs[-1])
        net = keras.layers.Add(name=f"top_down_add_{level_index + 1}")([upsampled, residual])
        for layer in _conv_block(params, config.use_depthwise, depth, 1, f"smoothing_{level_index + 1}"):
            net = layer(net)
        outputs.append(net)
    feature_maps = list(reversed(outputs))
    net = feature_maps[-1]
    for level in range(base_max_level + 1, max_level + 1):
        name = f"bottom_up_Conv2d_{level - base_max_level + 13}"
        for layer in _conv_block(params, config.use_depthwise, depth, 2, name):
            net = layer(net)
        feature_maps.append(net)
    return keras.Model(image, feature_maps, name="feature_extractor")
