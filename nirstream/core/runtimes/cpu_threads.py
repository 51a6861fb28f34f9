"""One thread for NumPy's BLAS in serving processes: its threads otherwise spin after every small matrix product
(EMSC, T²/Q) and take the cores from the model's own thread pool. Measured on this 2-core machine, paper-size CNN
under ONNX Runtime, batches of 256: ``Predictor.predict`` 4,500 spectra/s with BLAS's default threads, 9,200 with one
(the model call alone 10,800)."""

from __future__ import annotations


def serve_with_one_blas_thread():
    """Limit BLAS to one thread for the rest of the process (threadpoolctl, a scikit-learn dependency)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
