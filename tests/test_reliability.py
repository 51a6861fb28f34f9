"""Reliability under faults: real worker processes killed, registry corrupted, models swapped under load.

Marked ``reliability``; part of the default suite (run alone with ``pytest -m reliability``).
"""

import asyncio
import dataclasses
import errno
import json
import os
import shutil
import time
from collections import defaultdict

import pytest

from nirstream.core.artifacts.bundle import write_bundle
from nirstream.core.messages.codec import encode_binary
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.model_event import ModelEvent
from nirstream.core.messages.spectrum import SpectrumHeader
from tests.helpers import fit_small_tecator_parts, tamper
from tests.streaming import collect, decoded, produce, run

pytestmark = pytest.mark.reliability
MAX_BATCH = 64


def steady_messages(tecator, count, analyzers=4):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    messages = []
    for i in range(count):
        header = SpectrumHeader(analyzer_id=f"line-{i % analyzers}", sequence=i, grid=grid)
        messages.append((header.analyzer_id.encode(), encode_binary(header, tecator.X[i % tecator.n_samples])))
    return messages


async def stream_steadily(bootstrap, topic, messages, per_second):
    """Send in small chunks at a steady pace (simulated analyzers), returning when all are sent."""
    chunk = max(1, int(per_second / 20))
    for start in range(0, len(messages), chunk):
        await produce(bootstrap, topic, messages[start : start + chunk])
        await asyncio.sleep(chunk / per_second)  # the analyzers' pace


def check_no_loss_and_identical_duplicates(predictions, expected_ids):
    copies = defaultdict(list)
    for p in predictions:
        copies[p["message_id"]].append((p["predictions"], p["model_version"]))
    assert set(copies) == expected_ids, f"lost {len(expected_ids - set(copies))}"
    duplicated = {k: v for k, v in copies.items() if len(v) > 1}
    for message_id, versions in duplicated.items():
        assert all(v == versions[0] for v in versions), message_id  # same value, same model version
    return sum(len(v) - 1 for v in duplicated.values())


def test_kill_9_three_times_loses_nothing(broker, topics, tecator, start_worker):
    env = {"NIRSTREAM_MAX_BATCH_SIZE": str(MAX_BATCH)}
    worker = start_worker(**env)
    messages = steady_messages(tecator, 2000)

    async def scenario():
        global_worker = worker
        sender = asyncio.create_task(stream_steadily(broker.bootstrap_servers, topics.spectra, messages, 150))
        kills = 0
        while kills < 3:
            done_before = global_worker.metric("nirstream_spectra_received_total")
            deadline = time.monotonic() + 60
            while global_worker.metric("nirstream_spectra_received_total") < done_before + 50 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # polling the worker's progress
            global_worker.kill()  # SIGKILL mid-stream
            kills += 1
            global_worker = await asyncio.to_thread(start_worker, **env)
        await sender
        return kills

    assert run(scenario()) == 3
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 2000, timeout=120, settle=2.0)))
    duplicates = check_no_loss_and_identical_duplicates(predictions, {f"line-{i % 4}:{i}" for i in range(2000)})
    print(f"\nkill -9 x3: sent 2000, predicted {len(predictions)}, lost 0, duplicates {duplicates}")
    assert duplicates <= 3 * 2 * MAX_BATCH  # at most the two batches in flight, per kill


def test_survivor_takes_over_a_killed_workers_partitions(broker, topics, tecator, start_worker):
    first, second = start_worker.many(2)
    messages = steady_messages(tecator, 1200)

    async def scenario():
        sender = asyncio.create_task(stream_steadily(broker.bootstrap_servers, topics.spectra, messages, 200))
        deadline = time.monotonic() + 60
        while first.metric("nirstream_spectra_received_total") < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # until the first worker is busy
        first.kill()
        await sender

    run(scenario())
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 1200, timeout=120, settle=2.0)))
    check_no_loss_and_identical_duplicates(predictions, {f"line-{i % 4}:{i}" for i in range(1200)})
    assert second.metric("nirstream_spectra_received_total") > 0


def test_hot_swaps_and_rollbacks_under_load(broker, registry, topics, tecator, start_worker):
    start_worker(NIRSTREAM_REGISTRY_POLL_SECONDS="3600")
    messages = steady_messages(tecator, 2400)
    plan = ["2", "1", "2", "1"]  # promote, roll back, promote, roll back

    async def scenario():
        sender = asyncio.create_task(stream_steadily(broker.bootstrap_servers, topics.spectra, messages, 300))
        for step, version in enumerate(plan):
            await asyncio.sleep(1.5)  # spacing of the operator's actions during the stream
            if version == "2":
                registry.promote("2", f"swap {step}")
            else:
                registry.rollback(f"rollback {step}")
            event = ModelEvent(event="promoted" if version == "2" else "rolled_back", version=version)
            await produce(broker.bootstrap_servers, topics.models, [(None, event.model_dump_json().encode())])
        await sender

    run(scenario())
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 2400, timeout=120, settle=1.0)))
    check_no_loss_and_identical_duplicates(predictions, {f"line-{i % 4}:{i}" for i in range(2400)})
    live_order = ["1", *plan]
    for analyzer in range(4):
        versions = [p["model_version"] for p in sorted(predictions, key=lambda p: p["sequence"]) if p["analyzer_id"] == f"line-{analyzer}"]
        runs = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
        assert runs == live_order[: len(runs)], runs  # versions follow the live sequence, never out of order


