"""``nirstream train``: fit the CNN and the PLS baseline, evaluate, publish, maybe promote, report."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.domain import ApplicabilityDomain
from nirstream.core.figures_of_merit import regression_metrics
from nirstream.core.predictor import Predictor
from nirstream.core.registry import ModelRegistry
from nirstream.core.settings import SharedSettings
from trainer.announce import announce
from trainer.cnn import CNNRegressor
from trainer.compare import compare_pls
from trainer.protocols import Protocol, load_protocol
from trainer.publish import decide_promotion, publish_candidate
from trainer.report import plot_kernel_activations, plot_predicted_vs_reference, plot_training_curves, write_report
from trainer.variants import variant_steps

log = logging.getLogger(__name__)


QUICK_SAMPLES_PER_EPOCH = 1000
QUICK_SPECTRA_SEEN = 30_000  # the quick fit's budget of augmented spectra, whatever the training set's size


class TrainSettings(BaseModel):
    """What ``nirstream train`` does; defaults reproduce the paper's setup on the tablets. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    protocol: str = "cross-instrument"
    target: str | None = None
    variant: str = "augment+emsc"
    seed: int = 0
    epochs: int | None = None
    n_copies: int | None = None
    ensemble_size: int | None = Field(default=None, ge=1, description="CNN seed-ensemble members (default: CNNRegressor's, 3)")
    quick: bool = Field(default=False, description="Demo-sized CNN, one member, ~1,000 spectra per epoch: seconds, for demos and tests")
    registry: Path = Field(default_factory=lambda: SharedSettings.load().registry, description="Default: NIRSTREAM_REGISTRY")
    report_dir: Path = Path("artifacts")
    promote_margin: float = Field(default=0.0, ge=0, lt=1, description="Relative RMSEP improvement needed")
    pls: bool = True
    bootstrap_servers: str | None = None
    models_topic: str = Field(default_factory=lambda: SharedSettings.load().topics.models,
                              description="Default: NIRSTREAM_TOPICS__MODELS")
    extra_training: Path | None = Field(default=None, description="CSV/Parquet of labelled plant spectra to add")

    def cnn_regressor(self, n_train: int, wavelengths=None, window_nm: tuple[float, float] | None = None,
                      verbose: int | str = 0) -> CNNRegressor:
        """The (unfitted) regressor ``train`` fits on ``n_train`` spectra of grid ``wavelengths``."""
        n_copies, params = 50, {}  # CNNRegressor's defaults otherwise: the measured winners on the tablets
        if self.quick:
            # A demo-sized network (~4x fewer weights than the paper's, ~6x less compute) and a fixed budget:
            # about QUICK_SAMPLES_PER_EPOCH augmented spectra per epoch and QUICK_SPECTRA_SEEN in all (so a retrain
            # on 1,500 stream spectra runs 20 epochs, not 30 longer ones): seconds on 2 cores, first model or retrain.
            n_copies = max(1, round(QUICK_SAMPLES_PER_EPOCH / max(n_train, 1)))
            epochs = int(np.clip(round(QUICK_SPECTRA_SEEN / (n_copies * max(n_train, 1))), 10, 30))
            params = {"filters": (4, 8), "kernel_size": 16, "dense_units": 32, "epochs": epochs,
                      "early_stopping_start": epochs, "ensemble_size": 1}
        n_copies = self.n_copies if self.n_copies is not None else n_copies
        params |= {k: v for k, v in (("epochs", self.epochs), ("ensemble_size", self.ensemble_size)) if v is not None}
        preprocessor, augmenter = variant_steps(self.variant, wavelengths, window_nm, n_copies)
        return CNNRegressor(preprocessor, augmenter, random_state=self.seed, verbose=verbose, **params)


def _with_extra_training(protocol: Protocol, path: Path) -> Protocol:
    """Append labelled plant spectra (same grid, same target) to the training set."""
    from nirstream.core.datasets import load_table

    target, train = protocol.target, protocol.train
    extra = load_table(path, target_columns=[target])
    if extra.wavelengths.shape != train.wavelengths.shape or not np.allclose(extra.wavelengths, train.wavelengths, atol=0.01):
        raise ValueError(f"{path}: wavelength grid differs from the training data")
    combined = replace(
        train,
        X=np.vstack([train.X, extra.X]),
        y=np.concatenate([train.target(target), extra.target(target)])[:, None],
        target_names=(target,),
        units=(train.unit(target),),
        sample_names=train.sample_names + extra.sample_names,
    )
    log.info("training on %d spectra (%d added from %s)", combined.n_samples, extra.n_samples, path)
    return replace(protocol, train=combined)


def _windowed_sets(protocol: Protocol) -> dict[str, Any]:
    view = protocol.model_view
    return {"train": view(protocol.train), "validation": view(protocol.validation), "test": view(protocol.test),
            "extra_tests": {name: view(data) for name, data in protocol.extra_tests.items()}}


