"""PLS baseline: latent variables chosen by cross-validation on the training data only.

The number of latent variables (LVs) is picked from the cross-validated RMSE (RMSECV) curve
of the training set. Two rules are offered:

* ``"min"``: the LV count with the lowest RMSECV (classic chemometric practice);
* ``"1se"``: the fewest LVs whose RMSECV is within one standard error of the minimum
  (more parsimonious; standard error over the CV folds).

An *oracle* choice on the test set is provided for comparison with published figures only;
it is optimistic by construction and never used to pick a deployed model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import RepeatedKFold

from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from nirstream.trainer.variants import prepare_training

MAX_LV = 20


def predictions_per_lv(model: PLSRegression, X: np.ndarray) -> np.ndarray:
    """Predictions of the sub-models with 1..n_components LVs, shape (n_samples, n_components).

    NIPALS extracts components one after another, so the first k components of a fitted
    model are exactly the k-component model: one fit gives the whole RMSE-vs-LV curve.
    """
    if model.scale:
        raise ValueError("predictions_per_lv expects PLSRegression(scale=False)")
    scores = model.transform(np.asarray(X, dtype=np.float64))  # centred X times the rotations
    return model.intercept_[0] + np.cumsum(scores * model.y_loadings_[0], axis=1)


@dataclass
class LVSelection:
    """An RMSE-vs-LV curve and the LV counts the rules pick from it."""

    lvs: np.ndarray  # 1..max_lv
    rmse: np.ndarray  # mean over folds (or the single test RMSE for the oracle)
    standard_error: np.ndarray | None = None
    fold_rmse: np.ndarray | None = None  # (folds, max_lv): for paired comparisons on the same folds

    def best(self, rule: str = "min") -> int:
        best = int(np.argmin(self.rmse))
        if rule == "min":
            return int(self.lvs[best])
        if rule == "1se":
            if self.standard_error is None:
                raise ValueError("the 1se rule needs fold standard errors")
            threshold = self.rmse[best] + self.standard_error[best]
            return int(self.lvs[np.flatnonzero(self.rmse <= threshold)[0]])
        raise ValueError(f"unknown rule {rule!r}: use 'min' or '1se'")


def cross_validate_lvs(
    X: np.ndarray,
    y: np.ndarray,
    variant: str = "none",
    max_lv: int = MAX_LV,
    n_splits: int = 10,
    n_repeats: int = 3,
    n_copies: int = 10,
    random_state: int = 0,
) -> LVSelection:
    """RMSECV for 1..max_lv LVs by repeated K-fold on the training data only.

    Augmentation and EMSC are refitted inside every fold, so augmented copies of a
    held-out spectrum never leak into the fold that predicts it.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64).ravel()
    max_lv = min(max_lv, X.shape[1], int(X.shape[0] * (1 - 1 / n_splits)) - 1)
    folds = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    fold_rmse = []
    for i, (fit_rows, held_rows) in enumerate(folds.split(X)):
        X_fit, y_fit, preprocessor = prepare_training(
            variant, X[fit_rows], y[fit_rows], n_copies=n_copies, random_state=random_state + i
        )
        model = PLSRegression(n_components=max_lv, scale=False).fit(X_fit, y_fit)
        fold_rmse.append(rmse(predictions_per_lv(model, preprocessor.transform(X[held_rows])), y[held_rows, None], axis=0))
    fold_rmse = np.array(fold_rmse)
    return LVSelection(
        lvs=np.arange(1, max_lv + 1),
        rmse=fold_rmse.mean(axis=0),
        standard_error=fold_rmse.std(axis=0, ddof=1) / np.sqrt(len(fold_rmse)),
        fold_rmse=fold_rmse,
    )


@dataclass
class PLSModel:
    """A PLS model with its preprocessing: ``predict`` takes raw spectra."""

    variant: str
    n_components: int
    preprocessor: SpectralPreprocessor
    regression: PLSRegression

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.regression.predict(self.preprocessor.transform(np.asarray(X, dtype=np.float64))).ravel()

    def predict_per_lv(self, X: np.ndarray) -> np.ndarray:
        return predictions_per_lv(self.regression, self.preprocessor.transform(np.asarray(X, dtype=np.float64)))


def fit_pls(
    X: np.ndarray, y: np.ndarray, n_components: int, variant: str = "none", n_copies: int = 10, random_state: int = 0
) -> PLSModel:
    """Fit PLS with ``n_components`` LVs on the (augmented / corrected) training set."""
    X_fit, y_fit, preprocessor = prepare_training(variant, X, y, n_copies=n_copies, random_state=random_state)
    regression = PLSRegression(n_components=n_components, scale=False).fit(X_fit, np.ravel(y_fit))
    return PLSModel(variant, n_components, preprocessor, regression)


def oracle_lvs(model: PLSModel, X_test: np.ndarray, y_test: np.ndarray) -> LVSelection:
    """ORACLE: the test-set RMSE for every LV count of a fitted model.

    Uses the test set to choose, so its minimum is optimistic; for comparison with
    published "best LV" figures only, never to select a model.
    """
    curve = rmse(model.predict_per_lv(X_test), np.ravel(y_test)[:, None], axis=0)
    return LVSelection(lvs=np.arange(1, curve.size + 1), rmse=curve)