def test_registry_faults_keep_the_last_good_model_serving(broker, registry, topics, tecator, start_worker, tmp_path):
    worker = start_worker(NIRSTREAM_REGISTRY_POLL_SECONDS="0.2")
    base = registry.base

    def point_champion_at(version):
        (base / "champion.json").write_text(json.dumps({"version": version}))

    def wait_for_failures(count):
        deadline = time.monotonic() + 30
        while worker.metric("nirstream_model_swap_failures_total") < count and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the worker's metric
        return worker.metric("nirstream_model_swap_failures_total")

    def last_refusal(detail):
        worker.wait_for_log(detail)  # the detail names registry files: it is in the log, never in /ready
        body = worker.get("/ready")[1]
        assert str(base) not in body.decode()
        refusal = json.loads(body)["last_refusal"]
        return refusal["reason"], refusal["version"]

    # 1. half-written version directory (a writer that did not use the registry's atomic publish)
    half = base / "3"
    half.mkdir()
    shutil.copy(registry.path("1") / "model.keras", half / "model.keras")
    point_champion_at("3")
    assert wait_for_failures(1) == 1 and last_refusal("partial") == ("verification", "3")

    # 2. tampered file
    shutil.copytree(registry.path("2"), base / "4")
    tamper(base / "4" / "arrays.npz")
    point_champion_at("4")
    assert wait_for_failures(2) == 2 and last_refusal("checksum mismatch") == ("verification", "4")

    # 3. a valid bundle for another wavelength grid
    shifted = dataclasses.replace(tecator, wavelengths=tecator.wavelengths + 10.0)
    preprocessor, domain, model, meta = fit_small_tecator_parts(shifted, epochs=1)
    write_bundle(base / "5", model, preprocessor, domain, **meta)
    point_champion_at("5")
    assert wait_for_failures(3) == 3 and last_refusal("expects grid") == ("grid_mismatch", "5")

    # 4. champion pointer missing, then garbage
    (base / "champion.json").unlink()
    assert wait_for_failures(4) == 4 and last_refusal("no champion pointer") == ("champion_pointer", None)
    (base / "champion.json").write_text("{not json")
    assert wait_for_failures(5) == 5 and last_refusal("unreadable") == ("champion_pointer", None)

    # 5. disk full while a new version is written: nothing half-written appears, the champion is unchanged
    def disk_full(directory):
        directory.mkdir()
        (directory / "model.keras").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        registry.publish(disk_full)
    assert sorted(registry.versions(), key=int) == ["1", "2", "3", "4", "5"]
    assert not [p for p in base.iterdir() if p.name.startswith(".incoming")]

    # through all of it, version 1 kept serving
    run(produce(broker.bootstrap_servers, topics.spectra, steady_messages(tecator, 40)))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 40)))
    assert len(predictions) == 40 and {p["model_version"] for p in predictions} == {"1"}
    assert worker.get("/ready")[0] == 200


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_broker_outage_makes_the_worker_not_ready_then_it_resumes(registry, tecator, tmp_path):
    from nirstream.devtools.embedded_broker import EmbeddedBroker
    from tests.streaming import WorkerProcess, unique_topics

    topics = unique_topics()
    broker = EmbeddedBroker.start()
    worker = WorkerProcess(broker.bootstrap_servers, registry.base, topics, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        messages = steady_messages(tecator, 100)
        run(produce(broker.bootstrap_servers, topics.spectra, messages[:50]))
        assert len(run(collect(broker.bootstrap_servers, topics.predictions, 50))) == 50

        broker.stop()
        deadline = time.monotonic() + 30
        while worker.get("/ready")[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.2)  # polling readiness
        assert worker.get("/ready")[0] == 503
        before = cpu_seconds(worker.process.pid)
        time.sleep(3.0)  # a window to measure CPU use while the broker is away
        assert cpu_seconds(worker.process.pid) - before < 1.5, "worker spins while the broker is down"
        assert worker.process.poll() is None and worker.get("/health")[0] == 200

        broker = EmbeddedBroker.start(broker.port)  # same port, empty (memory storage)
        deadline = time.monotonic() + 60
        while worker.get("/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)  # polling readiness
        assert worker.get("/ready")[0] == 200
        run(produce(broker.bootstrap_servers, topics.spectra, messages[50:]))
        predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 50, timeout=90, settle=1.0)))
        assert {p["message_id"] for p in predictions} == {f"line-{i % 4}:{i}" for i in range(50, 100)}
    finally:
        worker.stop()
        broker.stop()
