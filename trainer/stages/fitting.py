"""Stage 1: fit the candidate families (the CNN, searched or fixed; the deployable PLS) and the PLS baseline."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.base import clone

from nirstream.trainer.cnn import NetworkCollapsed
from nirstream.trainer.comparison import compare_pls
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.pls_family import choose_linear_family, family_rule, fit_deployable_pls, predict_linear
from nirstream.trainer.regressor_building import cnn_regressor, regressor_factory
from nirstream.trainer.search import parse_budget, search_cnn, search_scoring
from nirstream.trainer.small_sets import cnn_refusal
from nirstream.trainer.train_settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One fitted model family, ready to publish: what predicts, on what features, with which figures."""

    family: str  # "cnn" or "pls"
    model: Any  # keras.Model or LinearModel
    preprocessor: Any  # the fitted SpectralPreprocessor the bundle stores
    target_mean: list[float]
    target_scale: list[float]
    predict: Any  # raw spectra -> (n, k) in target units
    training: dict[str, Any]
    refit: Any  # (X, Y) of some training rows -> a predict function of the same family and settings


@dataclass
class FittedCandidates:
    """What stage 1 fitted: the candidates by family, the CNN regressor itself (for its report), the PLS baseline."""

    candidates: dict[str, Candidate]
    regressor: Any = None  # the fitted CNNRegressor, if a CNN was fitted and learnt
    search: dict | None = None  # the hyper-parameter search's record
    cnn_failure: str | None = None  # why the CNN is not a candidate although asked for
    pls_baseline: dict[str, dict] = field(default_factory=dict)  # per target: compare_pls's figures
    pls_predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per target and test set


def fit_candidates(settings: TrainSettings, protocol: Protocol, verbose: int | str) -> FittedCandidates:
    fitted = FittedCandidates(candidates={})
    unsupported = cnn_refusal(protocol.train.n_samples, protocol.cross_validated)  # the small-set rule
    if settings.family in ("auto", "cnn") and unsupported:
        if settings.family == "cnn" or not settings.pls:
            raise ValueError(f"{unsupported} (nirstream.trainer.small_sets); train --family pls")
        fitted.cnn_failure = f"{unsupported}; PLS is deployed"
        log.info(fitted.cnn_failure)
    elif settings.family in ("auto", "cnn"):
        try:
            fitted.regressor, fitted.search = _fit_cnn(settings, protocol, verbose)
            fitted.candidates["cnn"] = _cnn_candidate(fitted.regressor, protocol)
        except NetworkCollapsed as exc:
            if settings.family == "cnn" or not settings.pls:
                raise
            fitted.cnn_failure = f"the CNN did not learn these data ({exc}); PLS is deployed"
            log.warning(fitted.cnn_failure)
    if settings.pls:
        windowed = replace(protocol, train=protocol.model_view(protocol.train), validation=protocol.model_view(protocol.validation),
                           test=protocol.model_view(protocol.test),
                           extra_tests={n: protocol.model_view(d) for n, d in protocol.extra_tests.items()})
        for target in protocol.targets:
            log.info("PLS for %s: latent variables by cross-validation on the training split", target)
            fitted.pls_baseline[target], fitted.pls_predictions[target] = compare_pls(windowed, settings.variant, target)
        if settings.family in ("auto", "pls"):
            fitted.candidates["pls"] = _pls_candidate(protocol, settings.seed)
    return fitted


