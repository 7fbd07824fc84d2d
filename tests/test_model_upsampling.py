"""The FPN's nearest-neighbour upsampling: the values of Keras' UpSampling2D, the TFLite ops of the OD API's."""

from collections import Counter

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tfodkit.model.upsampling import NearestNeighborUpsampling


def test_it_repeats_each_value_as_nearest_neighbour_resizing_does() -> None:
    maps = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
    ours = np.asarray(NearestNeighborUpsampling(2)(maps))
    assert ours.shape == (2, 10, 14, 3)
    np.testing.assert_array_equal(ours, np.asarray(keras.layers.UpSampling2D(2, interpolation="nearest")(maps)))
    np.testing.assert_array_equal(ours, tf.image.resize(maps, (10, 14), method="nearest").numpy())


def test_it_takes_maps_of_unknown_size() -> None:
    upsample = tf.function(NearestNeighborUpsampling(3), input_signature=[tf.TensorSpec([None, None, None, 4])])
    maps = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    np.testing.assert_array_equal(upsample(maps).numpy(), np.repeat(np.repeat(maps, 3, axis=1), 3, axis=2))


def test_tflite_runs_it_as_pack_and_reshape_as_the_od_api_fpn_converts() -> None:
    inputs = keras.Input((4, 6, 8), batch_size=1)
    model = keras.Model(inputs, NearestNeighborUpsampling(2)(inputs))
    converted = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interpreter = Interpreter(model_content=converted)
    ops = Counter(op["op_name"] for op in interpreter._get_ops_details())
    assert ops == Counter({"PACK": 2, "RESHAPE": 1})  # UpSampling2D converts to RESHAPE + TILE pairs
    interpreter.allocate_tensors()
    maps = np.random.default_rng(1).normal(size=(1, 4, 6, 8)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], maps)
    interpreter.invoke()
    result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(result, np.asarray(model(maps)))
