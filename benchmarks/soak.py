"""Soak run (issue 8): a steady stream with faults sprinkled in, for minutes. Not a test.

Prints and writes JSON: throughput, p50/p99 end-to-end latency, worker RSS over time,
dead letters by reason, lost and duplicated predictions.

    python benchmarks/soak.py [--minutes 10] [--rate 100] [--output benchmarks/results/soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
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
from aiokafka import AIOKafkaConsumer  # noqa: E402

from benchmarks.stream_throughput import paper_size_registry  # noqa: E402
from nirstream.core.datasets import load_tablets  # noqa: E402
from stream.broker import EmbeddedBroker  # noqa: E402
from stream.simulate import Analyzer, ProcessEffects, replay  # noqa: E402
from tests.streaming import WorkerProcess, unique_topics  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(minutes: float, rate: float, workdir: Path) -> dict:
    with EmbeddedBroker.start() as broker:
        registry, _, _ = paper_size_registry(workdir / "registry")
        topics = unique_topics()
        worker = WorkerProcess(broker.bootstrap_servers, registry.base, topics, workdir / "worker.log",
                               extra_env={"NIRSTREAM_SATURATION_LIMIT": "9.9"}).start()
        try:
            worker.wait_ready()
            test = load_tablets(1).split("test")
            analyzers = [Analyzer(f"line-{i}", test, effects=ProcessEffects(faults=0.01), start_row=i * 100, seed=i) for i in range(4)]
            seen, latencies, dead, stop = Counter(), [], Counter(), asyncio.Event()

            async def consume() -> None:
                consumer = AIOKafkaConsumer(topics.predictions, topics.deadletter, bootstrap_servers=broker.bootstrap_servers,
                                            auto_offset_reset="earliest", group_id=None, fetch_max_wait_ms=20)
                await consumer.start()
                try:
                    while not stop.is_set():
                        batch = await consumer.getmany(timeout_ms=200)
                        now = time.time()
                        for tp, messages in batch.items():
                            for m in messages:
                                body = orjson.loads(m.value)
                                if tp.topic == topics.deadletter:
                                    dead[body["reason"]] += 1
                                else:
                                    seen[body["message_id"]] += 1
                                    latencies.append(now - datetime.fromisoformat(body["spectrum_timestamp"]).timestamp())
                finally:
                    await consumer.stop()

            rss = [(0.0, rss_mib(worker.process.pid))]

            async def sample_rss(started: float) -> None:
                while not stop.is_set():
                    await asyncio.sleep(10)  # RSS sampling interval
                    rss.append((round(time.monotonic() - started, 1), rss_mib(worker.process.pid)))

            consumer_task = asyncio.create_task(consume())
            started = time.monotonic()
            sampler = asyncio.create_task(sample_rss(started))
            stats = await replay(broker.bootstrap_servers, topics.spectra, analyzers, rate / len(analyzers), duration=minutes * 60)
            sent_seconds = time.monotonic() - started
            valid = sum(stats.valid.values())
            deadline = time.monotonic() + 60
            while len(seen) < valid and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # the last predictions are on their way
            stop.set()
            await consumer_task
            sampler.cancel()
            rss.append((round(time.monotonic() - started, 1), rss_mib(worker.process.pid)))
        finally:
            worker.stop()
    lat = np.array(latencies) * 1000
    return {
        "minutes": minutes, "target_rate_per_second": rate, "sent": stats.sent, "valid": valid,
        "throughput_per_second": stats.sent / sent_seconds, "faults_sent": dict(stats.faults),
        "dead_letters": dict(dead), "predicted_unique": len(seen), "lost": valid - len(seen),
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "max": float(lat.max())},
        "rss_mib": {"start": rss[0][1], "end": rss[-1][1], "samples": rss},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="spectra per second, all analyzers together")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = asyncio.run(soak(args.minutes, args.rate, Path(scratch)))
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mib"} | {"rss_mib": {k: result["rss_mib"][k] for k in ("start", "end")}}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
