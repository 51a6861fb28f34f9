"""The worker against the real embedded broker, in real subprocesses."""

import base64
import time

import numpy as np
import orjson

from nirstream.core.messages.codec import encode_binary, encode_json
from nirstream.core.serving.predictor import Predictor
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.model_event import ModelEvent
from nirstream.core.messages.prediction import PredictionMessage
from nirstream.core.messages.spectrum import SpectrumHeader
from tests.helpers import as_float32, tamper
from tests.streaming import collect, decoded, produce, run


def spectra_messages(tecator, count, analyzers=("line-1", "line-2", "line-3"), binary_every=2, start=0):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    messages, rows = [], []
    for i in range(start, start + count):
        analyzer = analyzers[i % len(analyzers)]
        header = SpectrumHeader(analyzer_id=analyzer, sequence=i, grid=grid, sample_id=f"S{i}")
        row = tecator.X[i % tecator.n_samples]
        binary = binary_every and i % binary_every == 0
        messages.append((analyzer.encode(), (encode_binary if binary else encode_json)(header, row)))
        rows.append(as_float32(row) if binary else row)
    return messages, np.array(rows)


def test_every_spectrum_gets_exactly_one_prediction_equal_to_offline(broker, registry, topics, tecator, start_worker):
    worker = start_worker()
    messages, rows = spectra_messages(tecator, 600)
    run(produce(broker.bootstrap_servers, topics.spectra, messages))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 600, settle=1.0)))
    assert len(predictions) == 600
    by_id = {p["message_id"]: PredictionMessage.model_validate(p) for p in predictions}
    assert sorted(by_id) == sorted(f"line-{i % 3 + 1}:{i}" for i in range(600))
    offline = Predictor(registry.load("1")).predict(rows).values[:, 0]
    online = np.array([by_id[f"line-{i % 3 + 1}:{i}"].predictions["fat"] for i in range(600)])
    np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-5)
    assert {p.model_version for p in by_id.values()} == {"1"}
    assert all(p.outlier is not None and p.timings.batch_size >= 1 for p in by_id.values())
    assert worker.metric("nirstream_spectra_received_total") == 600
    assert worker.metric("nirstream_predictions_total", analyzer="line-2") == 200
    assert worker.metric("nirstream_dead_letters_total") == 0
    assert worker.metric("nirstream_model_info", version="1", target="fat") == 1


def test_bad_input_goes_to_dead_letters_and_the_worker_keeps_going(broker, topics, tecator, start_worker):
    start_worker(NIRSTREAM_KNOWN_ANALYZERS='["line-1", "line-2", "line-3"]', NIRSTREAM_SATURATION_LIMIT="4.5",
                 NIRSTREAM_MAX_MESSAGE_BYTES="20000")
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    good = tecator.X[0]

    def header(**overrides):
        return SpectrumHeader(**{"analyzer_id": "line-1", "sequence": 9, "grid": grid, **overrides})

    body = orjson.loads(encode_json(header(), good))
    with_nan = good.copy()
    with_nan[5] = np.nan
    bad = {
        "malformed_json": b'{"analyzer_id": "line-1", "values": [1.0,',
        "unknown_format": b"\x00\x01garbage",
        "malformed_binary": encode_binary(header(), good)[:-8],
        "wrong_length": orjson.dumps({**body, "values": body["values"][:-1]}),
        "non_finite": encode_binary(header(), with_nan),
        "wrong_grid": encode_json(header(grid=WavelengthGrid(start_nm=900, step_nm=grid.step_nm, count=100)), good),
        "oversize": orjson.dumps({**body, "padding": "x" * 30000}),
        "unsupported_schema_version": orjson.dumps({**body, "schema_version": 7}),
        "schema_invalid": orjson.dumps({**body, "sequence": "nine"}),
        "unknown_analyzer": encode_json(header(analyzer_id="line-99"), good),
        "saturated": encode_json(header(), np.full_like(good, 5.0)),
    }
    valid, _ = spectra_messages(tecator, 30)
    stream = valid[:10] + [(b"line-1", raw) for raw in bad.values()] + valid[10:]
    run(produce(broker.bootstrap_servers, topics.spectra, stream))

    dead = decoded(run(collect(broker.bootstrap_servers, topics.deadletter, len(bad), settle=0.5)))
    assert sorted(d["reason"] for d in dead) == sorted(bad)
    for letter in dead:
        assert base64.b64decode(letter["original_base64"]) == bad[letter["reason"]]
        assert letter["source_topic"] == topics.spectra and letter["source_offset"] >= 0 and letter["detail"]
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 30, settle=0.5)))
    assert len(predictions) == 30  # every valid spectrum, including those after the bad ones


