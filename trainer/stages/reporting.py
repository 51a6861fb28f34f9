"""Stage 6: the run's report (HTML/JSON with plots) and its summary, which ``nirstream train`` prints.

Which data chooses what (also written in every report):
* training split: the network's weights, EMSC's reference, the scalers, PLS weights and (by
  cross-validation inside it) the PLS latent-variable count;
* validation split: early stopping and the learning-rate schedule, the prediction intervals'
  calibration, and the promotion gate (unless a separate gate split is named);
* test split(s): nothing. Their figures, bootstrap intervals and coverages are reported only, each RMSEP beside
  the mean predictor's.
Under the small-set rule (``small_sets``) there is no validation split: out-of-fold predictions of the training split
take its place.
"""

from __future__ import annotations

import time
from typing import Any

from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.report import plot_kernel_activations, plot_predicted_vs_reference, plot_training_curves, write_report
from nirstream.trainer.stages.calibration import IntervalCalibration
from nirstream.trainer.stages.domain import DomainShares
from nirstream.trainer.stages.evaluation import HeldOutFigures
from nirstream.trainer.stages.family import FamilyChoice
from nirstream.trainer.stages.fitting import FittedCandidates
from nirstream.trainer.stages.publishing import GateOutcome
from nirstream.trainer.stages.region import RegionChoice
from nirstream.trainer.stages.screening import ScreenedData
from nirstream.trainer.train_settings import TrainSettings


def write_training_report(settings: TrainSettings, screened: ScreenedData, fitted: FittedCandidates, choice: FamilyChoice,
                          calibration: IntervalCalibration, figures: HeldOutFigures, outcome: GateOutcome,
                          started: float, region: RegionChoice, domain: DomainShares) -> dict[str, Any]:
    """Write the report directory (``<report_dir>/<protocol>-v<version>``) and return the summary it holds."""
    protocol = screened.protocol
    targets, deployed, regressor, intervals = protocol.targets, choice.deployed, fitted.regressor, calibration.intervals
    units = {t: protocol.unit(t) for t in targets}
    report_dir = settings.report_dir / f"{protocol.name.replace(':', '-')}-v{outcome.version}"
    report_dir.mkdir(parents=True, exist_ok=True)
    images = [plot_training_curves(regressor.history_, report_dir / "training_curves.png")] if regressor is not None else []
    for j, target in enumerate(targets):
        comparison = {name: (protocol.y(protocol.tests[name])[:, j], predicted[:, j])
                      for name, predicted in figures.predictions.items()}
        if protocol.cross_validated:  # small-set rule: the out-of-fold predictions that chose (no test rows, maybe)
            comparison["training (out-of-fold)"] = (protocol.y(protocol.train)[:, j], choice.validation_predicted[:, j])
        if not comparison:
            continue
        images.append(plot_predicted_vs_reference(comparison, units[target], f"{deployed.family.upper()} {settings.variant}: {target}",
                                                  report_dir / f"predicted_vs_reference_{_file_safe(target)}.png",
                                                  intervals.half_width[target] if intervals else None))
    if regressor is not None:
        window = protocol.model_view(protocol.train).wavelengths
        images.append(plot_kernel_activations(regressor.model_, regressor.features(protocol.train.X).mean(axis=0), window,
                                              report_dir / "kernel_activations.png"))
    summary = {
        "protocol": protocol.name, "targets": list(targets), "units": units, "variant": settings.variant,
        "version": outcome.version, "seed": settings.seed,
        "n": {"train": protocol.train.n_samples, "validation": protocol.validation.n_samples,
              **({"gate": protocol.gate.n_samples} if protocol.gate is not None else {}),
              **{name: data.n_samples for name, data in protocol.tests.items()}},
        "data_choices": data_choices(protocol, settings, calibration),
        "small_set": protocol.small_set,  # the small-set rule's reason, or None (hold-out validation)
        "deployed": {"family": deployed.family, "reason": choice.reason, "validation_rmsep": choice.validation_rmsep,
                     "chosen_on": choice.chosen_on, "mean_predictor_validation_rmsep": choice.mean_predictor_rmsep,
                     "tests": figures.metrics, **deployed.training},
        # the model without skill, beside every RMSEP: test set -> target -> RMSEP of predicting the training mean
        "mean_predictor": figures.mean_predictor,
        "cnn": ({"tests": figures.cnn_metrics, "history": regressor.history_, "best_epoch": regressor.best_epoch_,
                 "fit_seconds": regressor.fit_seconds_, "config": regressor.settings()} if regressor is not None else {}),
        "intervals": {"calibration": calibration.note, **(intervals.model_dump() if intervals else {}),
                      "test_coverage": figures.coverage},
        "search": fitted.search, "cnn_failure": fitted.cnn_failure,
        "pls": fitted.pls_baseline, "cnn_minus_pls": figures.cnn_minus_pls, "deployed_minus_pls": figures.deployed_minus_pls,
        "left_out": screened.as_report(), "not_predicted": screened.not_predicted(),
        "promotion": outcome.decision.__dict__, "domain_limits": outcome.domain_limits,
        "region": region.as_report(), "domain": domain.as_report(),
        "elapsed_seconds": time.perf_counter() - started,
    }
    html_path = write_report(report_dir, summary, images)
    summary["report"] = str(html_path)
    return summary


