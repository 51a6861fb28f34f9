"""GPU check (issue 18): on a GPU machine `runtime = auto` picks the Keras path, and the bundle's network on the GPU
predicts what ONNX Runtime and TensorFlow predict on a CPU — with full float32, not with TensorFloat-32.

Two steps, because the GPU machine used here has no TensorFlow (its image holds JAX, CuDNN and ONNX Runtime; the
.keras file is backend-neutral, so Keras runs on JAX there):

    python benchmarks/gpu_keras_parity.py prepare          # here: paper-size CNN (untrained), real tablet spectra
    python benchmarks/gpu_keras_parity.py run              # on the GPU machine, with keras/namex/optree on the path

`prepare` writes `.gpucheck/` (model.keras, model.onnx, preprocessed test spectra, TensorFlow-CPU outputs); `run`
prints JSON and writes it to $OUT (or the current folder). Each precision is one run: PRECISION=highest (full float32)
or default (TensorFloat-32 on Ampere and later). Results: benchmarks/results/gpu-keras-parity.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

FOLDER = Path(".gpucheck")


def prepare() -> None:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from nirstream.core.datasets import load_tablets
    from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
    from nirstream.trainer.cnn import build_cnn

    tablets = load_tablets(1)
    preprocessor = SpectralPreprocessor(tablets.wavelengths, first_nm=600, last_nm=1798).fit(tablets.split("calibrate").X)
    model = build_cnn(preprocessor.n_model_channels)
    x = preprocessor.transform(tablets.split("test").X).astype(np.float32)
    x = x.reshape((len(x), *model.input_shape[1:]))
    model(x[:1])
    FOLDER.mkdir(exist_ok=True)
    model.save(FOLDER / "model.keras")
    model.export(str(FOLDER / "model.onnx"), format="onnx", verbose=False)
    np.save(FOLDER / "features.npy", x)
    np.save(FOLDER / "keras_tf_cpu.npy", model.predict(x, verbose=0))


def run() -> None:
    os.environ["KERAS_BACKEND"] = "jax"
    sys.path.insert(0, ".")
    import jax
    import keras
    import numpy as np
    import onnxruntime

    from nirstream.core.runtimes.onnx_model import gpu_present, serving_runtime

    precision = os.environ.get("PRECISION", "highest")
    if precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    out = {"precision": precision, "gpu_present": gpu_present(), "auto_runtime": serving_runtime("auto"),
           "devices": [str(d) for d in jax.devices()]}
    x = np.load(FOLDER / "features.npy")
    tf_cpu = np.load(FOLDER / "keras_tf_cpu.npy")
    model = keras.saving.load_model(FOLDER / "model.keras", compile=False)
    gpu = np.asarray(model.predict(x, batch_size=256, verbose=0))
    session = onnxruntime.InferenceSession(str(FOLDER / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx = session.run(None, {session.get_inputs()[0].name: x})[0]
    scale = max(float(np.abs(tf_cpu).max()), 1.0)
    out["gpu_keras_vs_tf_cpu_relative"] = float(np.abs(gpu - tf_cpu).max() / scale)
    out["gpu_keras_vs_onnx_cpu_relative"] = float(np.abs(gpu - onnx).max() / scale)
    predict = jax.jit(lambda batch: model(batch, training=False))
    for size in (1, 32, 256, 4096):
        batch = np.ascontiguousarray(np.resize(x, (size, *x.shape[1:])))
        predict(jax.device_put(batch)).block_until_ready()
        calls, started = max(5, 20000 // size), time.perf_counter()
        for _ in range(calls):  # host -> GPU copy included, as the worker pays it
            predict(jax.device_put(batch)).block_until_ready()
        out[f"gpu_spectra_per_second_batch_{size}"] = calls * size / (time.perf_counter() - started)
    print(json.dumps(out, indent=1))
    Path(os.environ.get("OUT", "."), f"gpu-keras-parity-{precision}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    {"prepare": prepare, "run": run}[sys.argv[1] if len(sys.argv) > 1 else "run"]()