def test_hot_swap_during_a_steady_stream_loses_nothing(broker, registry, topics, tecator, start_worker):
    """A steady stream, a promotion announced in the middle: the stream goes on (chunk by chunk, for as long as the
    swap takes: loading and warming a model is slower on a busy machine) until predictions come from version 2, then
    a tail more. Nothing lost, nothing twice, and each analyzer switches once and never back."""
    import asyncio

    worker = start_worker(NIRSTREAM_REGISTRY_POLL_SECONDS="3600")  # only the model event may trigger the swap
    event = ModelEvent(event="promoted", version="2").model_dump_json().encode()
    sent = 0

    async def send(count):
        nonlocal sent
        messages, _ = spectra_messages(tecator, count, binary_every=1, start=sent)
        for chunk_start in range(0, count, 30):
            await produce(broker.bootstrap_servers, topics.spectra, messages[chunk_start : chunk_start + 30])
            await asyncio.sleep(0.02)  # pacing of the simulated analyzers, not synchronisation
        sent += count

    run(send(300))
    registry.promote("2", "test swap")
    run(produce(broker.bootstrap_servers, topics.models, [(None, event)]))
    deadline = time.monotonic() + 180
    while True:  # waits for the event (the swap), sending the steady stream meanwhile
        run(send(60))
        versions = {p["model_version"] for p in decoded(run(collect(broker.bootstrap_servers, topics.predictions, sent)))}
        if "2" in versions:
            break
        assert time.monotonic() < deadline, "the promotion was never served"
    run(send(300))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, sent, settle=1.0)))
    assert len(predictions) == sent and len({p["message_id"] for p in predictions}) == sent
    assert {p["model_version"] for p in predictions} == {"1", "2"}
    for analyzer in ("line-1", "line-2", "line-3"):
        versions = [p["model_version"] for p in sorted(predictions, key=lambda p: p["sequence"]) if p["analyzer_id"] == analyzer]
        switch = versions.index("2")
        assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}  # one switch, never back
    assert worker.metric("nirstream_model_swaps_total") == 1
    assert worker.metric("nirstream_model_version") == 2


def test_tampered_bundle_is_refused_and_the_old_model_keeps_serving(broker, registry, topics, tecator, start_worker):
    worker = start_worker(NIRSTREAM_REGISTRY_POLL_SECONDS="3600")
    registry.promote("2", "will be tampered after promotion")
    tamper(registry.path("2") / "model.keras")
    run(produce(broker.bootstrap_servers, topics.models, [(None, ModelEvent(event="promoted", version="2").model_dump_json().encode())]))
    deadline = time.monotonic() + 30
    while worker.metric("nirstream_model_swap_failures_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the metric until the refusal shows
    assert worker.metric("nirstream_model_swap_failures_total", reason="verification") == 1
    messages, _ = spectra_messages(tecator, 50)
    run(produce(broker.bootstrap_servers, topics.spectra, messages))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 50)))
    assert len(predictions) == 50 and {p["model_version"] for p in predictions} == {"1"}
    status, body = worker.get("/ready")
    assert status == 200 and orjson.loads(body)["last_refusal"] == {"reason": "verification", "version": "2"}
    assert str(registry.base) not in body.decode()  # /ready names versions, never the registry's files
    worker.wait_for_log("checksum mismatch")  # the detail is in the log


def test_restart_after_clean_stop_resumes_without_reprocessing(broker, topics, tecator, start_worker):
    first = start_worker()
    messages, _ = spectra_messages(tecator, 400)
    run(produce(broker.bootstrap_servers, topics.spectra, messages[:200]))
    assert len(run(collect(broker.bootstrap_servers, topics.predictions, 200))) == 200
    assert first.stop() == 0
    start_worker()  # same consumer group
    run(produce(broker.bootstrap_servers, topics.spectra, messages[200:]))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 400, settle=2.0)))
    assert len(predictions) == 400
    assert len({p["message_id"] for p in predictions}) == 400
