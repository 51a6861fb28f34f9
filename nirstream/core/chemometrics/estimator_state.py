"""A fitted estimator as bundle state: its parameters (``get_params``) and fitted attributes (the public names
ending in ``_``); arrays go to the bundle's npz, everything else to its JSON. No pickles: loading builds only
classes the caller names. NumPy only: the worker reads states with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the worker reads states without scikit-learn
    from sklearn.base import BaseEstimator


def fitted_attributes(estimator: BaseEstimator) -> dict[str, Any]:
    """The attributes ``fit`` set: public, ending in ``_`` (scikit-learn's convention)."""
    return {k: v for k, v in vars(estimator).items() if k.endswith("_") and not k.startswith("_")}


def _split(values: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Scalars as JSON-able values; each array moved into ``arrays`` under ``prefix.name``."""
    scalars = {}
    for name, value in values.items():
        if isinstance(value, np.ndarray):
            arrays[f"{prefix}.{name}"] = value
        else:
            scalars[name] = value.item() if isinstance(value, np.generic) else value
    return scalars


def _joined(scalars: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    start = f"{prefix}."
    return scalars | {k[len(start):]: np.asarray(v) for k, v in arrays.items()
                      if k.startswith(start) and "." not in k[len(start):]}


def estimator_state(estimator: BaseEstimator, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"class", "params", "fitted"}`` of a fitted estimator, its arrays added to ``arrays`` as ``prefix.*``."""
    return {"class": type(estimator).__name__,
            "params": _split(estimator.get_params(deep=False), f"{prefix}.params", arrays),
            "fitted": fitted_state(estimator, prefix, arrays)}


def fitted_state(estimator: BaseEstimator, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Only the fitted attributes (for an estimator whose parameters are stored elsewhere), arrays as above."""
    return _split(fitted_attributes(estimator), prefix, arrays)


def restore_estimator(state: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray],
                      classes: dict[str, type[BaseEstimator]]) -> BaseEstimator:
    """The fitted estimator ``estimator_state`` described; its class must be one of ``classes`` (by name)."""
    cls = classes.get(state["class"])
    if cls is None:
        raise ValueError(f"unknown preprocessing step {state['class']!r}; known: {', '.join(classes)}")
    return restore_fitted(cls(**_joined(state["params"], f"{prefix}.params", arrays)), state["fitted"], prefix, arrays)


def fitted_values(fitted: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The fitted attributes ``estimator_state`` stored: its ``fitted`` scalars and the arrays under ``prefix.*``."""
    return _joined(fitted, prefix, arrays)


def restore_fitted(estimator: BaseEstimator, fitted: dict[str, Any], prefix: str,
                   arrays: dict[str, np.ndarray]) -> BaseEstimator:
    for name, value in fitted_values(fitted, prefix, arrays).items():
        setattr(estimator, name, value)
    return estimator
