"""Stream benchmark (issues 5 and 18): prints figures and writes them to JSON. Not a test.

For each serving runtime (ONNX Runtime, the default without a GPU, and TensorFlow/Keras, the old one, side by side):
(a) in-process pipeline alone: decode + EMSC + model + encode, batches of 256, and the bare model alone;
(b) the worker draining a pre-filled topic through the embedded broker, end to end
    (predictions acknowledged, offsets committed), its resident memory, and its cold start to /ready;
(c) the same worker with max_batch_size=1: one model call per spectrum (ONNX only);
(e) two workers in one consumer group draining the same topic, against one (ONNX only);
(d) p50/p99 end-to-end latency at steady rates of 1,000 and 3,000 spectra/s (analyzer timestamp -> prediction).

    python benchmarks/stream_throughput.py [--spectra 20000] [--output benchmarks/results/stream.json]

Top-level keys for runs to compare over time (ONNX runtime): ratios.b_over_a, latency_1000.p99_ms,
latency_3000.p99_ms, worker_rss_mib, cold_start_seconds; ``runtimes`` holds both runtimes' figures.
Uses the paper-size CNN (600 channels, ~1.23 M weights) on real tablet spectra; the weights
are untrained because speed does not depend on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from contextlib import aclosing
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from nirstream.core.artifacts.bundle import write_bundle  # noqa: E402
from nirstream.core.messages.codec import encode_binary  # noqa: E402
from nirstream.core.runtimes.cpu_threads import serve_with_one_blas_thread  # noqa: E402
from nirstream.core.datasets import load_tablets  # noqa: E402
from nirstream.core.chemometrics.domain import ApplicabilityDomain  # noqa: E402
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor  # noqa: E402
from nirstream.core.serving.predictor import Predictor  # noqa: E402
from nirstream.core.artifacts.registry import ModelRegistry  # noqa: E402
from nirstream.core.messages.common import WavelengthGrid  # noqa: E402
from nirstream.core.messages.spectrum import SpectrumHeader  # noqa: E402
from nirstream.devtools.embedded_broker import EmbeddedBroker  # noqa: E402
from nirstream.kafka.topic_reader import TopicFollower  # noqa: E402
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, process_batch  # noqa: E402
from tests.streaming import WorkerProcess, produce, unique_topics  # noqa: E402
from nirstream.trainer.cnn import build_cnn  # noqa: E402
from nirstream.core.provenance import write_result


def paper_size_registry(base: Path) -> tuple[ModelRegistry, np.ndarray, WavelengthGrid]:
    tablets = load_tablets(1)
    calibrate = tablets.split("calibrate")
    preprocessor = SpectralPreprocessor(tablets.wavelengths, first_nm=600, last_nm=1798).fit(calibrate.X)
    domain = ApplicabilityDomain().fit(preprocessor.transform(calibrate.X))
    model = build_cnn(preprocessor.n_model_channels)
    registry = ModelRegistry(base)
    features = preprocessor.transform(calibrate.X[:64])  # the ONNX twin is checked on these, as the trainer does
    version = registry.publish(lambda d: write_bundle(d, model, preprocessor, domain, parity_features=features,
                                                      targets=["assay"], units={"assay": "mg"}, target_mean=[0.0],
                                                      target_scale=[1.0]))
    registry.promote(version, "benchmark")
    return registry, tablets.X, WavelengthGrid.from_wavelengths(tablets.wavelengths)


def messages(spectra: np.ndarray, grid: WavelengthGrid, count: int, analyzers: int = 8, stamp: bool = False):
    out = []
    for i in range(count):
        header = SpectrumHeader(analyzer_id=f"line-{i % analyzers}", sequence=i, grid=grid)
        out.append((header.analyzer_id.encode(), encode_binary(header, spectra[i % len(spectra)])))
    return out


def bench_in_process(registry: ModelRegistry, msgs, runtime: str, batch: int = 256) -> dict:
    """Pipeline (decode, preprocess, model, encode) and the bare model call, interleaved batch by batch so that a
    noisy machine slows both alike; the ratio is what the pipeline adds to the model."""
    serve_with_one_blas_thread()  # as the worker does
    predictor = Predictor(registry.load(runtime=runtime))
    predictor.warm_up()
    records = [InboundRecord("t", 0, i, k, v, time.time()) for i, (k, v) in enumerate(msgs)]
    features = np.zeros((batch, *predictor._input_shape), np.float32)
    process_batch(records[:batch], predictor, BatchPolicy())  # warm-up
    pipeline_seconds = model_seconds = 0.0
    for start in range(0, len(records) - batch + 1, batch):
        started = time.perf_counter()
        process_batch(records[start : start + batch], predictor, BatchPolicy())
        between = time.perf_counter()
        predictor._call(features)
        pipeline_seconds, model_seconds = (pipeline_seconds + between - started,
                                           model_seconds + time.perf_counter() - between)
    pipeline, model_alone = 1 / pipeline_seconds, 1 / model_seconds  # per batch: ratios and rates share the unit
    spectra = (len(records) // batch) * batch
    return {"spectra_per_second": spectra * pipeline, "model_alone_spectra_per_second": spectra * model_alone,
            "pipeline_over_model": pipeline / model_alone}


async def drain(bootstrap: str, topic: str, expected: int, timeout: float, latency: bool = False) -> tuple[float, list[float]]:
    """Seconds from the first to the last of ``expected`` predictions, and (if asked) per-message latencies."""
    follower = TopicFollower({"bootstrap_servers": bootstrap}, topic, from_beginning=True, max_records=10000,
                             fetch_max_wait_ms=10)
    first = last = None
    latencies, seen = [], 0
    deadline = time.monotonic() + timeout
    async with aclosing(follower.batches(asyncio.Event())) as batches:
        async for messages in batches:
            now = time.time()
            for message in messages:
                seen += 1
                first = first or time.monotonic()
                last = time.monotonic()
                if not latency:
                    continue  # keep the measuring consumer light: it shares the 2 cores with the worker
                stamp = orjson.loads(message.value)["spectrum_timestamp"]
                latencies.append(now - _epoch(stamp))
            if seen >= expected or time.monotonic() >= deadline:
                break
    if seen < expected:
        raise RuntimeError(f"only {seen} of {expected} predictions arrived")
    return (last - first) or 1e-9, latencies


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)])
    finally:
        await consumer.stop()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_worker(broker, registry, msgs, workdir: Path, max_batch: int, runtime: str, workers: int = 1) -> dict:
    """Workers (one consumer group) draining a pre-filled topic: spectra/s from the first to the last prediction."""
    topics = unique_topics()
    asyncio.run(produce(broker.bootstrap_servers, topics.spectra, msgs))  # pre-filled before the worker starts
    started = time.monotonic()
    group = f"bench-{topics.spectra}"
    running = [WorkerProcess(broker.bootstrap_servers, registry.base, topics,
                             workdir / f"worker-{runtime}-{max_batch}-{workers}-{n}.log", group_id=group,
                             extra_env={"NIRSTREAM_MAX_BATCH_SIZE": str(max_batch), "NIRSTREAM_RUNTIME": runtime}).start()
               for n in range(workers)]
    try:
        for worker in running:
            worker.wait_ready()
        cold_start = time.monotonic() - started
        seconds, _ = asyncio.run(drain(broker.bootstrap_servers, topics.predictions, len(msgs), timeout=600))
        rss = max(_rss_mib(worker.process.pid) for worker in running)
        for worker in running:
            worker.stop()
        done = asyncio.run(committed(broker.bootstrap_servers, group, topics.spectra, 4))
    finally:
        for worker in running:
            worker.stop()
    return {"spectra_per_second": len(msgs) / seconds, "committed_offsets": done, "spectra": len(msgs),
            "worker_rss_mib": rss, "cold_start_seconds": cold_start, "workers": workers}


def bench_latency(broker, registry, spectra, grid, workdir: Path, rate: float, seconds: float, runtime: str) -> dict:
    topics = unique_topics()
    worker = WorkerProcess(broker.bootstrap_servers, registry.base, topics, workdir / f"worker-latency-{runtime}-{rate:.0f}.log",
                           extra_env={"NIRSTREAM_RUNTIME": runtime}).start()
    count = int(rate * seconds)

    async def steady() -> list[float]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=1)
        await producer.start()
        collector = asyncio.create_task(drain(broker.bootstrap_servers, topics.predictions, count, timeout=seconds + 60, latency=True))
        started = time.monotonic()
        for i in range(count):
            header = SpectrumHeader(analyzer_id=f"line-{i % 8}", sequence=i, grid=grid)  # timestamp = now
            await producer.send(topics.spectra, encode_binary(header, spectra[i % len(spectra)]), key=header.analyzer_id.encode())
            delay = started + (i + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the steady analyzer rate
        await producer.stop()
        return (await collector)[1]

    try:
        worker.wait_ready()
        latencies = np.array(asyncio.run(steady())) * 1000
    finally:
        worker.stop()
    return {"rate_per_second": rate, "spectra": count, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "max_ms": float(latencies.max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", type=int, default=20000)
    parser.add_argument("--per-message-spectra", type=int, default=2000)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 3000.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runtimes", nargs="+", default=["onnx", "keras"], choices=["onnx", "keras"],
                        help="the first is the one the top-level keys report")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/stream.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, EmbeddedBroker.start() as broker:
        workdir = Path(scratch)
        registry, spectra, grid = paper_size_registry(workdir / "registry")
        msgs = messages(spectra, grid, args.spectra)
        results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                   "runtimes": {}}
        for runtime in args.runtimes:
            figures = results["runtimes"][runtime] = {}
            a = figures["a_in_process_batch256"] = bench_in_process(registry, msgs, runtime)
            print(f"[{runtime}] (a) in-process pipeline, batch 256: {a['spectra_per_second']:,.0f} spectra/s; model alone "
                  f"{a['model_alone_spectra_per_second']:,.0f} (pipeline/model {a['pipeline_over_model']:.2f})", flush=True)
            b = figures["b_worker_drain"] = bench_worker(broker, registry, msgs, workdir, 256, runtime)
            print(f"[{runtime}] (b) worker draining the topic: {b['spectra_per_second']:,.0f} spectra/s "
                  f"({b['committed_offsets']} offsets committed), RSS {b['worker_rss_mib']:.0f} MiB, "
                  f"cold start {b['cold_start_seconds']:.1f} s", flush=True)
            if runtime == "onnx":
                c = figures["c_worker_per_message"] = bench_worker(broker, registry, msgs[: args.per_message_spectra], workdir,
                                                                   1, runtime)
                print(f"[{runtime}] (c) one model call per spectrum: {c['spectra_per_second']:,.0f} spectra/s", flush=True)
                e = figures["e_two_workers_drain"] = bench_worker(broker, registry, msgs, workdir, 256, runtime, workers=2)
                e["over_one_worker"] = e["spectra_per_second"] / b["spectra_per_second"]
                print(f"[{runtime}] (e) two workers in one group: {e['spectra_per_second']:,.0f} spectra/s "
                      f"({e['over_one_worker']:.2f}x one worker)", flush=True)
            for rate in args.rates:
                d = figures[f"latency_{rate:.0f}"] = bench_latency(broker, registry, spectra, grid, workdir, rate, args.seconds,
                                                                   runtime)
                print(f"[{runtime}] (d) at {rate:.0f} spectra/s: p50 {d['p50_ms']:.1f} ms, p99 {d['p99_ms']:.1f} ms", flush=True)
            figures["ratios"] = {"b_over_a": b["spectra_per_second"] / a["spectra_per_second"]}
        lean = results["runtimes"][args.runtimes[0]]
        results.update({
            "runtime": args.runtimes[0],
            "ratios": {"b_over_a": lean["ratios"]["b_over_a"],
                       "a_pipeline_over_model": lean["a_in_process_batch256"]["pipeline_over_model"]},
            **{f"latency_{rate:.0f}": lean[f"latency_{rate:.0f}"] for rate in args.rates},
            "worker_rss_mib": lean["b_worker_drain"]["worker_rss_mib"],
            **({"two_workers_over_one": lean["e_two_workers_drain"]["over_one_worker"]} if "e_two_workers_drain" in lean else {}),
            "cold_start_seconds": lean["b_worker_drain"]["cold_start_seconds"],
        })
        if "keras" in results["runtimes"] and args.runtimes[0] != "keras":
            old = results["runtimes"]["keras"]["b_worker_drain"]["spectra_per_second"]
            results["ratios"]["drain_over_keras_worker"] = lean["b_worker_drain"]["spectra_per_second"] / old
        print(json.dumps({k: v for k, v in results.items() if k not in ("runtimes", "machine")}, indent=1))
    write_result(args.output, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
