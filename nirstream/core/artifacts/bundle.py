"""Model bundle: one directory holding everything needed to predict, checksummed.

Layout (no pickles anywhere; arrays in .npz read with ``allow_pickle=False``)::

    model.keras        Keras 3 native format, loaded with safe_mode (neural networks only: a linear
                       model such as PLS is two arrays in arrays.npz)
    model.onnx         the same network as ONNX, checked against model.keras on real spectra when
                       published; the worker serves it with ONNX Runtime (no TensorFlow) unless a GPU
                       is present
    bundle.json        metadata: targets, units, input grid, preprocessing and domain scalars,
                       prediction-interval half-widths, metrics, dataset fingerprint, code version,
                       creation time
    arrays.npz         EMSC reference and applicability-domain PCA arrays
    MANIFEST.json      sha256 and size of every file above

``load_bundle`` refuses a directory whose files do not match the manifest exactly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nirstream import __version__
from nirstream.core.artifacts.manifest import ArtifactError, verify_manifest, write_manifest
from nirstream.core.chemometrics.fitted.domain import DomainStatistics
from nirstream.core.chemometrics.fitted.preprocessing import FittedPreprocessing
from nirstream.core.chemometrics.linear_model import LinearModel
from nirstream.core.messages.common import WavelengthGrid, utc_now
from nirstream.core.runtimes.onnx_model import serving_runtime

if TYPE_CHECKING:  # writing takes the fitted estimators; loading needs neither scikit-learn nor SciPy
    from nirstream.core.artifacts.signing import ArtifactTrust
    from nirstream.core.chemometrics.domain import ApplicabilityDomain
    from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor

BUNDLE_FORMAT = 2  # 2: several targets and prediction intervals; format-1 metadata (one target) still loads
MODEL_FILE = "model.keras"
METADATA_FILE = "bundle.json"
ARRAYS_FILE = "arrays.npz"
ONNX_FILE = "model.onnx"
BUNDLE_FILES = (MODEL_FILE, METADATA_FILE, ARRAYS_FILE)
ONNX_BUNDLE_FILES = (MODEL_FILE, ONNX_FILE, METADATA_FILE, ARRAYS_FILE)
LINEAR_BUNDLE_FILES = (METADATA_FILE, ARRAYS_FILE)  # a linear model's weights live in arrays.npz


class BundleError(ArtifactError):
    """A bundle that is missing, partial, tampered with or unreadable."""


class PredictionIntervals(BaseModel):
    """Symmetric intervals ``prediction ± half_width[target]`` that cover the lab value with probability ``coverage``."""

    model_config = ConfigDict(extra="forbid")

    coverage: float = Field(gt=0, lt=1)
    half_width: dict[str, float] = Field(description="Target name -> half-width in the target's unit")
    method: str = Field(description="How the half-widths were calibrated, and on which data")
    n_calibration: int = Field(ge=1)


class BundleMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = BUNDLE_FORMAT
    targets: list[str] = Field(min_length=1, description="The model's outputs, in order")
    units: dict[str, str] = Field(default_factory=dict, description="Target name -> unit")
    target_mean: list[float] = Field(description="Per target: the model predicts (y - target_mean) / target_scale")
    target_scale: list[float]
    target_range: dict[str, tuple[float, float]] | None = Field(
        default=None, description="Per target: smallest and largest training value; bounds which lab values are plausible")
    intervals: PredictionIntervals | None = None
    input_grid: WavelengthGrid
    preprocessing: dict[str, Any]
    domain: dict[str, Any]
    model_kind: str = Field(default="cnn", description="What model.keras holds, e.g. the paper's CNN")
    variant: str = Field(default="augment+emsc", description="Preprocessing variant used in training")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Evaluation figures, e.g. held-out RMSEP")
    training: dict[str, Any] = Field(default_factory=dict, description="Settings and history summary")
    dataset_fingerprint: str = ""
    dataset_name: str = ""
    onnx_parity: dict[str, float] | None = Field(default=None, description="model.onnx against model.keras on real spectra")
    code_version: str = __version__
    created_at: datetime = Field(default_factory=utc_now)

    @model_validator(mode="before")
    @classmethod
    def _from_format_1(cls, data: Any) -> Any:
        """Format 1 had one ``target`` and scalar ``unit``/``target_mean``/``target_scale``/``target_range``."""
        if not isinstance(data, dict) or "target" not in data:
            return data
        data = dict(data)
        target = data.pop("target")
        data["targets"] = [target]
        data["units"] = {target: data.pop("unit", "")}
        data["target_mean"] = [data.get("target_mean", 0.0)]
        data["target_scale"] = [data.get("target_scale", 1.0)]
        if data.get("target_range") is not None:
            data["target_range"] = {target: data["target_range"]}
        return data

    @model_validator(mode="after")
    def _one_value_per_target(self) -> BundleMetadata:
        k = len(self.targets)
        if len(set(self.targets)) != k:
            raise ValueError(f"duplicate target names {self.targets}")
        if len(self.target_mean) != k or len(self.target_scale) != k:
            raise ValueError(f"target_mean and target_scale need one value per target ({k})")
        if any(scale <= 0 for scale in self.target_scale):
            raise ValueError("target_scale must be positive")
        return self

    def unit(self, target: str) -> str:
        return self.units.get(target, "")


@dataclass
class ModelBundle:
    """A loaded bundle: metadata, fitted preprocessing, applicability domain and the model."""

    metadata: BundleMetadata
    preprocessor: FittedPreprocessing
    domain: DomainStatistics
    model: Any  # keras.Model, OnnxModel or LinearModel
    path: Path | None = None

    @property
    def runtime(self) -> str:
        """What runs the model: keras, onnx or linear (a matrix product)."""
        from nirstream.core.runtimes.onnx_model import OnnxModel

        return "linear" if isinstance(self.model, LinearModel) else "onnx" if isinstance(self.model, OnnxModel) else "keras"

    @property
    def version(self) -> str:
        """The registry version is the bundle directory's name."""
        return self.path.name if self.path else "unsaved"