def run_training(settings: TrainSettings, verbose: int | str = "auto") -> dict[str, Any]:
    started = time.perf_counter()
    protocol = load_protocol(settings.protocol, settings.target, full_grid=True)
    if settings.extra_training:
        protocol = _with_extra_training(protocol, settings.extra_training)
    y_train, y_val = protocol.y(protocol.train), protocol.y(protocol.validation)
    # Whole spectra, as analyzers send them: the regressor's preprocessor cuts the protocol's window.
    regressor = settings.cnn_regressor(protocol.train.n_samples, protocol.train.wavelengths, protocol.window_nm, verbose)
    log.info("fitting CNN (%s, %d epochs max, %s augmented copies, %d member(s))", settings.variant, regressor.epochs,
             regressor.augmenter.n_copies if regressor.augmenter else "no", regressor.ensemble_size)
    regressor.fit(protocol.train.X, y_train, X_val=protocol.validation.X, y_val=y_val)
    train_features = regressor.features(protocol.train.X)
    domain = ApplicabilityDomain().fit(train_features)

    unit = protocol.train.unit(protocol.target)
    test_predictions = {name: regressor.predict(data.X) for name, data in protocol.tests.items()}  # metrics and plot
    cnn_metrics = {name: regression_metrics(protocol.y(protocol.tests[name]), predicted)
                   for name, predicted in test_predictions.items()}
    registry = ModelRegistry(settings.registry)
    version = publish_candidate(
        registry, regressor, domain,
        target=protocol.target, unit=unit, variant=settings.variant, model_kind="deep-chemometrics-cnn",
        target_range=(float(np.min(y_train)), float(np.max(y_train))),
        metrics={"validation": regression_metrics(y_val, regressor.predict(protocol.validation.X)), "tests": cnn_metrics},
        training={"protocol": protocol.name, "n_train": protocol.train.n_samples, "config": regressor.settings(), "best_epoch": regressor.best_epoch_,
                  "epochs_run": len(regressor.history_["loss"]), "fit_seconds": regressor.fit_seconds_,
                  "member_seeds": regressor.member_seeds_, "best_epochs": regressor.best_epochs_,
                  "member_validation_rmsep": regressor.member_validation_rmsep_, "chosen_member": regressor.chosen_member_,
                  "collapsed_seeds": regressor.collapsed_seeds_},
        dataset_fingerprint=protocol.train.fingerprint(),
        dataset_name=protocol.train.name,
    )
    candidate = Predictor(registry.load(version))
    decision = decide_promotion(registry, candidate, protocol.test.X, protocol.y(protocol.test), settings.promote_margin)
    if decision.promote:
        registry.promote(version, decision.reason)
        if settings.bootstrap_servers:
            announce(settings.bootstrap_servers, settings.models_topic, version, registry.base, decision.reason)
    else:
        registry.reject(version, decision.reason)
    log.info("version %s %s: %s", version, "promoted" if decision.promote else "rejected", decision.reason)

    pls = compare_pls(replace(protocol, **_windowed_sets(protocol)), settings.variant) if settings.pls else {}
    rows = [{"model": f"CNN {settings.variant} (v{version})", "test set": name, **m} for name, m in cnn_metrics.items()]
    for rule in ("min", "1se") if pls else ():
        for name, m in pls[f"cv_{rule}"]["tests"].items():
            rows.append({"model": f"PLS {settings.variant}", "test set": name, "lv": pls[f"cv_{rule}"]["lv"], "note": f"CV ({rule})", **m})
    for name, m in (pls.get("oracle_chosen_on_test", {}) if pls else {}).items():
        rows.append({"model": f"PLS {settings.variant}", "test set": name, "note": "ORACLE: LVs chosen on this test set", **m})

    report_dir = settings.report_dir / f"{protocol.name}-v{version}"
    report_dir.mkdir(parents=True, exist_ok=True)
    comparison = {name: (protocol.y(protocol.tests[name]), predicted) for name, predicted in test_predictions.items()}
    window = protocol.model_view(protocol.train).wavelengths
    images = [
        plot_training_curves(regressor.history_, report_dir / "training_curves.png"),
        plot_predicted_vs_reference(comparison, unit, f"CNN {settings.variant}", report_dir / "predicted_vs_reference.png"),
        plot_kernel_activations(regressor.model_, train_features.mean(axis=0), window, report_dir / "kernel_activations.png"),
    ]
    summary = {
        "protocol": protocol.name, "target": protocol.target, "unit": unit, "variant": settings.variant,
        "version": version, "seed": settings.seed, "cnn": {"tests": cnn_metrics, "history": regressor.history_,
        "best_epoch": regressor.best_epoch_, "fit_seconds": regressor.fit_seconds_, "config": regressor.settings()},
        "pls": pls, "promotion": decision.__dict__, "domain_limits": domain.limits_,
        "elapsed_seconds": time.perf_counter() - started,
    }
    html_path = write_report(report_dir, summary, rows, images)
    summary["report"] = str(html_path)
    return summary
