"""Calibration transfer: make one analyzer's spectra (the slave) look like the instrument a model was trained on
(the master), or correct its predictions, as a checksummed per-analyzer artifact.

Methods (fitted in ``trainer/transfer_fit.py`` on transfer standards measured on both instruments):

* ``pds`` -- piecewise direct standardisation: each master channel from a window of slave channels (local PLS);
* ``ds``  -- direct standardisation: every master channel from all slave channels;
* ``sbc`` -- slope/bias correction of the predictions, per target (the baseline a chemometrician tries first).

PDS and DS are a linear map of the whole spectrum, ``x_master ≈ x_slave @ matrix + offset``, applied before the
model's own preprocessing (window, EMSC...); they describe the instruments, not the model, so they serve every
model trained on the master's spectra. SBC describes one model's predictions and applies only to the version it
was fitted for. Layout (no pickles)::

    transfer.json   metadata: analyzer, method, model version, grid, standards, slope/bias, parameters
    arrays.npz      matrix and offset (pds, ds)
    MANIFEST.json   sha256 and size of both
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.artifacts.manifest import ArtifactError, verify_manifest, write_manifest
from nirstream.core.messages.common import AnalyzerId, WavelengthGrid, utc_now

if TYPE_CHECKING:
    from nirstream.core.artifacts.signing import ArtifactTrust

TRANSFER_METADATA_FILE = "transfer.json"
TRANSFER_ARRAYS_FILE = "arrays.npz"
SPECTRAL_FILES = frozenset({TRANSFER_METADATA_FILE, TRANSFER_ARRAYS_FILE})
PREDICTION_FILES = frozenset({TRANSFER_METADATA_FILE})
METHODS = ("pds", "ds", "sbc")


class TransferError(ArtifactError):
    """A transfer artifact that is missing, tampered with, or does not fit the model or analyzer."""


class TransferMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analyzer: AnalyzerId
    method: Literal["pds", "ds", "sbc"]
    model_version: str = Field(description="The model the transfer was fitted with (SBC applies to it alone)")
    grid: WavelengthGrid = Field(description="The analyzers' grid the spectral map works on")
    targets: list[str]
    standards: list[str] = Field(description="Sample ids of the transfer standards measured on both instruments")
    prediction_slope: dict[str, float] | None = None
    prediction_bias: dict[str, float] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    figures: dict[str, Any] = Field(default_factory=dict, description="Fit figures on the standards")
    by: str = ""
    created_at: datetime = Field(default_factory=utc_now)


@dataclass
class CalibrationTransfer:
    metadata: TransferMetadata
    matrix: np.ndarray | None = None  # (channels, channels)
    offset: np.ndarray | None = None  # (channels,)
    path: Path | None = None

    @property
    def analyzer(self) -> str:
        return self.metadata.analyzer

    @property
    def label(self) -> str:
        """How predictions name it: method and registry number."""
        return f"{self.metadata.method}#{self.path.name if self.path else 'unsaved'}"

    def applies_to(self, model_version: str) -> bool:
        return self.metadata.method != "sbc" or self.metadata.model_version == model_version

    def standardise(self, spectra: np.ndarray) -> np.ndarray:
        """Slave spectra as the master would have measured them (unchanged for SBC)."""
        if self.matrix is None:
            return spectra
        return np.asarray(spectra, dtype=np.float64) @ self.matrix + self.offset

    def correct(self, values: np.ndarray, targets: tuple[str, ...]) -> np.ndarray:
        """Predictions (n, k) after slope/bias correction (unchanged for PDS and DS)."""
        if self.metadata.prediction_slope is None:
            return values
        slope = np.array([self.metadata.prediction_slope.get(t, 1.0) for t in targets])
        bias = np.array([(self.metadata.prediction_bias or {}).get(t, 0.0) for t in targets])
        return values * slope + bias


def write_transfer(directory: str | Path, transfer: CalibrationTransfer) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise TransferError(f"{directory} is not empty")
    spectral = transfer.matrix is not None
    if spectral != (transfer.metadata.method in ("pds", "ds")):
        raise TransferError(f"method {transfer.metadata.method} {'needs' if not spectral else 'has no'} spectral map")
    (directory / TRANSFER_METADATA_FILE).write_text(transfer.metadata.model_dump_json(indent=2))
    if spectral:
        n = transfer.metadata.grid.count
        if transfer.matrix.shape != (n, n) or transfer.offset.shape != (n,):
            raise TransferError(f"a spectral map for {n} channels needs a {n}x{n} matrix and {n} offsets")
        buffer = io.BytesIO()
        np.savez(buffer, matrix=transfer.matrix, offset=transfer.offset)
        (directory / TRANSFER_ARRAYS_FILE).write_bytes(buffer.getvalue())
    write_manifest(directory, sorted(SPECTRAL_FILES if spectral else PREDICTION_FILES), kind="calibration-transfer")
    return directory


def load_transfer(directory: str | Path, trust: ArtifactTrust | None = None) -> CalibrationTransfer:
    """Verify (with ``trust``: its signature too, ``SignatureError``), then load a transfer artifact;
    ``TransferError`` says why not."""
    directory = Path(directory)
    verify_manifest(directory, (SPECTRAL_FILES, PREDICTION_FILES), "calibration transfer", TransferError, trust)
    try:
        metadata = TransferMetadata.model_validate_json((directory / TRANSFER_METADATA_FILE).read_text())
        matrix = offset = None
        if (directory / TRANSFER_ARRAYS_FILE).exists():
            with np.load(directory / TRANSFER_ARRAYS_FILE, allow_pickle=False) as arrays:
                matrix, offset = np.asarray(arrays["matrix"], np.float64), np.asarray(arrays["offset"], np.float64)
    except TransferError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable content is a refused artifact
        raise TransferError(f"{directory}: unreadable transfer: {type(exc).__name__}: {exc}") from None
    if (matrix is None) != (metadata.method == "sbc"):
        raise TransferError(f"{directory}: method {metadata.method} does not match its arrays")
    if matrix is not None and (matrix.shape != (metadata.grid.count,) * 2 or not np.isfinite(matrix).all()
                               or not np.isfinite(offset).all()):
        raise TransferError(f"{directory}: spectral map of shape {matrix.shape} does not fit {metadata.grid.count} "
                            "channels, or is not finite")
    return CalibrationTransfer(metadata, matrix, offset, directory)
