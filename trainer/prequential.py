"""The learning loop, offline: prequential (progressive) validation of the retraining policy on a time-ordered file.

Each lab-referenced spectrum is predicted, at its own time, by the model the loop had then, which was trained only on
lab values that had *arrived* by then (a lab value arrives after its real delay). Events are taken in time order: at
every lab arrival and every spectrum the service's ``retrain_policy.decide`` is consulted with what the service would
know (pairs newer than the model, the model's own recent errors, minutes since the last retrain started); a retrain
holds out the newest ``gate.holdout_pairs`` pairs, fits a candidate on the rest and lets ``time_forward_gate.judge``
decide, as ``retrain_job`` does. This is stream learning's progressive validation with delayed labels (river's
``evaluate.progressive_val_score`` with ``delay``), written out here because the learner is a batch PLS refitted when
a policy says so and judged by a gate, not an incremental ``learn_one`` model, and because the figures need paired
bootstrap intervals.

Differences from the service, stated: a passing candidate serves at once (the gate's ``propose`` mode would wait for a
person's approval); a retrain takes no time; the gate has no base validation split (the calibration part is training
data here); retrains are PLS (LVs by cross-validation on the training data): the CNN is too slow to refit at every
retrain step on a CPU.

Beside the loop: the static model (the base model, never retrained) and the mean predictor (the mean of the lab values
known at each spectrum's time: a causal mean).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import paired_rmsep_difference, rmsep_interval
from nirstream.trainer.pls import cross_validate_lvs, fit_pls
from nirstream.trainer.prequential_data import TimeOrderedData
from nirstream.trainer.retrain_policy import decide
from nirstream.trainer.service_settings import GatePolicy, RetrainPolicy
from nirstream.trainer.time_forward_gate import judge
from nirstream.trainer.training_window import DEFAULT_WINDOWS, TrainingWindow, choose_window

Predict = Callable[[np.ndarray], np.ndarray]  # spectra (n, p) on the file's grid -> values (n,)
MIN_TRAINING = 12  # spectra a retrain fits on at least: 10-fold cross-validation needs more than 10


@dataclass(frozen=True)
class PrequentialSettings:
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)
    gate: GatePolicy = field(default_factory=GatePolicy)
    windows: tuple[str, ...] = DEFAULT_WINDOWS
    variant: str = "none"  # PLS pretreatment of the retrains
    lv_rule: str = "min"
    cv_repeats: int = 1  # repeated 10-fold CV for the LV count; 1 keeps a retrain to a second or two
    seed: int = 0


@dataclass(frozen=True)
class ModelVersion:
    """A model the loop served. ``trained_until``: the latest lab arrival among its training pairs (-inf: none from
    the stream); ``training_rows``: the file rows it trained on (calibration part included)."""

    version: int
    serving_from: float
    trained_until: float
    training_rows: tuple[int, ...]
    window: str
    latent_variables: int | None


@dataclass(frozen=True)
class RetrainRecord:
    at: float
    reason: str
    status: str  # promoted | rejected | skipped
    version: int | None
    window: str | None = None
    window_reason: str = ""
    window_scores: dict[str, float] = field(default_factory=dict)
    latent_variables: int | None = None
    training_pairs: int = 0
    holdout_pairs: int = 0
    verdict: dict[str, Any] | None = None


@dataclass(frozen=True)
class Step:
    """One evaluated spectrum: what each predictor said at its time (reference NaN: no lab value)."""

    row: int
    time: float
    reference: float
    loop: float
    static: float
    mean: float
    version: int


@dataclass(frozen=True)
class PrequentialResult:
    target: str
    steps: tuple[Step, ...]
    versions: tuple[ModelVersion, ...]
    retrains: tuple[RetrainRecord, ...]
    figures: dict[str, Any]

    def as_record(self) -> dict[str, Any]:
        """Plain JSON: NaN (no lab value) and -inf (no stream pair trained on) become null."""
        return _json_plain({"target": self.target, "figures": self.figures,
                            "versions": [asdict(v) for v in self.versions], "retrains": [asdict(r) for r in self.retrains],
                            "steps": [asdict(s) for s in self.steps]})


def _json_plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_plain(v) for v in value]
    return value


def fit_retrain_pls(X: np.ndarray, y: np.ndarray, settings: PrequentialSettings,
                    unique_rows: np.ndarray | None = None) -> tuple[Predict, int]:
    """PLS with LVs by cross-validation on the training data (each spectrum once: ``unique_rows`` of ``X``), fitted
    on all of ``X`` (recency weights repeat rows). Returns the predict function and the LV count."""
    rows = np.arange(len(X)) if unique_rows is None else unique_rows
    selection = cross_validate_lvs(X[rows], y[rows], settings.variant, n_repeats=settings.cv_repeats,
                                   random_state=settings.seed)
    lvs = selection.best(settings.lv_rule)
    return fit_pls(X, y, lvs, settings.variant, random_state=settings.seed).predict, lvs


def base_model_from_calibration(data: TimeOrderedData, settings: PrequentialSettings) -> tuple[Predict, int]:
    """The static model when there is no deployed one: PLS on the file's calibration part."""
    rows = np.flatnonzero(data.calibration)
    return fit_retrain_pls(data.X[rows], data.reference[rows], settings)


