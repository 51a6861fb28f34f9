"""Stage 5b: the published bundle's own applicability checks (``Predictor``'s flags, as the worker raises them) on every
split: the shares flagged, the check that held-out validation spectra are flagged at the nominal rates, and the
warning when a split lies outside the domain (see ``nirstream.trainer.domain_shares``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.serving.predictor import Predictor
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.domain_shares import EXTRAPOLATION_SHARE, extrapolation_warnings, flag_shares, nominal_check

log = logging.getLogger(__name__)


@dataclass
class DomainShares:
    per_split: dict[str, dict]  # split -> flag_shares
    warnings: list[str]  # one per split outside the domain
    nominal_check: str  # validation's shares against the nominal rates, in words ('' without validation spectra)

    def as_report(self) -> dict:
        return {"per_split": self.per_split, "warnings": self.warnings, "nominal_check": self.nominal_check,
                "extrapolation_share": EXTRAPOLATION_SHARE}


def check_domain(registry: ModelRegistry, version: str, protocol: Protocol) -> DomainShares:
    predictor = Predictor(registry.load(version))
    splits = {"train": protocol.train, "validation": protocol.validation,
              **({"gate": protocol.gate} if protocol.gate is not None else {}), **protocol.tests}
    per_split = {}
    for name, data in splits.items():
        if data.n_samples:
            batch = predictor.predict(data.X)
            per_split[name] = flag_shares(batch.flags[batch.degenerate == ""])
    warnings = extrapolation_warnings(per_split)
    for warning in warnings:
        log.warning("%s", warning)
    check = nominal_check("validation", per_split["validation"]) if "validation" in per_split else ""
    if check:
        log.info("applicability domain: %s", check)
    return DomainShares(per_split, warnings, check)
