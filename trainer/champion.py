"""Champion changes that running workers hear about: promote (or roll back) in the registry, then announce.

The registry is the truth and workers poll it; the announcement on the models topic (when Kafka is
given) only makes them switch at once. Every caller — ``nirstream train``'s gate, ``nirstream models
promote/rollback``, ``nirstream transfer fit`` and the demo's operator override — goes through here.
"""

from __future__ import annotations

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.trainer.announce import announce


def promote_and_announce(registry: ModelRegistry, version: str, reason: str, *, by: str | None = None,
                         bootstrap_servers: str | None = None, models_topic: str | None = None,
                         client_options: dict | None = None) -> None:
    """Make ``version`` the champion (recorded with ``by`` and ``reason``), then tell the workers."""
    registry.promote(version, reason, by=by)
    announce_change(registry, version, reason, bootstrap_servers, models_topic, client_options=client_options)


def approve_and_announce(registry: ModelRegistry, version: str, reason: str, *, by: str,
                         bootstrap_servers: str | None = None, models_topic: str | None = None) -> None:
    """Promote a version the learning loop proposed, as a named person's decision (21 CFR Part 11 change control):
    the promotion's audit record carries who, why and the gate's figures from the proposal."""
    version = str(version)
    events = [e for e in registry.history() if e.version == version and e.event in ("proposed", "promoted", "rejected")]
    if not events or events[-1].event != "proposed":
        state = events[-1].event if events else registry.status(version)
        raise ValueError(f"version {version} is not waiting for approval (it is {state}); `nirstream models promote` "
                         "promotes any version by hand")
    registry.promote(version, reason, by=by, details={"approved_proposal": events[-1].details})
    announce_change(registry, version, reason, bootstrap_servers, models_topic)


def roll_back_and_announce(registry: ModelRegistry, reason: str, *, by: str | None = None,
                           bootstrap_servers: str | None = None, models_topic: str | None = None,
                           client_options: dict | None = None) -> str:
    """Return to the previous champion, tell the workers, and return its version."""
    version = registry.rollback(reason, by=by)
    announce_change(registry, version, reason, bootstrap_servers, models_topic, client_options=client_options)
    return version


def announce_change(registry: ModelRegistry, version: str, reason: str, bootstrap_servers: str | None,
                    models_topic: str | None = None, event_type: str = "promoted", client_options: dict | None = None
                    ) -> None:
    """Announce a registry change on the models topic (default NIRSTREAM_TOPICS__MODELS); nothing without Kafka.
    ``client_options``: the caller's producer options (a service with its own settings file); default: the
    environment's and the command's settings file's."""
    if not bootstrap_servers:
        return
    if models_topic is None:
        from nirstream.core.settings import SharedSettings

        models_topic = SharedSettings.load().topics.models
    announce(bootstrap_servers, models_topic, version, registry.base, reason, client_options, event_type=event_type)
