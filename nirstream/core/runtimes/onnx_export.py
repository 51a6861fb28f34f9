"""Export a Keras network to ONNX for the worker's TensorFlow-free path, gated by a parity check on real spectra."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5  # relative to the output's scale: float32 kernels differ in summation order, not more


class OnnxParityError(RuntimeError):
    """The exported network does not predict what the Keras network predicts."""


def export_with_parity(model, path: Path, features: np.ndarray) -> dict[str, float]:
    """Write ``model`` (with its members' outputs, for an ensemble) as ONNX to ``path`` and check it against Keras on
    ``features`` (preprocessed real spectra, (n, channels)); raise ``OnnxParityError`` beyond the tolerance."""
    from nirstream.core.runtimes.keras_serving import use_full_float32, with_member_outputs
    from nirstream.core.runtimes.onnx_model import OnnxModel

    use_full_float32()  # the Keras side of the comparison as the worker computes it
    served, _ = with_member_outputs(model)
    x = np.asarray(features, dtype=np.float32).reshape((len(features), *model.input_shape[1:]))
    served(x[:1])  # a Keras model must have been called before export
    served.export(str(path), format="onnx", verbose=False)
    predicted = served.predict(x, verbose=0)
    expected = [np.asarray(o) for o in (predicted if isinstance(predicted, list | tuple) else [predicted])]
    got = OnnxModel(path, threads=1)(x)
    if len(got) != len(expected):
        raise OnnxParityError(f"ONNX model has {len(got)} outputs, Keras {len(expected)}")
    scale = max(float(np.abs(expected[0]).max()), 1.0)
    max_abs = max(float(np.abs(g.reshape(e.shape) - e).max()) for g, e in zip(got, expected, strict=True))
    parity = {"max_abs_difference": max_abs, "relative_to_output_scale": max_abs / scale, "n_spectra": len(x),
              "tolerance": PARITY_TOLERANCE}
    if max_abs / scale > PARITY_TOLERANCE:
        path.unlink(missing_ok=True)
        raise OnnxParityError(f"ONNX export differs from Keras by {max_abs:.3g} (relative {max_abs / scale:.3g} > "
                              f"{PARITY_TOLERANCE:g}) on {len(x)} real spectra")
    log.info("ONNX export: max difference to Keras %.3g on %d spectra", max_abs, len(x))
    return parity
