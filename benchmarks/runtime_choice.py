"""Which CPU runtime serves the network (issue 18): ONNX Runtime vs LiteRT vs TensorFlow, measured side by side.

The paper-size CNN (600 channels, ~1.23 M weights, untrained: speed does not depend on the weights) is exported once
to ONNX (as the trainer does) and to LiteRT's .tflite; then, for each runtime, a fresh process imports only that
runtime, loads the model and reports: import + load seconds, resident memory, spectra/s at batch 1, 32 and 256
(interleaved rounds, median), and the largest difference to the Keras output on real tablet spectra.

    pip install -e '.[bench]'    # ai-edge-litert: LiteRT is measured only when installed; the worker does not need it
    python benchmarks/runtime_choice.py [--output benchmarks/results/runtime-choice.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCHES = (1, 32, 256)

# Runs in a fresh interpreter per runtime so that import time and memory are that runtime's alone.
_MEASURE = r"""
import json, os, sys, time
import numpy as np
runtime, path, features_path, threads = sys.argv[1:5]
threads = int(threads) or len(os.sched_getaffinity(0))
x = np.load(features_path)
started = time.perf_counter()
if runtime.startswith("onnx"):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if runtime == "onnx-no-spinning":  # idle threads sleep instead of spinning (they share cores with the event loop)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    call = lambda batch: session.run(None, {name: batch})[0]
elif runtime == "litert":
    from ai_edge_litert.interpreter import Interpreter
    interpreters = {}
    def call(batch):
        if len(batch) not in interpreters:  # LiteRT plans memory for one input shape
            interpreter = Interpreter(model_path=path, num_threads=threads)
            detail = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(detail["index"], batch.shape)
            interpreter.allocate_tensors()
            interpreters[len(batch)] = (interpreter, detail["index"], interpreter.get_output_details()[0]["index"])
        interpreter, inp, out = interpreters[len(batch)]
        interpreter.set_tensor(inp, batch)
        interpreter.invoke()
        return interpreter.get_tensor(out)
else:
    import keras
    import tensorflow as tf
    model = keras.saving.load_model(path, compile=False)
    graph = tf.function(model, reduce_retracing=True)
    call = lambda batch: graph(batch).numpy()
first = call(x[:1])
load_seconds = time.perf_counter() - started
outputs = np.concatenate([call(x[i:i + 32]) for i in range(0, len(x) - len(x) % 32, 32)])
rates = {b: [] for b in BATCHES}
for b in BATCHES:
    call(np.ascontiguousarray(x[:b]))  # warm this shape
for _ in range(5):  # interleaved rounds: a noisy machine slows every batch size alike
    for b in BATCHES:
        batch = np.ascontiguousarray(np.resize(x, (b, *x.shape[1:])))
        calls = max(3, 2048 // b)
        t = time.perf_counter()
        for _ in range(calls):
            call(batch)
        rates[b].append(calls * b / (time.perf_counter() - t))
np.save(features_path + "." + runtime + ".npy", outputs)
# VmHWM: this process's peak (ru_maxrss would carry the parent's peak across fork + exec)
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"threads": threads, "import_and_load_seconds": load_seconds, "rss_mib": peak_kib / 1024,
                  "spectra_per_second": {str(b): float(np.median(r)) for b, r in rates.items()}}))
""".replace("BATCHES", repr(BATCHES))


def export_models(workdir: Path) -> tuple[dict[str, Path], Path]:
    """The network as .keras, .onnx (Keras' exporter, as the trainer) and .tflite; real preprocessed spectra."""
    import numpy as np
    import tensorflow as tf

    from nirstream.core.datasets import load_tablets
    from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
    from nirstream.trainer.cnn import build_cnn

    tablets = load_tablets(1)
    calibrate = tablets.split("calibrate")
    preprocessor = SpectralPreprocessor(tablets.wavelengths, first_nm=600, last_nm=1798).fit(calibrate.X)
    model = build_cnn(preprocessor.n_model_channels)
    features = preprocessor.transform(tablets.split("test").X).astype(np.float32)
    features = features.reshape((len(features), *model.input_shape[1:]))
    model(features[:1])
    paths = {"keras": workdir / "model.keras", "onnx": workdir / "model.onnx"}
    model.save(paths["keras"])
    model.export(str(paths["onnx"]), format="onnx", verbose=False)
    paths["onnx-no-spinning"] = paths["onnx"]
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        print("ai-edge-litert is not installed: LiteRT is not measured (pip install -e '.[bench]')")
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        paths["litert"] = workdir / "model.tflite"
        paths["litert"].write_bytes(converter.convert())
    features_path = workdir / "features.npy"
    np.save(features_path, features)
    np.save(f"{features_path}.reference.npy", model.predict(features, verbose=0))  # what every runtime must reproduce
    return paths, features_path


def main() -> int:
    from nirstream.core.provenance import write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/runtime-choice.json"))
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1],
                        help="intra-op threads per runtime (0: every CPU the process may use, as the worker)")
    parser.add_argument("--runtimes", nargs="+", choices=["keras", "onnx", "onnx-no-spinning", "litert"],
                        help="measure only these (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the medians are reported")
    args = parser.parse_args()
    import numpy as np

    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()}, "runtimes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        paths, features_path = export_models(Path(scratch))
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):  # interleaved repeats: a noisy machine slows each runtime alike
            for runtime, path in paths.items():
                if args.runtimes and runtime not in args.runtimes:
                    continue
                for threads in args.threads:
                    run = subprocess.run([sys.executable, "-c", _MEASURE, runtime, str(path), str(features_path),
                                          str(threads)], capture_output=True, text=True, check=True)
                    figures = json.loads(run.stdout.strip().splitlines()[-1])
                    runs.setdefault(f"{runtime}/{figures['threads']}-threads", []).append(figures)
        for name, repeats in runs.items():
            figures = results["runtimes"][name] = {
                **repeats[0], "repeats": len(repeats),
                "spectra_per_second": {b: float(np.median([r["spectra_per_second"][b] for r in repeats]))
                                       for b in repeats[0]["spectra_per_second"]},
                "spectra_per_second_each_repeat": [r["spectra_per_second"] for r in repeats]}
            print(f"{name:26s} import+load {figures['import_and_load_seconds']:.1f} s, RSS {figures['rss_mib']:.0f} MiB, "
                  + ", ".join(f"batch {b}: {r:,.0f}/s" for b, r in figures["spectra_per_second"].items())
                  + f" (median of {len(repeats)})", flush=True)
        keras_out = np.load(f"{features_path}.reference.npy")
        scale = max(float(np.abs(keras_out).max()), 1.0)
        for name in results["runtimes"]:
            out = np.load(f"{features_path}.{name.split('/')[0]}.npy")  # whole batches of 32: the first rows
            expected = keras_out[: len(out)]
            results["runtimes"][name]["max_relative_difference_to_keras"] = float(
                np.abs(out.reshape(expected.shape) - expected).max() / scale)
    write_result(args.output, results)
    print(json.dumps({r: {"max_relative_difference_to_keras": f["max_relative_difference_to_keras"]}
                      for r, f in results["runtimes"].items()}))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
