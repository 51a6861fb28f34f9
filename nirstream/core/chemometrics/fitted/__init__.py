"""The fitted transforms in NumPy alone: each preprocessing step's arithmetic, the chain, the input screen and the
applicability domain's statistics. The scikit-learn estimators (``steps/``, ``spectral_preprocessor``, ``domain``)
learn the state and call these to transform; the worker rebuilds them from a bundle's state without importing
scikit-learn or SciPy."""
