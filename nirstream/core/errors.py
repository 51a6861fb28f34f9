"""Error types with a machine-readable reason, used for dead-letter routing and metrics."""

from enum import StrEnum


class RejectReason(StrEnum):
    """Why a spectrum was refused. Values are stable: they label metrics and dead letters."""

    MALFORMED_JSON = "malformed_json"
    MALFORMED_BINARY = "malformed_binary"
    UNKNOWN_FORMAT = "unknown_format"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    SCHEMA_INVALID = "schema_invalid"
    WRONG_LENGTH = "wrong_length"
    WRONG_GRID = "wrong_grid"
    NON_FINITE = "non_finite"
    SATURATED = "saturated"
    OVERSIZE = "oversize"
    UNKNOWN_ANALYZER = "unknown_analyzer"
    DEGENERATE = "degenerate"  # zero, constant, negative-scale or overflowing spectrum: nothing to predict from
    PROCESSING_ERROR = "processing_error"  # the worker failed on this message; isolated from its batch
    INVALID_REFERENCE = "invalid_reference"  # a lab reference message that is not a ReferenceMessage
    IMPLAUSIBLE_REFERENCE = "implausible_reference"  # a lab value far outside the model's training targets
    UNMATCHED_REFERENCE = "unmatched_reference"  # a lab value joined by time with no spectrum of its analyzer in its window
    UNPUBLISHABLE = "unpublishable"  # the worker's output for a message was refused by the broker (e.g. too large)


class SpectrumRejected(ValueError):
    """A spectrum (or batch of spectra) that cannot be used, with the reason why."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class DatasetUnavailable(RuntimeError):
    """A data set cannot be loaded or fetched; the message says what to do about it."""
