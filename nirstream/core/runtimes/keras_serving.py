"""Serving a Keras network: loading it safely, its seed-ensemble members' outputs and full-float32 GPU kernels.

Shared by the predictor, the ONNX export (its parity check computes the Keras side as the worker does) and the
bundle loader; TensorFlow and Keras are imported only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_keras_model(path: Path) -> Any:
    """A ``model.keras`` file; safe_mode refuses lambda layers and other arbitrary code in the file."""
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)


def with_member_outputs(model):
    """A seed ensemble (members nested in one model, averaged by its last layer) as a model that returns the average
    and each member's output from one call, and True; any other model as it is, and False."""
    import keras

    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(members) < 2:
        return model, False
    return keras.Model(model.inputs, [model.output, *(member.output for member in members)]), True


def use_full_float32() -> None:
    """Predict in full float32 on GPUs. TensorFloat-32 (TensorFlow's default on Ampere and later) moved the paper-size
    network's outputs by 1e-3 of their scale on an H100, 100x the ONNX parity tolerance; without it 1e-6
    (benchmarks/results/gpu-keras-parity.json). Training may keep it: only predictions must agree."""
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)


def compiled_prediction(model, input_shape: tuple[int, ...]):
    """``(call, is_ensemble)``: the model (with its members' outputs) as a ``tf.function`` over float32 batches of
    ``input_shape``, in full float32."""
    import tensorflow as tf

    use_full_float32()
    served, is_ensemble = with_member_outputs(model)
    signature = [tf.TensorSpec((None, *input_shape), tf.float32)]
    return tf.function(lambda x: served(x, training=False), input_signature=signature, reduce_retracing=True), is_ensemble
