"""Topic ``nirstream.deadletter``: every message the worker could not use, with the reason.

``DeadLetter`` is the definition; ``encode_dead_letter`` writes the same fields fast (orjson), and
tests/test_messages.py validates its output with the model.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import orjson
from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.errors import RejectReason
from nirstream.core.messages.common import SCHEMA_VERSION, SchemaVersion, utc_now

# A dead letter must always be publishable: originals above this size travel as a prefix + length + sha256.
DEAD_LETTER_ORIGINAL_LIMIT = 64 * 1024
DEAD_LETTER_PREFIX_BYTES = 4 * 1024


class DeadLetter(BaseModel):
    """A message the worker could not use: why, where it came from, and its original bytes."""

    model_config = ConfigDict(frozen=True)

    schema_version: SchemaVersion = SCHEMA_VERSION
    reason: str = Field(description="A RejectReason value")
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None = None
    original_base64: str = Field(description="The message value as received, base64; only its first "
                                 "DEAD_LETTER_PREFIX_BYTES when original_truncated")
    original_bytes: int = Field(default=0, ge=0, description="Length of the original message value")
    original_sha256: str = Field(default="", description="sha256 of the whole original message value (hex)")
    original_truncated: bool = Field(default=False, description="True when the original was too large to carry whole")
    rejected_at: datetime = Field(default_factory=utc_now)
    worker: str = ""


def encode_dead_letter(reason: RejectReason, detail: str, *, source_topic: str, source_partition: int, source_offset: int,
                       key: bytes | None, original: bytes | None, worker: str) -> bytes:
    """A ``DeadLetter``, encoded fast: always small enough to publish (a huge original travels as prefix + sha256;
    detail and key are cut)."""
    original = original or b""
    truncated = len(original) > DEAD_LETTER_ORIGINAL_LIMIT
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "reason": reason.value,
            "detail": detail[:2000],
            "source_topic": source_topic,
            "source_partition": source_partition,
            "source_offset": source_offset,
            "key": key[:256].decode("utf-8", "replace") if key is not None else None,
            "original_base64": base64.b64encode(original[:DEAD_LETTER_PREFIX_BYTES] if truncated else original).decode(),
            "original_bytes": len(original),
            "original_sha256": hashlib.sha256(original).hexdigest(),
            "original_truncated": truncated,
            "rejected_at": datetime.now(UTC),
            "worker": worker,
        }
    )
