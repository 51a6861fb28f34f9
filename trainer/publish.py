"""Turn a fitted CNN into a model bundle, and decide whether it becomes champion.

The bundle's preprocessing is rebuilt from the fitted EMSC and scaler as a
``SpectralPreprocessor`` on the analyzers' full wavelength grid (the worker receives whole
spectra and cuts the model's window itself); ``check_same_features`` proves both paths agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nirstream.core.bundle import BundleError, write_bundle
from nirstream.core.domain import ApplicabilityDomain
from nirstream.core.pipeline import SpectralPreprocessor
from nirstream.core.predictor import Predictor
from nirstream.core.preprocessing import EMSC
from nirstream.core.registry import ModelRegistry
from nirstream.core.schemas import WavelengthGrid
from trainer.cnn import CNNRegressor
from trainer.metrics import regression_metrics

log = logging.getLogger(__name__)


def preprocessor_from(regressor: CNNRegressor, input_wavelengths: np.ndarray, window_nm: tuple[float, float] | None) -> SpectralPreprocessor:
    """The fitted CNN's preprocessing as the shared, serialisable chain."""
    wavelengths = np.asarray(input_wavelengths, dtype=float)
    first_nm, last_nm = window_nm or (float(wavelengths[0]), float(wavelengths[-1]))
    keep = np.flatnonzero((wavelengths >= first_nm) & (wavelengths <= last_nm))
    emsc = regressor.corrector_ if isinstance(regressor.corrector_, EMSC) else None
    scalars = {
        "grid": WavelengthGrid.from_wavelengths(wavelengths).model_dump(),
        "first_nm": first_nm,
        "last_nm": last_nm,
        "window": [int(keep[0]), int(keep[-1]) + 1],
        "emsc_order": emsc.order if emsc else None,
        "scaler_mean": regressor.scaler_.mean_,
        "scaler_scale": regressor.scaler_.scale_,
    }
    return SpectralPreprocessor.from_state(scalars, {"emsc_reference": emsc.reference_} if emsc else {})


def check_same_features(regressor: CNNRegressor, preprocessor: SpectralPreprocessor, X_full: np.ndarray, X_window: np.ndarray) -> None:
    served = preprocessor.transform(X_full)
    trained = regressor._features(X_window)[:, :, 0]
    if not np.allclose(served, trained, atol=1e-5):
        raise BundleError("bundle preprocessing differs from the training preprocessing")


@dataclass
class PromotionDecision:
    promote: bool
    reason: str
    candidate_rmsep: float
    champion_rmsep: float | None
    champion_version: str | None


def decide_promotion(
    registry: ModelRegistry, candidate: Predictor, X_holdout: np.ndarray, y_holdout: np.ndarray, margin: float
) -> PromotionDecision:
    """Promote only if the candidate's held-out RMSEP beats the champion's by ``margin`` (relative)."""
    candidate_rmsep = regression_metrics(y_holdout, candidate.predict(X_holdout).values)["rmsep"]
    champion_version = registry.champion()
    if champion_version is None:
        return PromotionDecision(True, "no champion yet", candidate_rmsep, None, None)
    try:
        champion = Predictor(registry.load(champion_version))
    except BundleError as exc:
        return PromotionDecision(True, f"champion {champion_version} unusable ({exc})", candidate_rmsep, None, champion_version)
    if champion.target != candidate.target or champion.grid != candidate.grid:
        return PromotionDecision(
            False,
            f"champion {champion_version} predicts {champion.target!r} on another grid: promote by hand if intended",
            candidate_rmsep, None, champion_version,
        )
    champion_rmsep = regression_metrics(y_holdout, champion.predict(X_holdout).values)["rmsep"]
    if candidate_rmsep < champion_rmsep * (1 - margin):
        reason = f"held-out RMSEP {candidate_rmsep:.3f} beats champion {champion_version} ({champion_rmsep:.3f})"
        return PromotionDecision(True, reason, candidate_rmsep, champion_rmsep, champion_version)
    reason = (f"held-out RMSEP {candidate_rmsep:.3f} does not beat champion {champion_version} "
              f"({champion_rmsep:.3f}) by the {margin:.0%} margin")
    return PromotionDecision(False, reason, candidate_rmsep, champion_rmsep, champion_version)


def publish_candidate(registry: ModelRegistry, regressor: CNNRegressor, preprocessor: SpectralPreprocessor,
                      domain: ApplicabilityDomain, **metadata) -> str:
    return registry.publish(
        lambda directory: write_bundle(
            directory, regressor.model_, preprocessor, domain,
            target_mean=regressor.y_mean_, target_scale=regressor.y_scale_, **metadata,
        )
    )