def data_choices(protocol: Protocol, settings: TrainSettings, calibration: IntervalCalibration) -> dict[str, str]:
    """What each split chose in this run, in words (the report's first table)."""
    if protocol.cross_validated:
        return _small_set_choices(protocol, settings, calibration)
    interval_use = f"prediction-interval calibration ({calibration.note})"
    by_cv = calibration.calibration in ("cross-validation", "pooled")  # the training split (also) calibrated
    validation_uses = ["CNN early stopping and learning-rate schedule", "ensemble members' validation scores",
                       f"the deployed family (CNN or PLS, settings: {settings.family})",
                       *([] if calibration.calibration == "cross-validation" else [interval_use]), *([] if protocol.gate is not None else ["promotion gate"])]
    return {
        "splits": protocol.split_description,
        "training split": "CNN weights, EMSC reference, scalers, PLS weights, domain limits (out-of-fold T², Q); spectral "
                          "region (unless given), PLS pretreatment and latent variables by "
                          "repeated 10-fold cross-validation inside it" + (f"; {interval_use}" if by_cv else ""),
        "validation split": ", ".join(validation_uses),
        **({"gate split": "the promotion gate only"} if protocol.gate is not None else {}),
        "test split(s)": "nothing: RMSEP, bootstrap intervals, CNN − PLS differences and interval coverage are reported only "
                         "(PLS 'ORACLE' rows pick LVs on the test set and are shown only to compare with published figures)",
        **({"search": f"CNN hyper-parameters over Optuna trials within {settings.search_budget}, each scored by "
                      "validation RMSEP, or where the validation targets spread less than half as much as the training "
                      "targets by 3-fold cross-validation on the training split (the winner's score is the best of "
                      "many: optimistic)"} if settings.search_budget else {}),
        # not "fixed before seeing any data": the CNN's training defaults were picked on the tablets, partly from
        # their test figures (nirstream.trainer.cnn's docstring says how); the report says so instead
        "set by the settings, not by this run's data": f"variant {settings.variant}, "
                                        + ("search space and budget" if settings.search_budget else
                                           f"architecture and training budget ({'quick' if settings.quick else 'full'}; "
                                           "the CNN's training defaults were chosen earlier on the tablets, partly from "
                                           "their test figures: see nirstream.trainer.cnn)")
                                        + f", coverage {settings.coverage:.0%}, interval calibration {settings.calibration}",
    }


def _small_set_choices(protocol: Protocol, settings: TrainSettings, calibration: IntervalCalibration) -> dict[str, str]:
    """``data_choices`` under the small-set rule: the training split chooses everything, by cross-validation."""
    gate = ("the promotion gate (the candidate's out-of-fold predictions against the champion's predictions of the "
            "same spectra, and against the mean of the other folds)" if protocol.gate is None else "")
    return {
        "splits": protocol.split_description,
        "small-set rule": f"{protocol.small_set} (nirstream.trainer.small_sets)",
        "training split": "PLS weights, EMSC reference, scalers; by repeated 10-fold cross-validation inside it: PLS "
                          "pretreatment and latent variables; by 5-fold out-of-fold predictions of it: the deployed family "
                          f"(settings: {settings.family}), prediction-interval calibration ({calibration.note})"
                          + (f" and {gate}" if gate else ""),
        **({"gate split": "the promotion gate only"} if protocol.gate is not None else {}),
        "test split(s)": ("nothing: RMSEP beside the mean predictor's, bootstrap intervals and interval coverage are "
                          "reported only" if protocol.tests else
                          "none in this file: evaluate the model later with nirstream evaluate --data on another file"),
        "set by the settings, not by this run's data": f"variant {settings.variant}, coverage {settings.coverage:.0%}",
    }


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
