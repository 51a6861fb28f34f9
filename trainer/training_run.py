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
from dataclasses import replace
from typing import Any

import numpy as np

from nirstream.core.domain import ApplicabilityDomain
from nirstream.core.figures_of_merit import paired_rmsep_difference, regression_metrics, rmsep_interval
from nirstream.core.predictor import Predictor
from nirstream.core.registry import ModelRegistry
from trainer.announce import announce
from trainer.compare import compare_pls
from trainer.intervals import calibrate_intervals, empirical_coverage
from trainer.protocols import Protocol
from trainer.publish import decide_promotion, publish_candidate
from trainer.report import plot_kernel_activations, plot_predicted_vs_reference, plot_training_curves, write_report
from trainer.train_settings import TrainSettings

log = logging.getLogger(__name__)


def _per_target(y: np.ndarray, predicted: np.ndarray, targets: tuple[str, ...], seed: int) -> dict[str, dict]:
    """Figures of merit and the RMSEP's bootstrap interval, per target."""
    return {t: {**regression_metrics(y[:, j], predicted[:, j]), "rmsep_ci95": rmsep_interval(y[:, j], predicted[:, j], seed=seed)}
            for j, t in enumerate(targets)}


def _data_choices(protocol: Protocol, settings: TrainSettings, interval_note: str) -> dict[str, str]:
    return {
        "splits": protocol.split_description,
        "training split": "CNN weights, EMSC reference, scalers, PLS weights; PLS latent variables by repeated 10-fold "
                          "cross-validation inside it",
        "validation split": "CNN early stopping and learning-rate schedule, ensemble members' validation scores, "
                            f"prediction-interval calibration ({interval_note})"
                            + ("" if protocol.gate is not None else ", promotion gate"),
        **({"gate split": "the promotion gate only"} if protocol.gate is not None else {}),
        "test split(s)": "nothing: RMSEP, bootstrap intervals, CNN − PLS differences and interval coverage are reported only "
                         "(PLS 'ORACLE' rows pick LVs on the test set and are shown only to compare with published figures)",
        "fixed before seeing any data": f"variant {settings.variant}, architecture and training budget "
                                        f"({'quick' if settings.quick else 'full'}), coverage {settings.coverage:.0%}",
    }


