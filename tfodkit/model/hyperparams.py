"""Convolution hyperparameters (the OD API's `conv_hyperparams`) turned into Keras layer arguments and layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

from tfodkit.model.batch_norm import FusedBatchNormalization


@dataclass(frozen=True)
class BatchNormParams:
    """The `batch_norm` block: Keras momentum is the OD API's decay."""

    decay: float = 0.999
    center: bool = True
    scale: bool = False
    epsilon: float = 1e-3
    train: bool = True


@dataclass(frozen=True)
class ConvHyperparams:
    """Regulariser, initialiser, activation and normaliser shared by a group of convolutions.

    `l2_weight` / `l1_weight` follow the OD API's Keras path: an L2 weight w becomes keras L2(w / 2)
    (slim's l2_regularizer computed w * sum(x^2) / 2); an L1 weight is used as is.
    `initializer` is ("truncated_normal"|"random_normal", mean, stddev) or ("variance_scaling", factor,
    uniform, mode).
    """

    l2_weight: float | None = None
    l1_weight: float | None = None
    initializer: tuple[Any, ...] = ("truncated_normal", 0.0, 1.0)
    activation: str = "relu"  # relu | relu6 | swish | none
    batch_norm: BatchNormParams | None = None
    force_use_bias: bool = False
    freeze_batchnorm: bool = False

    def regularizer(self) -> keras.regularizers.Regularizer | None:
        """The kernel regulariser, or None."""
        if self.l2_weight is not None:
            return keras.regularizers.L2(float(self.l2_weight) * 0.5)
        if self.l1_weight is not None:
            return keras.regularizers.L1(float(self.l1_weight))
        return None

    def initializer_instance(self) -> keras.initializers.Initializer:
        """A fresh kernel initialiser."""
        kind = self.initializer[0]
        if kind == "truncated_normal":
            return keras.initializers.TruncatedNormal(mean=self.initializer[1], stddev=self.initializer[2])
        if kind == "random_normal":
            return keras.initializers.RandomNormal(mean=self.initializer[1], stddev=self.initializer[2])
        _, factor, uniform, mode = self.initializer
        return keras.initializers.VarianceScaling(
            scale=factor, mode=mode, distribution="uniform" if uniform else "truncated_normal"
        )

    def use_bias(self) -> bool:
        """Convolutions carry a bias unless a centred batch norm follows them (or force_use_bias)."""
        return self.force_use_bias or not (self.batch_norm is not None and self.batch_norm.center)

    def conv_kwargs(self, use_bias: bool | None = None) -> dict[str, Any]:
        """Keyword arguments for keras Conv2D."""
        return {
            "kernel_initializer": self.initializer_instance(),
            "kernel_regularizer": self.regularizer(),
            "use_bias": self.use_bias() if use_bias is None else use_bias,
        }

    def depthwise_kwargs(self, use_bias: bool | None = None) -> dict[str, Any]:
        """Keyword arguments for keras DepthwiseConv2D."""
        return {
            "depthwise_initializer": self.initializer_instance(),
            "depthwise_regularizer": self.regularizer(),
            "use_bias": self.use_bias() if use_bias is None else use_bias,
        }

    def separable_kwargs(self, use_bias: bool | None = None) -> dict[str, Any]:
        """Keyword arguments for keras SeparableConv2D: like the OD API, only the depthwise kernel takes them."""
        return self.depthwise_kwargs(use_bias)

    def batch_norm_layer(self, name: str) -> keras.layers.Layer:
        """The normaliser after a convolution (identity when the config has no batch_norm)."""
        if self.batch_norm is None:
            return keras.layers.Identity(name=name)
        params = self.batch_norm
        layer = FusedBatchNormalization(
            momentum=params.decay, epsilon=params.epsilon, center=params.center, scale=params.scale, name=name
        )
        layer.trainable = params.train and not self.freeze_batchnorm
        return layer

    def activation_layer(self, name: str) -> keras.layers.Layer:
        """The activation after a normaliser."""
        if self.activation == "relu6":
            return keras.layers.ReLU(max_value=6.0, name=name)
        if self.activation == "relu":
            return keras.layers.ReLU(name=name)
        if self.activation == "swish":
            return keras.layers.Activation("swish", name=name)
        return keras.layers.Identity(name=name)
