"""Operator-adaptive PLS: a linear pretreatment per target and its latent variables, both by cross-validation.

For one target, every operator of the bank (``operator_bank``) is scored by repeated k-fold cross-validation on the
training features (the same folds for all), the RMSECV curve over 1..``max_components`` latent variables each; the
rule picks one operator and LV count, PLS is refitted on all training rows, and the operator is folded into the
coefficients (``coef_ = M @ pls_coef``), so the model predicts the *untreated* features with one product.
The idea (choose the linear operator by CV rather than fixing one pretreatment) follows operator-adaptive PLS
(nirs4all-aom); this implementation is ours and chooses one operator per target ("global" selection).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import RepeatedKFold
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.core.chemometrics.linear_model import LinearModel
from nirstream.trainer.operator_bank import OPERATOR_NAMES, operator_matrix

RULES = ("min", "fewest-components-1se")


def pls1_predictions_per_lv(X_fit: np.ndarray, y_fit: np.ndarray, X_new: np.ndarray, components: int) -> np.ndarray:
    """Predictions of ``X_new`` by single-response PLS with 1..``components`` LVs, shape (n_new, components); LVs
    beyond what the fit rows can carry (their count less one) repeat the last prediction.

    The screening fits thousands of fold models (operators x shared preprocessors x folds); scikit-learn's
    ``PLSRegression`` costs ~45 ms a 30-LV fit on the tablets' folds, this kernel form (Dayal & MacGregor: the
    covariance is deflated, not X) about a quarter of that. The model that is deployed is still fitted by
    ``PLSRegression``; a unit test checks the two agree.
    """
    requested, components = components, min(components, len(X_fit) - 1)
    x_mean, y_mean = X_fit.mean(axis=0), y_fit.mean()
    X = X_fit - x_mean
    covariance = X.T @ (y_fit - y_mean)
    floor = 1e-12 * max(1.0, float(np.linalg.norm(covariance)))
    rotations, loadings, y_loadings = [], [], []
    for _ in range(components):
        norm = np.linalg.norm(covariance)
        if norm <= floor:  # nothing left to explain: later LVs add nothing
            break
        r = covariance / norm
        for previous_r, previous_p in zip(rotations, loadings):
            r = r - (previous_p @ (covariance / norm)) * previous_r
        t = X @ r
        tt = t @ t
        p = X.T @ t / tt
        q = (r @ covariance) / tt
        covariance = covariance - p * (q * tt)
        rotations.append(r), loadings.append(p), y_loadings.append(q)
    if not rotations:  # the operator left no variation that covaries with y: the mean predicts
        return np.full((len(X_new), requested), y_mean)
    rotations = np.array(rotations).T
    predictions = y_mean + np.cumsum(((X_new - x_mean) @ rotations) * np.array(y_loadings), axis=1)
    return np.pad(predictions, ((0, 0), (0, requested - predictions.shape[1])), mode="edge")


class OperatorAdaptivePLS(RegressorMixin, BaseEstimator):
    """Single-target PLS with its linear pretreatment and LV count chosen by repeated k-fold CV on the training rows.

    Parameters
    ----------
    operators : sequence of str or None, default=None
        Names from ``operator_bank.OPERATOR_NAMES`` to choose among; None: the whole bank.
    n_components : int or None, default=None
        Fixed LV count (then only the operators are compared at that count); None: chosen by CV.
    max_components : int, default=30
        Largest LV count tried (bounded by the fold size and the number of features).
    n_splits, n_repeats : int, default=10, 3
        Repeated k-fold on the training rows (folds bounded by the rows).
    rule : {"min", "fewest-components-1se"}, default="min"
        "min": the operator and LV count with the lowest RMSECV. "fewest-components-1se": the fewest LVs of any
        operator whose RMSECV is within one standard error (over folds) of that lowest.
    random_state : int or None, default=0
        Seeds the folds.

    Attributes
    ----------
    operator_ : str -- the chosen operator
    n_components_ : int -- its latent variables
    coef_ : ndarray of shape (n_features,) -- weights on the untreated features (operator folded in)
    intercept_ : float
    cv_results_ : dict -- per operator: ``rmsecv`` and ``standard_error`` per LV count, best LV count
    """

    _parameter_constraints: dict = {
        "operators": ["array-like", None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "max_components": [Interval(Integral, 1, None, closed="left")],
        "n_splits": [Interval(Integral, 2, None, closed="left")],
        "n_repeats": [Interval(Integral, 1, None, closed="left")],
        "rule": [StrOptions(set(RULES))],
        "random_state": ["random_state"],
    }

    def __init__(self, operators=None, n_components=None, max_components=30, n_splits=10, n_repeats=3, rule="min",
                 random_state=0):
        self.operators = operators
        self.n_components = n_components
        self.max_components = max_components
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.rule = rule
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        y = y.astype(np.float64)
        n_rows, n_features = X.shape
        if len(self._names()) == 1 and self.n_components is not None:  # nothing to choose: no cross-validation
            chosen, components, self.cv_results_ = self._names()[0], self._largest(n_rows, n_features), {}
        else:
            self.cv_results_ = self.cv_curves(X, y)
            chosen, components = select_operator(self.cv_results_, "min" if self.n_components else self.rule)
        M = operator_matrix(chosen, n_features)
        pls = PLSRegression(n_components=max(1, min(components, n_rows - 1)), scale=False).fit(X @ M, y)
        on_treated = LinearModel.from_pls([pls])  # y = (X @ M) @ w + b
        self.operator_, self.n_components_ = chosen, pls.n_components
        self.coef_ = M @ on_treated.weights[:, 0]
        self.intercept_ = float(on_treated.bias[0])
        return self

    def cv_curves(self, X: np.ndarray, y: np.ndarray) -> dict[str, dict]:
        """Every operator's RMSECV curve on this estimator's folds (what ``fit`` chooses from), for float arrays."""
        n_rows, n_features = X.shape
        return cross_validate_operators(X, y, self._names(), self._largest(n_rows, n_features), self._splits(n_rows),
                                        self.n_repeats, self.random_state, fixed_components=self.n_components is not None)

    def _names(self) -> tuple[str, ...]:
        return tuple(self.operators) if self.operators is not None else OPERATOR_NAMES

    def _splits(self, n_rows: int) -> int:
        return max(2, min(self.n_splits, n_rows))

    def _largest(self, n_rows: int, n_features: int) -> int:
        """The largest LV count tried: the fixed count, else ``max_components`` bounded by a fold's fit rows."""
        if self.n_components is not None:
            return min(int(self.n_components), n_features, n_rows - 1)
        return max(1, min(self.max_components, n_features, n_rows - -(-n_rows // self._splits(n_rows)) - 1))

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_

    def cv_score(self) -> tuple[float, float]:
        """RMSECV and its standard error at the chosen operator and LV count."""
        check_is_fitted(self)
        return cv_score(self.cv_results_, self.operator_, self.n_components_)


def cross_validate_operators(X: np.ndarray, y: np.ndarray, names, largest: int, splits: int, n_repeats: int,
                             random_state, fixed_components: bool = False) -> dict[str, dict]:
    """Per operator: RMSECV and its standard error (over the folds) for 1..``largest`` LVs, on the same folds for all
    (with ``fixed_components`` only at ``largest``, as entry 0 of curves that start there)."""
    folds = list(RepeatedKFold(n_splits=splits, n_repeats=n_repeats, random_state=random_state).split(X))
    results = {}
    for name in names:
        Z = X @ operator_matrix(name, X.shape[1])
        fold_rmse = np.array([rmse(pls1_predictions_per_lv(Z[fit], y[fit], Z[held], largest), y[held, None], axis=0)
                              for fit, held in folds])
        first = largest if fixed_components else 1
        mean = fold_rmse.mean(axis=0)[first - 1:]
        error = (fold_rmse.std(axis=0, ddof=1) / np.sqrt(len(fold_rmse)))[first - 1:]
        results[name] = {"rmsecv": mean, "standard_error": error, "first_components": first,
                         "best_components": int(np.argmin(mean)) + first}
    return results


def select_operator(cv_results: dict[str, dict], rule: str) -> tuple[str, int]:
    """The operator and LV count ``rule`` picks (see ``OperatorAdaptivePLS``)."""
    best_name = min(cv_results, key=lambda n: cv_results[n]["rmsecv"].min())
    best = cv_results[best_name]
    if rule == "min":
        return best_name, best["best_components"]
    threshold = best["rmsecv"].min() + best["standard_error"][best["best_components"] - best["first_components"]]
    eligible = [(int(np.flatnonzero(r["rmsecv"] <= threshold)[0]) + r["first_components"], float(r["rmsecv"].min()), n)
                for n, r in cv_results.items() if r["rmsecv"].min() <= threshold]
    components, _, name = min(eligible)
    return name, components


def cv_score(cv_results: dict[str, dict], name: str, components: int) -> tuple[float, float]:
    """RMSECV and its standard error of one operator at one LV count."""
    result = cv_results[name]
    index = min(components - result["first_components"], len(result["rmsecv"]) - 1)
    return float(result["rmsecv"][index]), float(result["standard_error"][index])
