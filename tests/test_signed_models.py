"""A running worker that trusts one key (allow_unsigned off) is offered, in turn, a bundle signed by an unknown key,
an unsigned one, a tampered one, a path-traversing champion pointer and a pointer the audit trail does not account
for: it refuses each (counted by reason) and keeps serving version 1; then a signed, recorded promotion swaps."""

from __future__ import annotations

import json
import shutil
import time

from nirstream.core.artifacts.manifest import SIGNATURE_FILE
from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.messages.model_event import ModelEvent
from tests.helpers import tamper
from tests.streaming import collect, decoded, produce, run
from tests.test_reliability import steady_messages


def test_a_running_worker_serves_only_trusted_signed_recorded_models(broker, registry, topics, tecator, signing_keys,
                                                                      start_worker):
    for version in ("1", "2"):
        signing_keys.signer.sign(registry.path(version))
    worker = start_worker(NIRSTREAM_ALLOW_UNSIGNED="false", NIRSTREAM_TRUSTED_KEYS_DIR=str(signing_keys.trusted),
                          NIRSTREAM_REGISTRY_POLL_SECONDS="3600")  # only a model event makes it look: no race with us
    messages = steady_messages(tecator, 60)
    sent = 0

    def copy_of_2(directory):  # a good bundle's files, without its signature
        shutil.copytree(registry.path("2"), directory, ignore=shutil.ignore_patterns(SIGNATURE_FILE))

    def offered(reason: str) -> None:
        """Tell the worker to look; wait until it refuses for ``reason``; check that version 1 still predicts."""
        nonlocal sent
        event = ModelEvent(event="promoted", version="?")
        run(produce(broker.bootstrap_servers, topics.models, [(None, event.model_dump_json().encode())]))
        deadline = time.monotonic() + 30
        while worker.metric("nirstream_model_swap_failures_total", reason=reason) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the worker's metric
        assert worker.metric("nirstream_model_swap_failures_total", reason=reason) == 1, worker.log_tail()
        run(produce(broker.bootstrap_servers, topics.spectra, messages[sent: sent + 10]))
        sent += 10
        predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, sent)))
        assert len(predictions) == sent and {p["model_version"] for p in predictions} == {"1"}, reason

    # 1. signed, but by a key the worker does not trust (promoted through the registry: the audit trail is fine)
    outsider = ModelRegistry(registry.base, signer=signing_keys.outsider_signer).publish(copy_of_2)
    registry.promote(outsider, "signed by an outsider")
    offered("untrusted_key")
    # 2. unsigned
    registry.promote(registry.publish(copy_of_2), "unsigned")
    offered("unsigned")
    # 3. signed by the trusted key, then a file changed
    tampered = ModelRegistry(registry.base, signer=signing_keys.signer).publish(copy_of_2)
    registry.promote(tampered, "tampered after signing")
    tamper(registry.path(tampered) / "arrays.npz")
    offered("verification")
    # 4. a champion pointer that walks out of the registry
    (registry.base / "champion.json").write_text(json.dumps({"version": "../.."}))
    offered("pointer_version")
    # 5. a trusted, signed version pointed at by hand: the audit trail's last promotion names another
    (registry.base / "champion.json").write_text(json.dumps({"version": "2"}))
    offered("audit")
    assert worker.metric("nirstream_model_swaps_total") == 0 and worker.metric("nirstream_model_swap_failures_total") == 5
    assert "UNSIGNED" not in worker.log_path.read_text()

    # the same signed version, promoted through the registry, is served
    registry.promote("2", "signed and recorded")
    run(produce(broker.bootstrap_servers, topics.models, [(None, ModelEvent(event="promoted", version="2")
                                                           .model_dump_json().encode())]))
    worker.wait_for_log("serving model version 2")
    run(produce(broker.bootstrap_servers, topics.spectra, messages[sent: sent + 10]))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, sent + 10)))
    assert [p["model_version"] for p in predictions if p["sequence"] >= sent] == ["2"] * 10  # partitions interleave
