"""``nirstream train``: fit the CNN and the PLS baselines, calibrate intervals, publish, gate, report.

Which data chooses what (also written in every report):
* training split: the network's weights, EMSC's reference, the scalers, PLS weights and (by
  cross-validation inside it) the PLS latent-variable count;
* validation split: early stopping and the learning-rate schedule, the prediction intervals'
  calibration, and the promotion gate (unless a separate gate split is named);
* test split(s): nothing. Their figures, bootstrap intervals and coverages are reported only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.base import clone

from nirstream.core.artifacts.bundle import PredictionIntervals
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.chemometrics.figures_of_merit import figures_per_target, paired_rmsep_difference, regression_metrics, rmse
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.trainer.announce import announce
from nirstream.trainer.cnn import NetworkCollapsed
from nirstream.trainer.compare import compare_pls
from nirstream.trainer.intervals import (CALIBRATION_FOLDS, calibrate_intervals, cross_validated_predictions, empirical_coverage,
                               narrow_targets, representativeness_warning)
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.pls_family import PLS_COPIES, PLS_VARIANTS, fit_deployable_pls, predict_linear
from nirstream.trainer.publish import decide_promotion, publish_candidate
from nirstream.trainer.search import parse_budget, search_cnn
from nirstream.trainer.report import plot_kernel_activations, plot_predicted_vs_reference, plot_training_curves, write_report
from nirstream.trainer.train_settings import TrainSettings

log = logging.getLogger(__name__)

PARITY_SPECTRA = 64  # real training spectra on which the ONNX export must match the Keras network


def _data_choices(protocol: Protocol, settings: TrainSettings, interval_note: str, calibration: str) -> dict[str, str]:
    interval_use = f"prediction-interval calibration ({interval_note})"
    by_cv = calibration == "cross-validation"
    validation_uses = ["CNN early stopping and learning-rate schedule", "ensemble members' validation scores",
                       f"the deployed family (CNN or PLS, settings: {settings.family})",
                       *([] if by_cv else [interval_use]), *([] if protocol.gate is not None else ["promotion gate"])]
    return {
        "splits": protocol.split_description,
        "training split": "CNN weights, EMSC reference, scalers, PLS weights; PLS pretreatment and latent variables by "
                          "repeated 10-fold cross-validation inside it" + (f"; {interval_use}" if by_cv else ""),
        "validation split": ", ".join(validation_uses),
        **({"gate split": "the promotion gate only"} if protocol.gate is not None else {}),
        "test split(s)": "nothing: RMSEP, bootstrap intervals, CNN − PLS differences and interval coverage are reported only "
                         "(PLS 'ORACLE' rows pick LVs on the test set and are shown only to compare with published figures)",
        **({"search": f"CNN hyper-parameters by validation RMSEP over Optuna trials within {settings.search_budget} "
                      "(the winner's validation figure is the best of many: optimistic)"} if settings.search_budget else {}),
        "fixed before seeing any data": f"variant {settings.variant}, "
                                        + ("search space and budget" if settings.search_budget else
                                           f"architecture and training budget ({'quick' if settings.quick else 'full'})")
                                        + f", coverage {settings.coverage:.0%}, interval calibration {settings.calibration}",
    }


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


def _pls_candidate(protocol: Protocol, windowed: Protocol, baseline_variant: str, baseline: dict, seed: int) -> Candidate:
    """The deployable PLS: for each pretreatment (raw, EMSC, the run's variant, SNV, Savitzky–Golay derivatives) one
    PLS per target with LVs by cross-validation on the training split. Its score is the RMSECV at the chosen LVs, mean
    over targets in training standard deviations; the simplest pretreatment (in that order) within one standard error
    of the best score is kept: with a few dozen spectra the lowest RMSECV is often noise, and the parsimonious choice
    predicts new samples better. Training data alone chooses, so the validation split is left to choose the family."""
    scale = protocol.y(protocol.train).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    tried = {}
    for variant in dict.fromkeys((*PLS_VARIANTS[:2], baseline_variant, *PLS_VARIANTS[2:])):
        selections = baseline if variant == baseline_variant else {
            target: compare_pls(windowed, variant, target)[0] for target in protocol.targets}
        latent_variables = {target: selections[target]["cv_min"]["lv"] for target in protocol.targets}
        rmsecv = np.array([selections[t]["rmsecv"][latent_variables[t] - 1] for t in protocol.targets])
        error = np.array([selections[t]["rmsecv_standard_error"][latent_variables[t] - 1] for t in protocol.targets])
        tried[variant] = {"latent_variables": latent_variables, "rmsecv": rmsecv.tolist(),
                          "score": float(np.mean(rmsecv / scale)), "standard_error": float(np.mean(error / scale))}
    best = min(tried.values(), key=lambda t: t["score"])
    variant = next(v for v, t in tried.items() if t["score"] <= best["score"] + best["standard_error"])
    latent_variables = tried[variant]["latent_variables"]
    model, preprocessor = fit_deployable_pls(protocol, variant, latent_variables, random_state=seed)
    k = len(protocol.targets)

    def refit(X, Y):
        rows = replace(protocol.train, X=X, y=Y, target_names=protocol.targets, units=tuple(map(protocol.unit, protocol.targets)),
                       sample_names=tuple(str(i) for i in range(len(X))), splits={})
        fold_model, fold_preprocessor = fit_deployable_pls(replace(protocol, train=rows), variant, latent_variables, seed)
        return lambda X_new: predict_linear(fold_model, fold_preprocessor, X_new)

    return Candidate("pls", model, preprocessor, [0.0] * k, [1.0] * k,
                     lambda X: predict_linear(model, preprocessor, X),
                     {"pls_variant": variant, "latent_variables": latent_variables,
                      "lv_rule": "min RMSECV, repeated 10-fold CV on the training split",
                      "pls_variant_rule": "the simplest pretreatment whose RMSECV on the training split (mean over targets, in training "
                                          "standard deviations) is within one standard error of the lowest",
                      "pls_variants_tried": tried, "augmented_copies": PLS_COPIES}, refit)


def _choose_family(candidates: dict[str, Candidate], validation_predictions: dict[str, np.ndarray], protocol: Protocol,
                   wanted: str) -> tuple[Candidate, str, dict]:
    """The family to deploy: the one asked for, or (``auto``) the lower validation RMSEP, averaged over targets
    relative to the other family (unit-free). Ties keep the CNN."""
    y_val = protocol.y(protocol.validation)
    scores = {name: dict(zip(protocol.targets, rmse(predicted, y_val, axis=0).tolist(), strict=True))
              for name, predicted in validation_predictions.items()}
    if wanted != "auto" or len(candidates) == 1:
        name = wanted if wanted != "auto" else next(iter(candidates))
        why = f"family={wanted}" if wanted != "auto" else "the only family fitted (PLS off)"
        return candidates[name], f"{name.upper()} ({why})", scores
    ratio = float(np.mean([scores["pls"][t] / max(scores["cnn"][t], 1e-12) for t in protocol.targets]))
    name = "pls" if ratio < 1 else "cnn"
    versus = ", ".join(f"{t} CNN {scores['cnn'][t]:.3f} / PLS {scores['pls'][t]:.3f}" for t in protocol.targets)
    return candidates[name], f"{name.upper()}: lower validation RMSEP ({versus}; PLS/CNN ratio {ratio:.3f})", scores


def _calibrate(settings: TrainSettings, deployed: Candidate, protocol: Protocol,
               validation_predicted: np.ndarray) -> tuple[PredictionIntervals | None, str, str]:
    """The deployed model's intervals, the report's note on them, and where they were calibrated: on the validation
    residuals, or (``cross-validation``, or ``auto`` when validation spans much less than training) on out-of-fold
    residuals of the training split."""
    targets, y_train, y_val = protocol.targets, protocol.y(protocol.train), protocol.y(protocol.validation)
    narrow = representativeness_warning(y_train, y_val, targets)
    calibration = settings.calibration if settings.calibration != "auto" else "cross-validation" if narrow else "validation"
    if calibration == "validation":
        intervals, note = calibrate_intervals(y_val, validation_predicted, targets, settings.coverage)
        if narrow and intervals:
            log.warning(narrow)
            note += f"; WARNING: {narrow}"
        return intervals, note, calibration
    if narrow and settings.calibration == "auto":
        log.warning("%s: calibrating on cross-validated training residuals instead", narrow)
    log.info("calibrating intervals on %d-fold cross-validated residuals of the training split", CALIBRATION_FOLDS)
    y_oof, predicted_oof = cross_validated_predictions(deployed.refit, protocol.train.X, y_train, CALIBRATION_FOLDS,
                                                       settings.seed)
    intervals, note = calibrate_intervals(y_oof, predicted_oof, targets, settings.coverage, source="training")
    if narrow and settings.calibration == "auto":
        note += f" (auto: {narrow})"
    return intervals, note, calibration


def _fit_cnn(settings: TrainSettings, protocol: Protocol, verbose: int | str) -> tuple[Any, dict | None]:
    """The CNN regressor (searched within the budget, or the fixed configuration) and the search's record."""
    y_train, y_val = protocol.y(protocol.train), protocol.y(protocol.validation)
    if settings.search_budget:
        budget = parse_budget(settings.search_budget)
        log.info("searching CNN hyper-parameters on the validation split for %.0f s", budget)
        make = settings.regressor_factory(protocol.train.wavelengths, protocol.window_nm)
        regressor, trials = search_cnn(protocol, make, budget, seed=settings.seed, epochs=settings.epochs)
        return regressor, {"budget_seconds": budget, "trials": trials, "best": min(trials, key=lambda t: t["score"])}
    # Whole spectra, as analyzers send them: the regressor's preprocessor cuts the protocol's window.
    regressor = settings.cnn_regressor(protocol.train.n_samples, protocol.train.wavelengths, protocol.window_nm, verbose)
    log.info("fitting CNN on %d spectra for %s (%s, %d epochs max, %s augmented copies, %d member(s))",
             protocol.train.n_samples, ", ".join(protocol.targets), settings.variant, regressor.epochs,
             regressor.augmenter.n_copies if regressor.augmenter else "no", regressor.ensemble_size)
    regressor.fit(protocol.train.X, y_train, X_val=protocol.validation.X, y_val=y_val)
    return regressor, None


def run_training(settings: TrainSettings, verbose: int | str = "auto") -> dict[str, Any]:
    started = time.perf_counter()
    protocol = settings.load_protocol()
    targets = protocol.targets
    y_train, y_val = protocol.y(protocol.train), protocol.y(protocol.validation)
    candidates: dict[str, Candidate] = {}
    regressor, search, cnn_failure = None, None, None
    if settings.family in ("auto", "cnn"):
        try:
            regressor, search = _fit_cnn(settings, protocol, verbose)
            candidates["cnn"] = _cnn_candidate(regressor, protocol)
        except NetworkCollapsed as exc:
            if settings.family == "cnn" or not settings.pls:
                raise
            cnn_failure = f"the CNN did not learn these data ({exc}); PLS is deployed"
            log.warning(cnn_failure)

    pls, pls_predictions = {}, {}
    if settings.pls:
        windowed = replace(protocol, train=protocol.model_view(protocol.train), validation=protocol.model_view(protocol.validation),
                           test=protocol.model_view(protocol.test),
                           extra_tests={n: protocol.model_view(d) for n, d in protocol.extra_tests.items()})
        for target in targets:
            log.info("PLS for %s: latent variables by cross-validation on the training split", target)
            pls[target], pls_predictions[target] = compare_pls(windowed, settings.variant, target)
        if settings.family in ("auto", "pls"):
            candidates["pls"] = _pls_candidate(protocol, windowed, settings.variant, pls, settings.seed)
    validation_predictions = {name: c.predict(protocol.validation.X) for name, c in candidates.items()}
    deployed, family_reason, family_scores = _choose_family(candidates, validation_predictions, protocol, settings.family)
    if cnn_failure:
        family_reason = f"PLS: {cnn_failure}"
    log.info("deploying %s", family_reason)

    train_features = deployed.preprocessor.transform(protocol.train.X)
    domain = ApplicabilityDomain().fit(train_features)
    validation_predicted = validation_predictions[deployed.family]
    intervals, interval_note, calibration = _calibrate(settings, deployed, protocol, validation_predicted)
    test_predictions = {name: deployed.predict(data.X) for name, data in protocol.tests.items()}  # figures and plots
    deployed_metrics = {name: figures_per_target(protocol.y(protocol.tests[name]), predicted, targets, settings.seed)
                        for name, predicted in test_predictions.items()}
    cnn_predictions = {}  # the CNN's test predictions, deployed or not: its figures and the CNN - PLS differences
    if "cnn" in candidates:
        cnn_predictions = test_predictions if deployed.family == "cnn" else {
            name: candidates["cnn"].predict(data.X) for name, data in protocol.tests.items()}
    cnn_metrics = {name: figures_per_target(protocol.y(protocol.tests[name]), predicted, targets, settings.seed)
                   for name, predicted in cnn_predictions.items()}
    coverage = ({name: empirical_coverage(protocol.y(protocol.tests[name]), predicted, intervals, targets)
                 for name, predicted in test_predictions.items()} if intervals else {})
    units = {t: protocol.unit(t) for t in targets}
    registry = ModelRegistry(settings.registry)
    version = publish_candidate(
        registry, deployed.model, deployed.preprocessor, domain, by=settings.by, parity_features=train_features[:PARITY_SPECTRA],
        targets=list(targets), units=units, variant=settings.variant, target_mean=deployed.target_mean,
        target_scale=deployed.target_scale,
        model_kind="deep-chemometrics-cnn" if deployed.family == "cnn" else "pls",
        target_range={t: (float(np.min(y_train[:, j])), float(np.max(y_train[:, j]))) for j, t in enumerate(targets)},
        intervals=intervals,
        metrics={"validation": {t: regression_metrics(y_val[:, j], validation_predicted[:, j]) for j, t in enumerate(targets)},
                 "tests": deployed_metrics, "interval_coverage": coverage},
        training={"protocol": protocol.name, "family": deployed.family, "family_choice": family_reason,
                  "splits": protocol.split_description, "n_train": protocol.train.n_samples,
                  "n_validation": protocol.validation.n_samples, **deployed.training},
        dataset_fingerprint=protocol.train.fingerprint(),
        dataset_name=protocol.train.name,
    )
    candidate = Predictor(registry.load(version))
    gate_name, gate = protocol.gate_data
    # Skill is judged against predicting the training mean, unless the gate data is too narrow to show skill (the
    # tablets' validate_1 spans 11 % of the training spread: a constant near its centre beats any honest model there).
    gate_narrow = narrow_targets(y_train, protocol.y(gate), targets)
    decision = decide_promotion(registry, candidate, gate.X, protocol.y(gate), settings.promote_margin, gate_name,
                                training_means=None if gate_narrow else y_train.mean(axis=0))
    if gate_narrow:
        decision.reason += (f" (no-skill check skipped: the {gate_name} targets spread less than half as much as the "
                            f"training targets: {', '.join(gate_narrow)})")
    if decision.promote:
        registry.promote(version, decision.reason, by=settings.by)
        if settings.bootstrap_servers:
            announce(settings.bootstrap_servers, settings.models_topic, version, registry.base, decision.reason)
    else:
        registry.reject(version, decision.reason, by=settings.by)
    log.info("version %s %s: %s", version, "promoted" if decision.promote else "rejected", decision.reason)

    differences = _differences_from_baseline_pls(protocol, cnn_predictions, pls_predictions, settings.seed)
    deployed_differences = _differences_from_baseline_pls(protocol, test_predictions, pls_predictions, settings.seed)

    report_dir = settings.report_dir / f"{protocol.name.replace(':', '-')}-v{version}"
    report_dir.mkdir(parents=True, exist_ok=True)
    images = [plot_training_curves(regressor.history_, report_dir / "training_curves.png")] if regressor is not None else []
    for j, target in enumerate(targets):
        comparison = {name: (protocol.y(protocol.tests[name])[:, j], predicted[:, j]) for name, predicted in test_predictions.items()}
        images.append(plot_predicted_vs_reference(comparison, units[target], f"{deployed.family.upper()} {settings.variant}: {target}",
                                                  report_dir / f"predicted_vs_reference_{_file_safe(target)}.png",
                                                  intervals.half_width[target] if intervals else None))
    if regressor is not None:
        window = protocol.model_view(protocol.train).wavelengths
        images.append(plot_kernel_activations(regressor.model_, regressor.features(protocol.train.X).mean(axis=0), window,
                                              report_dir / "kernel_activations.png"))
    summary = {
        "protocol": protocol.name, "targets": list(targets), "units": units, "variant": settings.variant,
        "version": version, "seed": settings.seed,
        "n": {"train": protocol.train.n_samples, "validation": protocol.validation.n_samples,
              **({"gate": protocol.gate.n_samples} if protocol.gate is not None else {}),
              **{name: data.n_samples for name, data in protocol.tests.items()}},
        "data_choices": _data_choices(protocol, settings, interval_note, calibration),
        "deployed": {"family": deployed.family, "reason": family_reason, "validation_rmsep": family_scores,
                     "tests": deployed_metrics, **deployed.training},
        "cnn": ({"tests": cnn_metrics, "history": regressor.history_, "best_epoch": regressor.best_epoch_,
                 "fit_seconds": regressor.fit_seconds_, "config": regressor.settings()} if regressor is not None else {}),
        "intervals": {"calibration": interval_note, **(intervals.model_dump() if intervals else {}), "test_coverage": coverage},
        "search": search, "cnn_failure": cnn_failure,
        "pls": pls, "cnn_minus_pls": differences, "deployed_minus_pls": deployed_differences,
        "promotion": decision.__dict__, "domain_limits": domain.limits_,
        "elapsed_seconds": time.perf_counter() - started,
    }
    html_path = write_report(report_dir, summary, images)
    summary["report"] = str(html_path)
    return summary


def _differences_from_baseline_pls(protocol: Protocol, predictions: dict[str, np.ndarray], pls_predictions: dict,
                                   seed: int) -> dict[str, dict]:
    """Per target and test set: RMSEP(model) − RMSEP(baseline CV-PLS) with its paired bootstrap interval."""
    return {target: {name: paired_rmsep_difference(protocol.y(protocol.tests[name])[:, j], predictions[name][:, j],
                                                   pls_predictions[target][name], seed=seed)
                     for name in protocol.tests}
            for j, target in enumerate(protocol.targets) if target in pls_predictions and predictions}


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
