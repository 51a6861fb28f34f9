"""Hyper-parameter search for the CNN on the validation split, within a time budget (Optuna, TPE sampler).

The paper's network has 1.2 M weights and was tuned on 155 tablets; a plant may have forty spectra.
The search tries networks whose size fits the data (at most ``WEIGHTS_PER_SPECTRUM`` weights per
training spectrum, and never below a floor that lets a small network learn), their regularisation,
learning rate and augmentation strength, each trial one network fitted on the training split and
early-stopped on the validation split, and keeps the trial with the lowest validation RMSEP. The
test split is never seen. The winner's validation RMSEP is the best of many tries, hence optimistic:
the report says so, and the promotion gate and the family choice read the same validation data.

Where the validation targets spread less than half as much as the training targets (the tablets' validate_1 spans
a tenth of the training range), a validation RMSEP cannot rank networks: a trial that predicts the middle of the
range well wins. There each trial is scored by ``CV_FOLDS``-fold cross-validation on the training split instead
(each fold's network early-stopped on its held-out fold; the score the pooled out-of-fold RMSE in training standard
deviations), the rule the prediction intervals apply, and the winning settings are refitted on the whole training
split, early-stopped on the validation split as without a search.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.intervals import narrow_targets

log = logging.getLogger(__name__)

WEIGHTS_PER_SPECTRUM = 1000  # a network's weights per training spectrum at most
MIN_WEIGHTS = 20_000  # ... but never fewer than this: a network that small can still learn a smooth calibration
SPECTRA_PER_TRIAL = 20_000  # augmented spectra one trial sees in all (epochs follow from it)
CV_FOLDS = 3  # folds per trial where validation cannot rank: each trial costs this many fits


def search_scoring(protocol: Protocol) -> str:
    """``"validation"``, or ``"cross-validation"`` where the validation targets are too narrow to rank networks."""
    narrow = narrow_targets(protocol.y(protocol.train), protocol.y(protocol.validation), protocol.targets)
    return "cross-validation" if narrow else "validation"


def parse_budget(text: str | float | int) -> float:
    """``"90s"``, ``"10m"``, ``"1h"`` or a number of seconds -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    text = text.strip().lower()
    factor = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    try:
        value = float(text[:-1]) * factor if factor else float(text)
    except ValueError:
        raise ValueError(f"budget {text!r}: use seconds or a number with s, m or h (e.g. 10m)") from None
    if value <= 0:
        raise ValueError("the budget must be positive")
    return value


def _weights(n_channels: int, filters: tuple[int, ...], kernel_size: int, dense_units: int, n_outputs: int) -> int:
    convolutions, channels_in = 0, 1
    for f in filters:
        convolutions += kernel_size * channels_in * f + f
        channels_in = f
    return convolutions + n_channels * channels_in * dense_units + dense_units + dense_units * n_outputs + n_outputs


def search_cnn(protocol: Protocol, make_regressor, budget_seconds: float, seed: int = 0, max_trials: int = 200,
               epochs: int | None = None) -> tuple[Any, list[dict]]:
    """Run trials until the budget is spent; return the best fitted regressor and every trial's record.

    ``make_regressor(n_copies, augmentation_strength, **cnn_params)`` builds an unfitted ``CNNRegressor``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = protocol.train.X, protocol.y(protocol.train)
    X_val, y_val = protocol.validation.X, protocol.y(protocol.validation)
    n_train, n_outputs = X.shape[0], y.shape[1]
    scoring = search_scoring(protocol)
    if scoring == "cross-validation":
        from sklearn.model_selection import KFold

        folds = list(KFold(CV_FOLDS, shuffle=True, random_state=seed).split(X))
        log.info("validation targets too narrow to rank networks: each trial scored by %d-fold CV on the training split",
                 CV_FOLDS)
        n_train = min(len(fit) for fit, _ in folds)  # the size each trial's networks are fitted on
    window = protocol.model_view(protocol.train).n_channels
    weight_cap = max(MIN_WEIGHTS, WEIGHTS_PER_SPECTRUM * n_train)
    best: dict[str, Any] = {"score": np.inf, "regressor": None}
    trials: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        depth = trial.suggest_int("depth", 1, 2)
        first = trial.suggest_categorical("filters", [2, 4, 8, 16])
        filters = (first,) if depth == 1 else (first, 2 * first)
        kernel_size = trial.suggest_categorical("kernel_size", [5, 9, 17, 33])
        dense_units = trial.suggest_categorical("dense_units", [8, 16, 32, 64, 128])
        weights = _weights(window, filters, kernel_size, dense_units, n_outputs)
        if weights > weight_cap:
            raise optuna.TrialPruned(f"{weights} weights for {n_train} spectra (cap {weight_cap})")
        n_copies = trial.suggest_categorical("n_copies", [5, 10, 20, 50])
        strength = trial.suggest_float("augmentation_strength", 0.0, 2.0)
        trial_epochs = epochs or int(np.clip(round(SPECTRA_PER_TRIAL / (n_train * (n_copies + 1))), 10, 200))
        params = {"filters": filters, "kernel_size": kernel_size, "dense_units": dense_units,
                  "dropout": trial.suggest_float("dropout", 0.0, 0.5), "noise": trial.suggest_float("noise", 0.0, 0.1),
                  "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True), "epochs": trial_epochs,
                  "early_stopping_start": min(10, trial_epochs), "early_stopping_patience": 10, "ensemble_size": 1,
                  "max_training_loss": None, "random_state": seed + trial.number}
        started = time.perf_counter()
        if scoring == "cross-validation":
            regressor, out_of_fold = None, np.empty_like(y)
            for fit_rows, held_rows in folds:
                fold = make_regressor(n_copies, strength, **params).fit(X[fit_rows], y[fit_rows], X_val=X[held_rows],
                                                                        y_val=y[held_rows])
                out_of_fold[held_rows] = np.reshape(fold.predict(X[held_rows]), (len(held_rows), -1))
            score = float(np.mean(rmse(out_of_fold, y, axis=0) / np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)))
        else:
            regressor = make_regressor(n_copies, strength, **params).fit(X, y, X_val=X_val, y_val=y_val)
            score = float(regressor.member_validation_rmsep_[0])
        record = {"trial": trial.number, "score": score, "scoring": scoring, "weights": weights,
                  "epochs_run": len(regressor.history_["loss"]) if regressor is not None else None,
                  "seconds": time.perf_counter() - started, **trial.params}
        trials.append(record)
        log.info("search trial %d: validation score %.4f (%s)", trial.number, score,
                 ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()))
        if score < best["score"]:
            best.update(score=score, regressor=regressor, build=(n_copies, strength, params))
        return score

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=max_trials, timeout=budget_seconds, catch=(RuntimeError,))
    if "build" not in best:
        raise RuntimeError(f"no search trial finished within {budget_seconds:.0f} s; give a larger budget")
    if best["regressor"] is None:  # scored by cross-validation: the winning settings on the whole training split
        n_copies, strength, params = best["build"]
        best["regressor"] = make_regressor(n_copies, strength, **params).fit(X, y, X_val=X_val, y_val=y_val)
    return best["regressor"], trials