class _Loop:
    """The state the service would hold, replayed over the file's events."""

    def __init__(self, data: TimeOrderedData, base: Predict, settings: PrequentialSettings):
        self.data, self.settings = data, settings
        self.windows = tuple(TrainingWindow.parse(w) for w in settings.windows)
        self.base_rows = np.flatnonzero(data.calibration)
        self.models: dict[int, Predict] = {1: base}
        self.versions = [ModelVersion(1, -np.inf, -np.inf, tuple(self.base_rows.tolist()), "base", None)]
        self.retrains: list[RetrainRecord] = []
        self.arrived: list[int] = []  # plant pair rows, in arrival order
        self.predicted: dict[int, tuple[int, float]] = {}  # row -> (version, loop prediction)
        self.last_start: float | None = None

    @property
    def current(self) -> ModelVersion:
        return self.versions[-1]

    def arrive(self, row: int, now: float) -> None:
        self.arrived.append(row)
        self.consult(now)

    def consult(self, now: float) -> None:
        current = self.current
        new_pairs = sum(1 for r in self.arrived if self.data.lab_times[r] > current.serving_from)
        errors = [self.predicted[r][1] - self.data.reference[r] for r in self.arrived
                  if r in self.predicted and self.predicted[r][0] == current.version]
        minutes = None if self.last_start is None else (now - self.last_start) / 60
        decision = decide(self.settings.retrain, new_pairs=new_pairs, recent_errors={("file", self.data.target): errors},
                          minutes_since_last_start=minutes, running=False)
        if decision.retrain:
            self.retrain(now, decision.reason)

    def retrain(self, now: float, reason: str) -> None:
        self.last_start = now
        holdout_size = self.settings.gate.holdout_pairs
        if len(self.arrived) < holdout_size or len(self.base_rows) + len(self.arrived) - holdout_size < MIN_TRAINING:
            self.retrains.append(RetrainRecord(now, f"{reason}; skipped: {len(self.arrived)} pairs arrived, the gate "
                                                    f"holds out {holdout_size} and a fit needs {MIN_TRAINING} more "
                                                    f"with the calibration part", "skipped", None))
            return
        X, y = self.data.X, self.data.reference
        training, holdout = np.array(self.arrived[:-holdout_size], dtype=int), np.array(self.arrived[-holdout_size:])

        def fit(plant_rows: np.ndarray) -> tuple[Predict, int, np.ndarray]:
            rows = np.concatenate([self.base_rows, plant_rows]).astype(int)
            predict, lvs = fit_retrain_pls(X[rows], y[rows], self.settings,
                                           unique_rows=np.unique(rows, return_index=True)[1])
            return predict, lvs, rows

        def fitted_on(plant_rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            predict = fit(plant_rows)[0]
            return lambda rows: predict(X[rows])

        choice = choose_window(self.windows, training, y, fitted_on, holdout_size)
        candidate, lvs, rows = fit(choice.window.rows(training))
        champion = self.models[self.current.version]
        verdict = judge(y[holdout], candidate(X[holdout]), champion(X[holdout]), self.settings.gate,
                        self.settings.retrain, seed=self.settings.seed)
        version = None
        if verdict.passed:
            version = self.current.version + 1
            self.models[version] = candidate
            trained_until = float(self.data.lab_times[training].max()) if len(training) else -np.inf
            self.versions.append(ModelVersion(version, now, trained_until, tuple(sorted(set(rows.tolist()))),
                                              choice.window.name, lvs))
        self.retrains.append(RetrainRecord(now, reason, "promoted" if verdict.passed else "rejected", version,
                                           choice.window.name, choice.reason, choice.scores, lvs, len(training),
                                           len(holdout), verdict.as_record()))

    def predict(self, row: int) -> tuple[int, float]:
        version = self.current.version
        value = float(self.models[version](self.data.X[row:row + 1])[0])
        self.predicted[row] = (version, value)
        return version, value


def run_prequential(data: TimeOrderedData, base: Predict, settings: PrequentialSettings | None = None) -> PrequentialResult:
    """Replay ``data`` after its calibration part: ``base`` serves first and is the static model."""
    settings = settings or PrequentialSettings()
    loop = _Loop(data, base, settings)
    evaluated = np.flatnonzero(~data.calibration)
    arrivals = sorted((data.lab_times[r], r) for r in evaluated if data.labelled[r])
    known = list(data.reference[data.calibration])  # the causal mean's lab values
    static = base(data.X[evaluated])
    next_arrival, steps = 0, []
    for i, row in enumerate(evaluated):
        now = data.times[row]
        while next_arrival < len(arrivals) and arrivals[next_arrival][0] <= now:
            at, arrived = arrivals[next_arrival]
            known.append(data.reference[arrived])
            loop.arrive(arrived, at)
            next_arrival += 1
        loop.consult(now)
        version, value = loop.predict(row)
        steps.append(Step(int(row), float(now), float(data.reference[row]), value, float(static[i]),
                          float(np.mean(known)) if known else np.nan, version))
    return PrequentialResult(data.target, tuple(steps), tuple(loop.versions), tuple(loop.retrains),
                             prequential_figures(steps, settings.gate.confidence, settings.seed))


def prequential_figures(steps: list[Step] | tuple[Step, ...], confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """On the lab-referenced steps every predictor predicted: RMSEP (bootstrap interval) of loop, static and mean,
    and the paired differences loop - static and loop - mean."""
    scored = [s for s in steps if np.isfinite([s.reference, s.loop, s.static, s.mean]).all()]
    left_out = sum(1 for s in steps if np.isfinite(s.reference)) - len(scored)  # a NaN prediction, or no mean yet
    if len(scored) < 2:
        raise ValueError(f"{len(scored)} lab-referenced spectra after the calibration part: too few to score")
    reference = np.array([s.reference for s in scored])
    predictions = {name: np.array([getattr(s, name) for s in scored]) for name in ("loop", "static", "mean")}
    return {
        "pairs": len(scored), "not_scored": left_out, "confidence": confidence,
        "rmsep": {name: rmsep_interval(reference, values, confidence, seed) for name, values in predictions.items()},
        "loop_minus_static": paired_rmsep_difference(reference, predictions["loop"], predictions["static"], confidence, seed),
        "loop_minus_mean": paired_rmsep_difference(reference, predictions["loop"], predictions["mean"], confidence, seed),
    }


def deployed_model(predictor, target: str, wavelengths: np.ndarray) -> Predict:
    """A registry model (``core.serving.Predictor``) as the static model: the file's spectra put on its grid, as
    ``nirstream evaluate --data`` does; spectra its screen refuses come back NaN (left out of the figures)."""
    from nirstream.core.chemometrics.resampling import onto_model_grid

    if target not in predictor.targets:
        raise ValueError(f"model version {predictor.version} predicts {list(predictor.targets)}, not {target!r}")
    column = list(predictor.targets).index(target)
    window = (predictor.bundle.preprocessor.first_nm, predictor.bundle.preprocessor.last_nm)
    return lambda X: predictor.predict(onto_model_grid(X, wavelengths, predictor.grid, window)).values[:, column]