def _fit_cnn(settings: TrainSettings, protocol: Protocol, verbose: int | str) -> tuple[Any, dict | None]:
    """The CNN regressor (searched within the budget, or the fixed configuration) and the search's record."""
    y_train, y_val = protocol.y(protocol.train), protocol.y(protocol.validation)
    if settings.search_budget:
        budget = parse_budget(settings.search_budget)
        scoring = search_scoring(protocol)
        log.info("searching CNN hyper-parameters (%s scores each trial) for %.0f s", scoring, budget)
        make = regressor_factory(settings, protocol.train.wavelengths, protocol.window_nm)
        regressor, trials = search_cnn(protocol, make, budget, seed=settings.seed, epochs=settings.epochs)
        return regressor, {"budget_seconds": budget, "scoring": scoring, "trials": trials,
                           "best": min(trials, key=lambda t: t["score"])}
    # Whole spectra, as analyzers send them: the regressor's preprocessor cuts the protocol's window.
    regressor = cnn_regressor(settings, protocol.train.n_samples, protocol.train.wavelengths, protocol.window_nm, verbose)
    log.info("fitting CNN on %d spectra for %s (%s, %d epochs max, %s augmented copies, %d member(s))",
             protocol.train.n_samples, ", ".join(protocol.targets), settings.variant, regressor.epochs,
             regressor.augmenter.n_copies if regressor.augmenter else "no", regressor.ensemble_size)
    regressor.fit(protocol.train.X, y_train, X_val=protocol.validation.X, y_val=y_val)
    return regressor, None


def _cnn_candidate(regressor, protocol: Protocol) -> Candidate:
    def refit(X, Y):
        fitted = clone(regressor).fit(X, Y, X_val=protocol.validation.X, y_val=protocol.y(protocol.validation))
        return lambda X_new: np.reshape(fitted.predict(X_new), (len(X_new), -1))

    return Candidate("cnn", regressor.model_, regressor.preprocessor_, regressor.target_mean_.tolist(),
                     regressor.target_scale_.tolist(), lambda X: np.reshape(regressor.predict(X), (len(X), -1)),
                     {"config": regressor.settings(), "best_epoch": regressor.best_epoch_,
                      "epochs_run": len(regressor.history_["loss"]), "fit_seconds": regressor.fit_seconds_,
                      "member_seeds": regressor.member_seeds_, "best_epochs": regressor.best_epochs_,
                      "member_validation_rmsep": regressor.member_validation_rmsep_,
                      "chosen_member": regressor.chosen_member_, "collapsed_seeds": regressor.collapsed_seeds_}, refit)


def _pls_candidate(protocol: Protocol, seed: int) -> Candidate:
    """The deployable PLS: the scatter correction, and per target a linear pretreatment operator and its latent
    variables, all by repeated 10-fold cross-validation on the training split (``choose_linear_family``). Training
    data alone chooses, so the validation split is left to choose the family."""
    screen = family_rule(protocol)
    choice = choose_linear_family(protocol, random_state=seed)
    variant, latent_variables, operators = choice.variant, choice.latent_variables, choice.operators
    tried = choice.tried
    model, preprocessor = fit_deployable_pls(protocol, variant, latent_variables, operators)
    k = len(protocol.targets)

    def refit(X, Y):
        rows = replace(protocol.train, X=X, y=Y, target_names=protocol.targets, units=tuple(map(protocol.unit, protocol.targets)),
                       sample_names=tuple(str(i) for i in range(len(X))), splits={})
        fold_model, fold_preprocessor = fit_deployable_pls(replace(protocol, train=rows), variant, latent_variables,
                                                             operators)
        return lambda X_new: predict_linear(fold_model, fold_preprocessor, X_new)

    return Candidate("pls", model, preprocessor, [0.0] * k, [1.0] * k,
                     lambda X: predict_linear(model, preprocessor, X),
                     {"pls_variant": variant, "latent_variables": latent_variables, "operators": operators,
                      "lv_rule": f"operator ({len(screen.operators)} screened) and LVs per target by repeated 10-fold CV on "
                                 f"the training split, rule {screen.rule!r}",
                      "pls_variant_rule": f"the shared preprocessor ({', '.join(screen.variants)}) with the lowest RMSECV "
                                          "on the training split (mean over targets, in training standard deviations)"
                                          + ("" if screen.variant_rule == "min" else ", the simplest within one standard "
                                             "error of it"),
                      "pls_variants_tried": tried}, refit)
