"""Soak run (issue 8): a steady stream with faults sprinkled in, for minutes. Not a test.

Prints and writes JSON: throughput, p50/p99 end-to-end latency, worker RSS over time,
dead letters by reason, lost and duplicated predictions.

    python benchmarks/soak.py [--minutes 10] [--rate 100] [--output benchmarks/results/soak.json]
                              [--bootstrap-servers kafka:9092]   # default: a fresh embedded broker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from benchmarks.proc import cpu_seconds, rss_mib  # noqa: E402
from benchmarks.stream_throughput import paper_size_registry  # noqa: E402
from nirstream.core.datasets import load_tablets  # noqa: E402
from nirstream.core.settings import client_options  # noqa: E402
from nirstream.devtools.embedded_broker import EmbeddedBroker  # noqa: E402
from nirstream.devtools.simulate import Analyzer, ProcessEffects, replay  # noqa: E402
from nirstream.kafka.topic_reader import TopicFollower  # noqa: E402
from tests.streaming import WorkerProcess, unique_topics  # noqa: E402
from nirstream.core.provenance import write_result

SAMPLED_METRICS = {"nirstream_consumer_lag", "nirstream_batch_seconds_sum", "nirstream_batch_seconds_count"}


async def soak(minutes: float, rate: float, workdir: Path, drain_idle: float = 60.0, bootstrap: str | None = None) -> dict:
    """Against ``bootstrap`` (your Kafka; no SASL/TLS) or, when None, a fresh embedded broker."""
    with contextlib.ExitStack() as stack:
        broker = None if bootstrap else stack.enter_context(EmbeddedBroker.start())
        bootstrap = bootstrap or broker.bootstrap_servers
        registry, _, _ = paper_size_registry(workdir / "registry")
        topics = unique_topics()
        worker = WorkerProcess(bootstrap, registry.base, topics, workdir / "worker.log",
                               extra_env={"NIRSTREAM_SATURATION_LIMIT": "9.9"}).start()
        try:
            worker.wait_ready()
            test = load_tablets(1).split("test")
            analyzers = [Analyzer(f"line-{i}", test, effects=ProcessEffects(faults=0.01), start_row=i * 100, seed=i) for i in range(4)]
            seen, latencies, dead, stop = Counter(), [], Counter(), asyncio.Event()

            async def consume() -> None:
                follower = TopicFollower(client_options(bootstrap), topics.predictions, topics.deadletter,
                                         from_beginning=True, fetch_max_wait_ms=20)
                async for messages in follower.batches(stop):
                    now = time.time()
                    for m in messages:
                        body = orjson.loads(m.value)
                        if m.topic == topics.deadletter:
                            dead[body["reason"]] += 1
                        else:
                            seen[body["message_id"]] += 1
                            latencies.append(now - datetime.fromisoformat(body["spectrum_timestamp"]).timestamp())

            sent = Counter()
            timeline: list[dict] = []

            async def sample(started: float) -> None:
                # every 10 s: how far the worker is behind, and who uses the CPU
                while True:
                    totals = Counter()  # one scrape of the worker's /metrics
                    for sample in await asyncio.to_thread(worker.samples, SAMPLED_METRICS):
                        totals[sample.name] += sample.value
                    lag, batches = totals["nirstream_consumer_lag"], totals["nirstream_batch_seconds_count"]
                    batch_time = totals["nirstream_batch_seconds_sum"]
                    timeline.append({"t": round(time.monotonic() - started, 1), "sent": sent["n"], "predicted": len(seen),
                                     "worker_lag": lag, "rss_mib": rss_mib(worker.process.pid),
                                     "worker_batches": batches, "worker_batch_seconds": round(batch_time, 3),
                                     "cpu_seconds": {"worker": cpu_seconds(worker.process.pid),
                                                     "broker": cpu_seconds(broker.process.pid) if broker else 0.0,
                                                     "measurer": round(sum(os.times()[:2]), 1)}})
                    await asyncio.sleep(10)  # sampling interval

            consumer_task = asyncio.create_task(consume())
            started = time.monotonic()
            sampler = asyncio.create_task(sample(started))
            stats = await replay(bootstrap, topics.spectra, analyzers, rate / len(analyzers),
                                 duration=minutes * 60, on_progress=lambda n: sent.update(n=n))
            sent_seconds = time.monotonic() - started
            valid = sum(stats.valid.values())
            predicted_when_sending_ended = len(seen)
            # Drain: wait while predictions still arrive; stop after `drain_idle` s without one.
            last_count, last_progress = len(seen), time.monotonic()
            while len(seen) < valid and time.monotonic() - last_progress < drain_idle:
                await asyncio.sleep(0.5)  # polling the measuring consumer's count
                if len(seen) > last_count:
                    last_count, last_progress = len(seen), time.monotonic()
            drained_seconds = time.monotonic() - started - sent_seconds
            stop.set()
            await consumer_task
            sampler.cancel()
            timeline.append({"t": round(time.monotonic() - started, 1), "sent": stats.sent, "predicted": len(seen),
                             "worker_lag": await asyncio.to_thread(worker.metric, "nirstream_consumer_lag"),
                             "rss_mib": rss_mib(worker.process.pid)})
        finally:
            worker.stop()
        log_lines = (workdir / "worker.log").read_text(errors="replace").splitlines()
    lat = np.array(latencies) * 1000
    return {
        "minutes": minutes, "target_rate_per_second": rate, "sent": stats.sent, "valid": valid,
        "throughput_per_second": stats.sent / sent_seconds, "faults_sent": dict(stats.faults),
        "dead_letters": dict(dead), "predicted_unique": len(seen), "lost": valid - len(seen),
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "max": float(lat.max())},
        "rss_mib": {"start": timeline[0]["rss_mib"], "end": timeline[-1]["rss_mib"],
                    "max": max(row["rss_mib"] for row in timeline)},
        "predicted_when_sending_ended": predicted_when_sending_ended, "drain_seconds": round(drained_seconds, 1),
        "worker_log": {"rebalance_lines": sum("rebalanc" in line.lower() for line in log_lines),
                       "warning_lines": sum("[WARNING]" in line for line in log_lines),
                       "error_lines": sum("[ERROR]" in line for line in log_lines)},
        "first_vs_last_minute": first_vs_last_minute(timeline, minutes * 60),
        "timeline": timeline,
    }


def first_vs_last_minute(timeline: list[dict], sending_seconds: float) -> dict:
    """CPU cores each process used and the worker's mean batch time, in the first and the last minute of sending.

    Tells the worker's own slowdown apart from the broker's (the embedded broker's in-memory
    storage costs more per fetch as its partitions grow)."""
    rows = [r for r in timeline if "cpu_seconds" in r and r["t"] <= sending_seconds + 1]
    if len(rows) < 2:
        return {}

    def window(a: dict, b: dict) -> dict:
        seconds = b["t"] - a["t"]
        cores = {"cpu_cores": {k: round((b["cpu_seconds"][k] - a["cpu_seconds"][k]) / seconds, 2) for k in a["cpu_seconds"]}}
        if "worker_batches" not in a:  # runs from before the worker's batch counters were sampled
            return cores
        batches = b["worker_batches"] - a["worker_batches"]
        return {**cores,
                "worker_batch_ms": round(1000 * (b["worker_batch_seconds"] - a["worker_batch_seconds"]) / max(batches, 1), 1),
                "spectra_per_batch": round((b["predicted"] - a["predicted"]) / max(batches, 1), 1)}

    step = max(1, round(60 / max(rows[1]["t"] - rows[0]["t"], 1e-9)))
    return {"first": window(rows[0], rows[min(step, len(rows) - 1)]), "last": window(rows[max(len(rows) - 1 - step, 0)], rows[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="spectra per second, all analyzers together")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/soak.json"))
    parser.add_argument("--bootstrap-servers", help="soak against this Kafka (plaintext) instead of a fresh embedded broker")
    parser.add_argument("--summarise", type=Path, metavar="RUN_JSON",
                        help="no run: write the first-vs-last-minute CPU summary of an earlier run's timeline to --output")
    args = parser.parse_args()
    if args.summarise:
        run = json.loads(args.summarise.read_text())
        summary = {"run": args.summarise.name, "minutes": run["minutes"], "target_rate_per_second": run["target_rate_per_second"],
                   "first_vs_last_minute": first_vs_last_minute(run["timeline"], run["minutes"] * 60)}
        print(json.dumps(summary, indent=2))
        write_result(args.output, summary)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        result = asyncio.run(soak(args.minutes, args.rate, Path(scratch), bootstrap=args.bootstrap_servers))
    print(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=2))
    write_result(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
