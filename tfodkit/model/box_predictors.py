"""SSD box predictors: `convolutional_box_predictor` (one head per map) and `weight_shared_convolutional_box_predictor`.

Each returns a functional keras.Model named "box_predictor" mapping the list of feature maps to
(box_encodings [B, N, box_code_size], class_predictions_with_background [B, N, num_classes + 1]), concatenated
over maps in anchor order (row, column, anchor). Layer names follow the OD API's scopes with "/" written "_".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras

from tfodkit.model.hyperparams import ConvHyperparams


@dataclass(frozen=True)
class ConvolutionalBoxPredictorConfig:
    """The `convolutional_box_predictor` block."""

    hyperparams: ConvHyperparams
    min_depth: int = 0
    max_depth: int = 0
    num_layers_before_predictor: int = 0
    use_dropout: bool = True
    dropout_keep_probability: float = 0.8
    kernel_size: int = 1
    box_code_size: int = 4
    class_prediction_bias_init: float = 0.0
    use_depthwise: bool = False


@dataclass(frozen=True)
class WeightSharedBoxPredictorConfig:
    """The `weight_shared_convolutional_box_predictor` block."""

    hyperparams: ConvHyperparams
    depth: int = 0
    num_layers_before_predictor: int = 0
    kernel_size: int = 3
    box_code_size: int = 4
    class_prediction_bias_init: float = 0.0
    use_dropout: bool = False
    dropout_keep_probability: float = 0.8
    share_prediction_tower: bool = False
    use_depthwise: bool = False
    sigmoid_scores: bool = False
    box_encodings_clip_range: tuple[float, float] | None = None


def _inputs(feature_shapes: Sequence[tuple[int, int, int]]) -> list[keras.KerasTensor]:
    return [keras.Input(shape, name=f"feature_map_{index}") for index, shape in enumerate(feature_shapes)]


def _flatten(tensor: keras.KerasTensor, code_size: int, name: str) -> keras.KerasTensor:
    return keras.layers.Reshape((-1, code_size), name=name)(tensor)


def convolutional_box_predictor(
    config: ConvolutionalBoxPredictorConfig,
    feature_shapes: Sequence[tuple[int, int, int]],
    anchors_per_location: Sequence[int],
    num_classes: int,
) -> keras.Model:
    """One box head and one class head per feature map (optionally after shared 1x1 convs)."""
    params = config.hyperparams
    inputs = _inputs(feature_shapes)
    num_class_slots = num_classes + 1
    box_outputs, class_outputs = [], []
    for index, (net, num_anchors) in enumerate(zip(inputs, anchors_per_location)):
        scope = f"BoxPredictor_{index}"
        depth = max(min(net.shape[-1], config.max_depth), config.min_depth)
        if depth > 0:
            for layer_index in range(config.num_layers_before_predictor):
                name = f"{scope}_SharedConvolutions_Conv2d_{layer_index}_1x1_{depth}"
                net = keras.layers.Conv2D(depth, 1, padding="same", name=name, **params.conv_kwargs())(net)
                net = params.batch_norm_layer(name + "_norm")(net)
                net = params.activation_layer(name + "_activation")(net)
        box = _conv_head(params, config, net, num_anchors * config.box_code_size, f"{scope}_BoxEncodingPredictor", 0.0)
        class_input = net
        if config.use_dropout:
            class_input = keras.layers.Dropout(1.0 - config.dropout_keep_probability, name=f"{scope}_Dropout")(net)
        logits = _conv_head(
            params, config, class_input, num_anchors * num_class_slots, f"{scope}_ClassPredictor",
            config.class_prediction_bias_init,
        )
        box_outputs.append(_flatten(box, config.box_code_size, f"{scope}_box_encodings"))
        class_outputs.append(_flatten(logits, num_class_slots, f"{scope}_class_predictions"))
    return _concatenated_model(inputs, box_outputs, class_outputs)


def _conv_head(
    params: ConvHyperparams,
    config: ConvolutionalBoxPredictorConfig,
    net: keras.KerasTensor,
    filters: int,
    name: str,
    bias_init: float,
) -> keras.KerasTensor:
    bias = keras.initializers.Constant(bias_init)
    if config.use_depthwise:
        # As in the OD API, conv_hyperparams do not reach the depthwise kernel (Keras default initializer).
        net = keras.layers.DepthwiseConv2D(
            config.kernel_size, padding="same", name=name + "_depthwise", use_bias=params.use_bias()
        )(net)
        net = params.batch_norm_layer(name + "_depthwise_batchnorm")(net)
        net = params.activation_layer(name + "_depthwise_activation")(net)
        kernel_size = 1
    else:
        kernel_size = config.kernel_size
    return keras.layers.Conv2D(
        filters, kernel_size, padding="same", name=name, bias_initializer=bias, **params.conv_kwargs(use_bias=True)
    )(net)


def weight_shared_convolutional_box_predictor(
    config: WeightSharedBoxPredictorConfig,
    feature_shapes: Sequence[tuple[int, int, int]],
    anchors_per_location: Sequence[int],
    num_classes: int,
) -> keras.Model:
    """Towers and heads whose convolutions are shared by all feature maps (batch norms are per map)."""
    if len(set(anchors_per_location)) != 1:
        raise ValueError(
            f"weight shared predictor needs the same anchors per location on every map: {anchors_per_location}"
        )
    params = config.hyperparams
    apply_batch_norm = params.batch_norm is not None
    tower_bias = not apply_batch_norm or params.force_use_bias
    num_anchors = anchors_per_location[0]
    num_class_slots = num_classes + 1
    inputs = _inputs(feature_shapes)
    channels = [shape[-1] for shape in feature_shapes]
    target_channels = max(set(channels), key=channels.count) if len(set(channels)) > 1 else None

    def tower_conv(name: str) -> keras.layers.Layer:
        if config.use_depthwise:
            return keras.layers.SeparableConv2D(
                config.depth, config.kernel_size, padding="same", name=name,
                **params.separable_kwargs(use_bias=tower_bias),
            )
        return keras.layers.Conv2D(
            config.depth, config.kernel_size, padding="same", name=name, **params.conv_kwargs(use_bias=tower_bias)
        )

    def head_conv(filters: int, name: str, bias_init: float) -> keras.layers.Layer:
        bias = keras.initializers.Constant(bias_init)
        if config.use_depthwise:
            return keras.layers.SeparableConv2D(
                filters, config.kernel_size, padding="same", name=name, bias_initializer=bias
            )
        return keras.layers.Conv2D(
            filters, config.kernel_size, padding="same", name=name, bias_initializer=bias,
            **params.conv_kwargs(use_bias=True),
        )

    if config.share_prediction_tower:
        tower_names = ["PredictionTower"]
    else:
        tower_names = ["BoxPredictionTower", "ClassPredictionTower"]
    towers = {
        tower: [tower_conv(f"{tower}_conv2d_{i}") for i in range(config.num_layers_before_predictor)]
        for tower in tower_names
    }
    box_head = head_conv(num_anchors * config.box_code_size, "BoxPredictor", 0.0)
    class_head = head_conv(num_anchors * num_class_slots, "ClassPredictor", config.class_prediction_bias_init)

    def apply_tower(tower: str, net: keras.KerasTensor, level: int) -> keras.KerasTensor:
        for i, conv in enumerate(towers[tower]):
            net = conv(net)
            if apply_batch_norm:
                net = params.batch_norm_layer(f"{tower}_conv2d_{i}_BatchNorm_feature_{level}")(net)
            net = keras.layers.ReLU(max_value=6.0, name=f"{tower}_conv2d_{i}_activation_feature_{level}")(net)
        return net

    box_outputs, class_outputs = [], []
    for level, net in enumerate(inputs):
        if target_channels is not None:
            name = f"ProjectionLayer_conv2d_{level}"
            net = keras.layers.Conv2D(
                target_channels, 1, padding="same", name=name, **params.conv_kwargs(use_bias=tower_bias)
            )(net)
            if apply_batch_norm:
                net = params.batch_norm_layer(name + "_BatchNorm")(net)
        box_tower = apply_tower(tower_names[0], net, level)
        class_tower = box_tower if config.share_prediction_tower else apply_tower("ClassPredictionTower", net, level)
        box = box_head(box_tower)
        if config.box_encodings_clip_range is not None:
            low, high = config.box_encodings_clip_range
            box = keras.layers.Lambda(lambda t: keras.ops.clip(t, low, high), name=f"box_encodings_clip_{level}")(box)
        if config.use_dropout:
            class_tower = keras.layers.Dropout(
                1.0 - config.dropout_keep_probability, name=f"ClassPredictor_Dropout_{level}"
            )(class_tower)
        logits = class_head(class_tower)
        if config.sigmoid_scores:
            logits = keras.layers.Activation("sigmoid", name=f"ClassPredictor_sigmoid_{level}")(logits)
        box_outputs.append(_flatten(box, config.box_code_size, f"box_encodings_{level}"))
        class_outputs.append(_flatten(logits, num_class_slots, f"class_predictions_{level}"))
    return _concatenated_model(inputs, box_outputs, class_outputs)


def _concatenated_model(
    inputs: list[keras.KerasTensor], box_outputs: list[keras.KerasTensor], class_outputs: list[keras.KerasTensor]
) -> keras.Model:
    if len(inputs) > 1:
        boxes = keras.layers.Concatenate(axis=1, name="box_encodings")(box_outputs)
        classes = keras.layers.Concatenate(axis=1, name="class_predictions_with_background")(class_outputs)
    else:
        boxes, classes = box_outputs[0], class_outputs[0]
    return keras.Model(inputs, [boxes, classes], name="box_predictor")