def write_bundle(
    directory: str | Path,
    model: Any,
    preprocessor: SpectralPreprocessor,
    domain: ApplicabilityDomain,
    parity_features: np.ndarray | None = None,
    **metadata: Any,
) -> Path:
    """Write a complete bundle into an empty or new ``directory`` and return its path. With ``parity_features``
    (preprocessed real spectra) a network is also exported to ONNX and must match the Keras output on them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BundleError(f"{directory} is not empty")
    prep_scalars, prep_arrays = preprocessor.state()
    domain_scalars, domain_arrays = domain.state()
    arrays = {f"preprocessing.{k}": v for k, v in prep_arrays.items()} | {f"domain.{k}": v for k, v in domain_arrays.items()}
    if isinstance(model, LinearModel):
        arrays |= {"linear.weights": model.weights, "linear.bias": model.bias}
        files = LINEAR_BUNDLE_FILES
    else:
        model.save(directory / MODEL_FILE)
        files = BUNDLE_FILES
        if parity_features is not None:
            from nirstream.core.runtimes.onnx_export import export_with_parity

            metadata["onnx_parity"] = export_with_parity(model, directory / ONNX_FILE, parity_features)
            files = ONNX_BUNDLE_FILES
    meta = BundleMetadata(input_grid=preprocessor.grid_, preprocessing=prep_scalars, domain=domain_scalars, **metadata)
    (directory / METADATA_FILE).write_text(meta.model_dump_json(indent=2))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / ARRAYS_FILE).write_bytes(buffer.getvalue())
    write_manifest(directory, files, format=BUNDLE_FORMAT)
    return directory


def verify_bundle(directory: str | Path, trust: ArtifactTrust | None = None) -> dict[str, Any]:
    """Check the manifest (and with ``trust`` its signature) against the files; return the manifest or raise
    ``BundleError`` (``SignatureError`` for a refused signature)."""
    return verify_manifest(directory, (frozenset(BUNDLE_FILES), frozenset(ONNX_BUNDLE_FILES), frozenset(LINEAR_BUNDLE_FILES)),
                           "bundle", BundleError, trust)


def load_bundle(directory: str | Path, runtime: str | None = None, trust: ArtifactTrust | None = None) -> ModelBundle:
    """Verify, then load a bundle. Raises ``BundleError`` with the reason on any problem (``SignatureError`` when
    ``trust`` refuses its signature). A network is served by ONNX Runtime when the bundle has ``model.onnx`` and
    ``serving_runtime(runtime)`` says onnx (no GPU), else by Keras."""
    directory = Path(directory)
    manifest = verify_bundle(directory, trust)
    try:
        metadata = BundleMetadata.model_validate_json((directory / METADATA_FILE).read_text())
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        preprocessor = FittedPreprocessing.from_state(
            metadata.preprocessing, {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("preprocessing.")}
        )
        domain = DomainStatistics.from_state(
            metadata.domain, {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("domain.")}
        )
        if ONNX_FILE in manifest["files"] and serving_runtime(runtime) == "onnx":
            model = _load_onnx(directory / ONNX_FILE)
            n_inputs, n_outputs = model.input_shape[1], model.output_shape[-1]
        elif MODEL_FILE in manifest["files"]:
            model = _load_keras(directory / MODEL_FILE)
            n_inputs, n_outputs = model.input_shape[1], model.output_shape[-1]
        else:
            model = LinearModel(arrays["linear.weights"], arrays["linear.bias"])
            n_inputs, n_outputs = model.n_inputs, model.weights.shape[1]
    except (ValueError, KeyError, OSError) as exc:
        raise BundleError(f"{directory}: cannot read bundle: {exc}") from None
    expected_inputs = preprocessor.n_model_channels
    if n_inputs != expected_inputs:
        raise BundleError(f"{directory}: model takes {n_inputs} channels, preprocessing gives {expected_inputs}")
    if n_outputs != len(metadata.targets):
        raise BundleError(f"{directory}: model has {n_outputs} outputs for {len(metadata.targets)} target(s)")
    return ModelBundle(metadata, preprocessor, domain, model, path=directory)


def _load_onnx(path: Path) -> Any:
    from nirstream.core.runtimes.onnx_model import OnnxModel

    try:
        return OnnxModel(path)
    except Exception as exc:  # onnxruntime raises its own types for a corrupt graph
        raise BundleError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None


def _load_keras(path: Path) -> Any:
    from nirstream.core.runtimes.keras_serving import load_keras_model

    try:
        return load_keras_model(path)
    except Exception as exc:  # keras raises a variety of types for corrupt archives
        raise BundleError(f"{path}: Keras cannot load the model: {exc}") from None
