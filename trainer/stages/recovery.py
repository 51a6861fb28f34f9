"""When a stage after fitting fails, the fitted model is not lost: it is written as a bundle to a recovery registry.

Fitting is the expensive part (minutes to hours); interval calibration, evaluation, the ONNX export,
the registry or the report may still fail after it. The deployed candidate (or, before the family
was chosen, the first fitted one) is then written as version 1 of a registry of its own under
``<report_dir>/recovered/`` (or a temporary directory if that is unwritable), with whatever figures
were computed; the error names that registry, so the user can inspect, promote and serve it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import joblib

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.artifacts.signing import configured_signer
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.stages.fitting import Candidate
from nirstream.trainer.train_settings import TrainSettings

log = logging.getLogger(__name__)


class FittedModelKept(RuntimeError):
    """A stage after fitting failed; the message says why and where the fitted model was kept."""

    def __init__(self, message: str, location: Path):
        super().__init__(message)
        self.location = location


def keep_fitted_model(settings: TrainSettings, protocol: Protocol, candidate: Candidate, reason: str,
                      failure: BaseException, **contents) -> FittedModelKept:
    """Write ``candidate`` where the user can find it and return the error to raise (``contents``: what
    ``publishing.write_candidate`` takes beyond the candidate, as far as it was computed)."""
    from nirstream.trainer.stages.publishing import write_candidate

    name = f"{protocol.name.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    failed = f"training failed after fitting ({type(failure).__name__}: {failure})"
    for base in (Path(settings.report_dir) / "recovered", Path(tempfile.gettempdir()) / "nirstream-recovered"):
        location = base / name
        try:
            registry = ModelRegistry(location, signer=configured_signer(settings.signing_key_file))
            version, _ = write_candidate(registry, settings, protocol, candidate, reason, **contents)
        except Exception as exc:  # noqa: BLE001 - try the next place, then the bare model
            log.warning("could not write the fitted model as a bundle to %s (%s)", location, exc)
            continue
        return FittedModelKept(
            f"{failed}. The fitted {candidate.family.upper()} model is kept as version {version} of the registry "
            f"{location}: nirstream models show {version} --registry {location}; to serve it, "
            f"nirstream models promote {version} --registry {location} (or copy {location / version} into your registry)",
            location)
    location = Path(tempfile.mkdtemp(prefix=f"nirstream-recovered-{name}-")) / "fitted_model.joblib"
    joblib.dump({"family": candidate.family, "model": candidate.model, "preprocessor": candidate.preprocessor,
                 "target_mean": candidate.target_mean, "target_scale": candidate.target_scale,
                 "training": candidate.training, "targets": list(protocol.targets)}, location)
    return FittedModelKept(f"{failed}. No bundle could be written; the fitted {candidate.family.upper()} model and its "
                           f"preprocessor are kept in {location} (joblib)", location)