def run_training(settings: TrainSettings, verbose: int | str = "auto") -> dict[str, Any]:
    started = time.perf_counter()
    protocol = settings.load_protocol()
    targets = protocol.targets
    y_train, y_val = protocol.y(protocol.train), protocol.y(protocol.validation)
    # Whole spectra, as analyzers send them: the regressor's preprocessor cuts the protocol's window.
    regressor = settings.cnn_regressor(protocol.train.n_samples, protocol.train.wavelengths, protocol.window_nm, verbose)
    log.info("fitting CNN on %d spectra for %s (%s, %d epochs max, %s augmented copies, %d member(s))",
             protocol.train.n_samples, ", ".join(targets), settings.variant, regressor.epochs,
             regressor.augmenter.n_copies if regressor.augmenter else "no", regressor.ensemble_size)
    regressor.fit(protocol.train.X, y_train, X_val=protocol.validation.X, y_val=y_val)
    train_features = regressor.features(protocol.train.X)
    domain = ApplicabilityDomain().fit(train_features)

    validation_predicted = regressor.predict(protocol.validation.X)
    intervals, interval_note = calibrate_intervals(y_val, validation_predicted, targets, settings.coverage)
    test_predictions = {name: regressor.predict(data.X) for name, data in protocol.tests.items()}  # figures and plots
    cnn_metrics = {name: _per_target(protocol.y(protocol.tests[name]), predicted, targets, settings.seed)
                   for name, predicted in test_predictions.items()}
    coverage = ({name: empirical_coverage(protocol.y(protocol.tests[name]), predicted, intervals, targets)
                 for name, predicted in test_predictions.items()} if intervals else {})
    units = {t: protocol.unit(t) for t in targets}
    registry = ModelRegistry(settings.registry)
    version = publish_candidate(
        registry, regressor, domain,
        targets=list(targets), units=units, variant=settings.variant, model_kind="deep-chemometrics-cnn",
        target_range={t: (float(np.min(y_train[:, j])), float(np.max(y_train[:, j]))) for j, t in enumerate(targets)},
        intervals=intervals,
        metrics={"validation": {t: regression_metrics(y_val[:, j], validation_predicted[:, j]) for j, t in enumerate(targets)},
                 "tests": cnn_metrics, "interval_coverage": coverage},
        training={"protocol": protocol.name, "splits": protocol.split_description, "n_train": protocol.train.n_samples,
                  "n_validation": protocol.validation.n_samples, "config": regressor.settings(),
                  "best_epoch": regressor.best_epoch_, "epochs_run": len(regressor.history_["loss"]),
                  "fit_seconds": regressor.fit_seconds_, "member_seeds": regressor.member_seeds_,
                  "best_epochs": regressor.best_epochs_, "member_validation_rmsep": regressor.member_validation_rmsep_,
                  "chosen_member": regressor.chosen_member_, "collapsed_seeds": regressor.collapsed_seeds_},
        dataset_fingerprint=protocol.train.fingerprint(),
        dataset_name=protocol.train.name,
    )
    candidate = Predictor(registry.load(version))
    gate_name, gate = protocol.gate_data
    decision = decide_promotion(registry, candidate, gate.X, protocol.y(gate), settings.promote_margin, gate_name)
    if decision.promote:
        registry.promote(version, decision.reason)
        if settings.bootstrap_servers:
            announce(settings.bootstrap_servers, settings.models_topic, version, registry.base, decision.reason)
    else:
        registry.reject(version, decision.reason)
    log.info("version %s %s: %s", version, "promoted" if decision.promote else "rejected", decision.reason)

    pls, pls_predictions = {}, {}
    if settings.pls:
        windowed = replace(protocol, train=protocol.model_view(protocol.train), validation=protocol.model_view(protocol.validation),
                           test=protocol.model_view(protocol.test),
                           extra_tests={n: protocol.model_view(d) for n, d in protocol.extra_tests.items()})
        for target in targets:
            pls[target], pls_predictions[target] = compare_pls(windowed, settings.variant, target)
    differences = {
        target: {name: paired_rmsep_difference(protocol.y(protocol.tests[name])[:, j], test_predictions[name][:, j],
                                               pls_predictions[target][name], seed=settings.seed)
                 for name in protocol.tests}
        for j, target in enumerate(targets) if target in pls_predictions
    }

    report_dir = settings.report_dir / f"{protocol.name.replace(':', '-')}-v{version}"
    report_dir.mkdir(parents=True, exist_ok=True)
    window = protocol.model_view(protocol.train).wavelengths
    images = [plot_training_curves(regressor.history_, report_dir / "training_curves.png")]
    for j, target in enumerate(targets):
        comparison = {name: (protocol.y(protocol.tests[name])[:, j], predicted[:, j]) for name, predicted in test_predictions.items()}
        images.append(plot_predicted_vs_reference(comparison, units[target], f"CNN {settings.variant}: {target}",
                                                  report_dir / f"predicted_vs_reference_{_file_safe(target)}.png",
                                                  intervals.half_width[target] if intervals else None))
    images.append(plot_kernel_activations(regressor.model_, train_features.mean(axis=0), window, report_dir / "kernel_activations.png"))
    summary = {
        "protocol": protocol.name, "targets": list(targets), "units": units, "variant": settings.variant,
        "version": version, "seed": settings.seed,
        "n": {"train": protocol.train.n_samples, "validation": protocol.validation.n_samples,
              **({"gate": protocol.gate.n_samples} if protocol.gate is not None else {}),
              **{name: data.n_samples for name, data in protocol.tests.items()}},
        "data_choices": _data_choices(protocol, settings, interval_note),
        "cnn": {"tests": cnn_metrics, "history": regressor.history_, "best_epoch": regressor.best_epoch_,
                "fit_seconds": regressor.fit_seconds_, "config": regressor.settings()},
        "intervals": {"calibration": interval_note, **(intervals.model_dump() if intervals else {}), "test_coverage": coverage},
        "pls": pls, "cnn_minus_pls": differences, "promotion": decision.__dict__, "domain_limits": domain.limits_,
        "elapsed_seconds": time.perf_counter() - started,
    }
    html_path = write_report(report_dir, summary, images)
    summary["report"] = str(html_path)
    return summary


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
