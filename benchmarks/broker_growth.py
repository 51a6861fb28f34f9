"""How the embedded broker slows as a partition grows (issue 8 soak finding). Not a test.

Fills one partition with 2.7 KB records (one record per produce request, as an analyzer
sends them) and, at each size, measures how long a record takes from produce to a waiting
consumer and the broker CPU per delivery. Prints and writes JSON.

    python benchmarks/broker_growth.py [--sizes 100 4000 12000] [--output benchmarks/results/broker-growth.json]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from benchmarks.proc import cpu_seconds  # noqa: E402
from nirstream.devtools.embedded_broker import EmbeddedBroker  # noqa: E402
from nirstream.core.provenance import write_result

TOPIC = "growth"
PAYLOAD = b"\x00" * 2700  # the size of a binary 650-channel spectrum message


async def deliveries(bootstrap: str, broker_pid: int, producer: AIOKafkaProducer, count: int = 20) -> dict:
    partition = TopicPartition(TOPIC, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        latencies, cpu_before = [], cpu_seconds(broker_pid)
        for _ in range(count):
            await asyncio.sleep(0.05)  # let the consumer sit in a fetch, as between an analyzer's spectra
            sent = time.monotonic()
            await producer.send_and_wait(TOPIC, b"probe")
            while not await consumer.getmany(partition, timeout_ms=5000):
                pass
            latencies.append((time.monotonic() - sent) * 1000)
        return {"delivery_ms_p50": round(float(np.median(latencies)), 2),
                "broker_cpu_ms_per_delivery": round((cpu_seconds(broker_pid) - cpu_before) * 1000 / count, 2)}
    finally:
        await consumer.stop()


async def measure(sizes: list[int]) -> list[dict]:
    rows = []
    with EmbeddedBroker.start() as broker:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=0)
        await producer.start()
        try:
            stored = 0
            for size in sorted(sizes):
                filling, added = time.monotonic(), size - stored
                while stored < size:
                    await producer.send_and_wait(TOPIC, PAYLOAD)
                    stored += 1
                produce_ms = 1000 * (time.monotonic() - filling) / max(added, 1)
                row = {"stored_records": stored, "produce_ms_mean": round(produce_ms, 2),
                       **await deliveries(broker.bootstrap_servers, broker.process.pid, producer)}
                stored += 20
                print(row, flush=True)
                rows.append(row)
        finally:
            await producer.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 4000, 12000])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/broker-growth.json"))
    args = parser.parse_args()
    rows = asyncio.run(measure(args.sizes))
    write_result(args.output, {"broker": "Tansu 0.6.0 memory://", "rows": rows})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
