"""Serving a network without TensorFlow: the bundle's ``model.onnx`` under ONNX Runtime (CPU).

The trainer exports every network to ONNX at publish time and checks it against the Keras output on real spectra
(``trainer/onnx_export.py``); the worker then needs neither TensorFlow's import (~3–8 s) nor its memory. A seed
ensemble is exported with its members' outputs too, so one call gives the average and each member.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

RUNTIMES = ("auto", "onnx", "keras")


def gpu_present() -> bool:
    """An NVIDIA device node: the Keras path (TensorFlow on the GPU) is chosen automatically then."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def serving_runtime(requested: str | None = None) -> str:
    """``onnx`` or ``keras``: the request, else the ``runtime`` setting (``NIRSTREAM_RUNTIME``); ``auto`` is ``keras``
    with a GPU and ``onnx`` without."""
    if requested is None:
        from nirstream.core.settings import SharedSettings

        requested = SharedSettings.load().runtime
    choice = requested.lower()
    if choice not in RUNTIMES:
        raise ValueError(f"runtime {choice!r}: choose one of {', '.join(RUNTIMES)}")
    if choice == "auto":
        return "keras" if gpu_present() else "onnx"
    return choice


class OnnxModel:
    """An ONNX network: ``__call__(x)`` returns the outputs as float32 arrays (the first is the model's output)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Every CPU the process may use: ONNX Runtime's own default (0) counts physical cores, one on a 2-vCPU machine,
        # which halves throughput here (measured: 6,400 vs 10,600 spectra/s at batch 256)
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: they share the cores with the event loop, the broker client and, on
        # small machines, the broker (benchmarks/runtime_choice.py: 6,190 vs 3,751 spectra/s at batch 256 on a busy
        # 2-core machine, 3,520 vs 1,176 at batch 1)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one input, found {len(inputs)}")
        self._input = inputs[0].name
        self.input_shape = (None, *inputs[0].shape[1:])
        self.n_outputs_total = len(self.session.get_outputs())
        shape = self.session.get_outputs()[0].shape
        self.output_shape = (None, *shape[1:])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})
