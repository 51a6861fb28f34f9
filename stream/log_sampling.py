"""How often a long-running service logs one kind of repeated event: the first few, then every thousandth, so
that a flood of bad records is counted in full but cannot flood the log."""

from __future__ import annotations

EVERY = 1000


def worth_logging(count: int, first: int = 10) -> bool:
    """Whether the ``count``-th occurrence (counting from 1) of an event is logged: the first ``first``, then every
    thousandth."""
    return count <= first or count % EVERY == 0
