"""Stream benchmark (issues 5 and 18): prints figures and writes them to JSON. Not a test.

For each serving runtime (ONNX Runtime, the default without a GPU, and TensorFlow/Keras, the old one, side by side):
(a) in-process pipeline alone: decode + EMSC + model + encode, batches of 256, and the bare model alone;
(b) the worker draining a pre-filled topic through the embedded broker, end to end
    (predictions acknowledged, offsets committed), its resident memory, and its cold start to /ready;
(c) the same worker with max_batch_size=1: one model call per spectrum (ONNX only);
(e) two workers in one consumer group draining the same topic, against one (ONNX only);
(d) p50/p99 end-to-end latency at steady rates of 1,000 and 3,000 spectra/s (analyzer timestamp -> prediction).

Pinned (issue 31; ``--pin both``, the default, runs it after the unpinned suite): the broker and this process (the
producer and the measuring consumer) on CPU 0, the worker on CPU 1, and (a) measured on CPU 1 too, so that (b)/(a)
compares the worker with the pipeline on the same one core; (a), (b) and (d) for the first runtime, in ``pinned``
with the same keys as the top level, and ``goals`` (pinned b/a >= 0.85, p99 at 1,000/s <= 50 ms) says whether
they are met. ``--profile`` samples the pinned worker with py-spy while it drains and at 1,000/s and writes, for its
event loop and its batch thread, the idle share and the functions with the largest shares into ``pinned.profile``.

    python benchmarks/stream_throughput.py [--spectra 20000] [--pin both|off|only] [--profile]
        [--output benchmarks/results/stream.json]

Top-level keys for runs to compare over time (ONNX runtime): ratios.b_over_a, latency_1000.p99_ms,
latency_3000.p99_ms, worker_rss_mib, cold_start_seconds; ``runtimes`` holds both runtimes' figures. The figures the
output file held before issue 31's changes are kept in ``before_issue31``.
Uses the paper-size CNN (600 channels, ~1.23 M weights) on real tablet spectra; the weights
are untrained because speed does not depend on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import aclosing
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from benchmarks.report_sections import add_section_arguments, render_only, update_section  # noqa: E402
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
from nirstream.core.provenance import write_result  # noqa: E402

BROKER_CPU, WORKER_CPU = 0, 1  # pinned runs: the broker, producer and measuring consumer on one core, the worker on the other
os.environ.setdefault("NIRSTREAM_ALLOW_UNSIGNED", "true")  # the workers serve this run's unsigned scratch bundle
GOALS = {"b_over_a": (">=", 0.85), "latency_1000.p99_ms": ("<=", 50.0)}  # issue 31, for the pinned run
START_GOALS = {"cold_start_seconds": ("<=", 3.0), "worker_rss_mib": ("<=", 250.0)}  # issue 31, the serving worker
LOG_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (threads it starts later inherit their creator's set)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, FileNotFoundError):
            pass  # a thread that has just ended


def process_cpus(pid: int) -> list[int]:
    """The CPUs any thread of ``pid`` may run on (what the pinned run checks it got)."""
    cpus: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpus |= os.sched_getaffinity(int(task.name))
        except (ProcessLookupError, FileNotFoundError):
            pass
    return sorted(cpus)


class WorkerProfile:
    """py-spy sampling one process (all threads, idle samples included) into a raw collapsed-stack file."""

    def __init__(self, pid: int, path: Path, rate: int = 250):
        spy = Path(sys.executable).with_name("py-spy")
        self.path = path
        self.process = subprocess.Popen([str(spy), "record", "--pid", str(pid), "--format", "raw", "-o", str(path),
                                         "--rate", str(rate), "--nonblocking", "--threads", "--idle"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        self.process.wait(timeout=30)
        return summarise_profile(self.path.read_text())


def summarise_profile(raw: str, top: int = 20) -> dict:
    """Per thread that serves batches (the event loop's MainThread and the batch thread): its samples, the share
    spent idle (the loop in select, the batch thread waiting for a batch), and the functions with the largest shares
    of all its samples, on the stack (inclusive) and innermost (self). Line numbers dropped: a function is one entry."""
    import re
    from collections import Counter

    threads: dict[str, dict] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        name = thread.partition(": ")[2]
        if name != "MainThread" and not name.startswith("nirstream-batch"):
            continue
        figures = threads.setdefault(name, {"samples": 0, "idle": 0, "inclusive": Counter(), "self": Counter()})
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames]
        figures["samples"] += int(count)
        leaf = frames[-1] if frames else "?"
        if leaf.endswith("select (selectors.py)") or leaf.startswith("_worker (concurrent/futures/thread.py"):
            figures["idle"] += int(count)  # the loop waiting for I/O or a timer; the batch thread waiting for a batch
            continue
        figures["self"][leaf] += int(count)
        for frame in set(frames):
            figures["inclusive"][frame] += int(count)
    return {name: {"samples": f["samples"], "idle_share": f["idle"] / max(f["samples"], 1),
                   "inclusive_share": {k: v / max(f["samples"], 1) for k, v in f["inclusive"].most_common(top + 10)
                                       if "(<frozen runpy>)" not in k and "(nirstream/__main__.py)" not in k},
                   "self_share": {k: v / max(f["samples"], 1) for k, v in f["self"].most_common(top)}}
            for name, f in threads.items()}


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


def bench_in_process(registry: ModelRegistry, msgs, runtime: str, batch: int = 256, cpus: set[int] | None = None) -> dict:
    """Pipeline (decode, preprocess, model, encode) and the bare model call, interleaved batch by batch so that a
    noisy machine slows both alike; the ratio is what the pipeline adds to the model. ``cpus``: run on these only
    (the pinned worker's core), then back on the CPUs this process had."""
    if cpus is not None:
        before = set(process_cpus(os.getpid()))
        pin_process(os.getpid(), cpus)
        try:
            return {**bench_in_process(registry, msgs, runtime, batch), "cpus": sorted(cpus)}
        finally:
            pin_process(os.getpid(), before)
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
    """Seconds from the first to the last of ``expected`` predictions, and (if asked) per message: the latency, the
    part until the worker encoded it (``predicted_at``), its wait in the worker before its batch started, its batch's
    size."""
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
                prediction = orjson.loads(message.value)
                spectrum_time = _epoch(prediction["spectrum_timestamp"])
                timings = prediction["timings"]
                latencies.append((now - spectrum_time, _epoch(prediction["predicted_at"]) - spectrum_time,
                                  timings["queue_ms"] / 1000, timings["batch_size"]))
            if seen >= expected or time.monotonic() >= deadline:
                break
    if seen < expected:
        raise RuntimeError(f"only {seen} of {expected} predictions arrived")
    return (last - first) or 1e-9, latencies


def _quantiles(values: np.ndarray) -> dict:
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


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


def start_worker(worker: WorkerProcess, cpus: set[int] | None) -> WorkerProcess:
    """Start ``worker``, on ``cpus`` if given: pinned at once (before its interpreter starts threads), and again
    once ready, for any thread started in between."""
    worker.start()
    if cpus is not None:
        pin_process(worker.pid, cpus)
    return worker


def wait_ready(worker: WorkerProcess, cpus: set[int] | None) -> list[int]:
    worker.wait_ready()
    if cpus is not None:
        pin_process(worker.pid, cpus)
    return process_cpus(worker.pid)


def bench_worker(broker, registry, msgs, workdir: Path, max_batch: int, runtime: str, workers: int = 1,
                 cpus: set[int] | None = None, profile: bool = False) -> dict:
    """Workers (one consumer group) draining a pre-filled topic: spectra/s from the first to the last prediction."""
    topics = unique_topics()
    asyncio.run(produce(broker.bootstrap_servers, topics.spectra, msgs))  # pre-filled before the worker starts
    started = time.monotonic()
    group = f"bench-{topics.spectra}"
    tag = "pinned-" if cpus else ""
    running = [start_worker(WorkerProcess(broker.bootstrap_servers, registry.base, topics,
                                          workdir / f"worker-{tag}{runtime}-{max_batch}-{workers}-{n}.log", group_id=group,
                                          extra_env={"NIRSTREAM_MAX_BATCH_SIZE": str(max_batch), "NIRSTREAM_RUNTIME": runtime}),
                            cpus)
               for n in range(workers)]
    spy = None
    try:
        worker_cpus = sorted({c for worker in running for c in wait_ready(worker, cpus)})
        cold_start = time.monotonic() - started
        spy = WorkerProfile(running[0].pid, workdir / f"drain-{tag}{runtime}.txt") if profile else None
        seconds, _ = asyncio.run(drain(broker.bootstrap_servers, topics.predictions, len(msgs), timeout=600))
        summary = spy.stop() if spy else None
        spy = None
        rss = max(_rss_mib(worker.process.pid) for worker in running)
        for worker in running:
            worker.stop()
        done = asyncio.run(committed(broker.bootstrap_servers, group, topics.spectra, 4))
    finally:
        if spy:
            spy.stop()
        for worker in running:
            worker.stop()
    return {"spectra_per_second": len(msgs) / seconds, "committed_offsets": done, "spectra": len(msgs),
            "worker_rss_mib": rss, "cold_start_seconds": cold_start, "workers": workers, "worker_cpus": worker_cpus,
            "group_join_seconds": group_join_seconds(running[0].log_path),
            **({"profile": summary} if summary else {})}


def group_join_seconds(log_path: Path) -> float | None:
    """From the worker's log: how long the broker held its JoinGroup (the first "(Re-)joining group" to "Joined
    group"). A new group's join waits there for the coordinator, not for the worker: Tansu holds it for half the
    session timeout, Kafka for group.initial.rebalance.delay.ms."""
    stamps = {}
    for line in log_path.read_text(errors="replace").splitlines():
        for key, text in (("asked", "(Re-)joining group"), ("joined", "Joined group")):
            if text in line and key not in stamps and (stamp := LOG_STAMP.match(line)):
                stamps[key] = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return (stamps["joined"] - stamps["asked"]).total_seconds() if len(stamps) == 2 else None


def bench_latency(broker, registry, spectra, grid, workdir: Path, rate: float, seconds: float, runtime: str,
                  cpus: set[int] | None = None, profile: bool = False) -> dict:
    topics = unique_topics()
    tag = "pinned-" if cpus else ""
    worker = start_worker(WorkerProcess(broker.bootstrap_servers, registry.base, topics,
                                        workdir / f"worker-latency-{tag}{runtime}-{rate:.0f}.log",
                                        extra_env={"NIRSTREAM_RUNTIME": runtime}), cpus)
    count = int(rate * seconds)
    spy = None

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
        worker_cpus = wait_ready(worker, cpus)
        spy = WorkerProfile(worker.pid, workdir / f"latency-{tag}{runtime}-{rate:.0f}.txt") if profile else None
        latency, predicted, queued, batch_sizes = np.array(asyncio.run(steady())).T * [[1000], [1000], [1000], [1]]
        summary = spy.stop() if spy else None
        spy = None
    finally:
        if spy:
            spy.stop()
        worker.stop()
    # where a spectrum's time goes: until the worker encoded its prediction (of which waiting in the worker for its
    # batch to start), then publishing, the acknowledgement and the measuring consumer's fetch
    return {"rate_per_second": rate, "spectra": count, "p50_ms": float(np.percentile(latency, 50)),
            "p99_ms": float(np.percentile(latency, 99)), "max_ms": float(latency.max()), "worker_cpus": worker_cpus,
            "breakdown_ms": {"until_encoded": _quantiles(predicted), "of_which_queued_in_worker": _quantiles(queued),
                             "encoded_to_measured": _quantiles(latency - predicted),
                             "batch_size": _quantiles(batch_sizes)},
            **({"profile": summary} if summary else {})}


def run_suite(broker, registry, msgs, spectra, grid, workdir: Path, args, runtimes: list[str], pinned: bool) -> dict:
    """(a)-(e) for each runtime; pinned: (a), (b) and (d) only, the worker (and (a)) on ``WORKER_CPU``, the broker
    and this process on ``BROKER_CPU``."""
    worker_cpus = {WORKER_CPU} if pinned else None
    label = "pinned " if pinned else ""
    results = {}
    for runtime in runtimes:
        figures = results[runtime] = {}
        a = figures["a_in_process_batch256"] = bench_in_process(registry, msgs, runtime, cpus=worker_cpus)
        print(f"[{label}{runtime}] (a) in-process pipeline, batch 256: {a['spectra_per_second']:,.0f} spectra/s; model alone "
              f"{a['model_alone_spectra_per_second']:,.0f} (pipeline/model {a['pipeline_over_model']:.2f})", flush=True)
        b = figures["b_worker_drain"] = bench_worker(broker, registry, msgs, workdir, 256, runtime, cpus=worker_cpus,
                                                     profile=pinned and args.profile)
        print(f"[{label}{runtime}] (b) worker draining the topic: {b['spectra_per_second']:,.0f} spectra/s "
              f"({b['committed_offsets']} offsets committed), RSS {b['worker_rss_mib']:.0f} MiB, "
              f"cold start {b['cold_start_seconds']:.1f} s, worker on CPUs {b['worker_cpus']}", flush=True)
        if runtime == "onnx" and not pinned:
            c = figures["c_worker_per_message"] = bench_worker(broker, registry, msgs[: args.per_message_spectra], workdir,
                                                               1, runtime)
            print(f"[{runtime}] (c) one model call per spectrum: {c['spectra_per_second']:,.0f} spectra/s", flush=True)
            e = figures["e_two_workers_drain"] = bench_worker(broker, registry, msgs, workdir, 256, runtime, workers=2)
            e["over_one_worker"] = e["spectra_per_second"] / b["spectra_per_second"]
            print(f"[{runtime}] (e) two workers in one group: {e['spectra_per_second']:,.0f} spectra/s "
                  f"({e['over_one_worker']:.2f}x one worker)", flush=True)
        for rate in args.rates:
            d = figures[f"latency_{rate:.0f}"] = bench_latency(broker, registry, spectra, grid, workdir, rate, args.seconds,
                                                               runtime, cpus=worker_cpus,
                                                               profile=pinned and args.profile and rate == 1000)
            print(f"[{label}{runtime}] (d) at {rate:.0f} spectra/s: p50 {d['p50_ms']:.1f} ms, p99 {d['p99_ms']:.1f} ms",
                  flush=True)
        figures["ratios"] = {"b_over_a": b["spectra_per_second"] / a["spectra_per_second"]}
    return results


def headline(runtimes: dict, runtime: str, rates: list[float]) -> dict:
    """The top-level keys compared over time, from ``runtime``'s figures."""
    lean = runtimes[runtime]
    figures = {
        "runtime": runtime,
        "ratios": {"b_over_a": lean["ratios"]["b_over_a"],
                   "a_pipeline_over_model": lean["a_in_process_batch256"]["pipeline_over_model"]},
        **{f"latency_{rate:.0f}": lean[f"latency_{rate:.0f}"] for rate in rates},
        "worker_rss_mib": lean["b_worker_drain"]["worker_rss_mib"],
        **({"two_workers_over_one": lean["e_two_workers_drain"]["over_one_worker"]} if "e_two_workers_drain" in lean else {}),
        "cold_start_seconds": lean["b_worker_drain"]["cold_start_seconds"],
        # what the worker itself takes to start: cold start less the broker's hold of a new group's join
        "group_join_seconds": lean["b_worker_drain"]["group_join_seconds"],
    }
    if "keras" in runtimes and runtime != "keras":
        old = runtimes["keras"]["b_worker_drain"]["spectra_per_second"]
        figures["ratios"]["drain_over_keras_worker"] = lean["b_worker_drain"]["spectra_per_second"] / old
    return figures


def goals(pinned: dict) -> dict:
    """Issue 31's goals for the pinned run, each with the figure and whether it is met."""
    figures = {"b_over_a": pinned["ratios"]["b_over_a"], "latency_1000.p99_ms": pinned.get("latency_1000", {}).get("p99_ms")}
    return {key: {"goal": f"{sense} {bound:g}", "pinned": figures[key],
                  "met": bool(figures[key] >= bound if sense == ">=" else figures[key] <= bound)}
            for key, (sense, bound) in GOALS.items() if figures[key] is not None}


def start_goals(figures: dict) -> dict:
    """Issue 31's start-up goals for the serving worker (unpinned run), each with the figure and whether it is met;
    cold start also without the broker's hold of the join."""
    join = figures.get("group_join_seconds")
    values = {key: figures[key] for key in START_GOALS}
    if join is not None:
        values["cold_start_seconds_without_group_join"] = figures["cold_start_seconds"] - join
    bounds = {**START_GOALS, "cold_start_seconds_without_group_join": START_GOALS["cold_start_seconds"]}
    return {key: {"goal": f"{bounds[key][0]} {bounds[key][1]:g}", "value": value,
                  "met": bool(value >= bounds[key][1] if bounds[key][0] == ">=" else value <= bounds[key][1])}
            for key, value in values.items()}


def earlier_figures(path: Path) -> dict | None:
    """The results file as it was before issue 31 (its figures, runtimes and provenance; kept across reruns)."""
    if not path.exists():
        return None
    old = json.loads(path.read_text())
    return old.get("before_issue31", old)


SECTION, SECTION_COMMAND = "stream-speed", "benchmarks/stream_throughput.py --readme docs/worker.md"


def _column(figures: dict, runtime: str) -> dict:
    """One column of the speed table: a run's figures for ``runtime`` (a results file, its pinned section, or the
    pre-issue-31 one)."""
    run = figures["runtimes"][runtime]
    a, b = run["a_in_process_batch256"], run["b_worker_drain"]
    join = b.get("group_join_seconds")
    cell = {"a": f"{a['spectra_per_second']:,.0f} /s",
            "model": f"{a['model_alone_spectra_per_second']:,.0f} /s (pipeline/model {a['pipeline_over_model']:.2f})",
            "b": f"{b['spectra_per_second']:,.0f} /s ({run['ratios']['b_over_a']:.2f} × in-process)",
            "e": (f"{run['e_two_workers_drain']['spectra_per_second']:,.0f} /s "
                  f"({run['e_two_workers_drain']['over_one_worker']:.2f} × one)") if "e_two_workers_drain" in run else "",
            "rss": f"{b['worker_rss_mib']:.0f} MiB",
            "cold": f"{b['cold_start_seconds']:.1f} s" + (f" ({join:.1f} s of it the group join)" if join else "")}
    for rate in (1000, 3000):
        latency = run.get(f"latency_{rate}")
        cell[rate] = f"{latency['p50_ms']:.0f} / {latency['p99_ms']:.0f} ms" if latency else ""
    return cell


def render_section(result: dict) -> str:
    """docs/worker.md's speed table: before issue 31, now unpinned, now pinned; and issue 31's goals."""
    runtime = result["runtime"]
    columns = [("before issue 31", _column(result["before_issue31"], runtime)) if "before_issue31" in result else None,
               ("now", _column(result, runtime)),
               ("now, pinned (worker on its own core)", _column(result["pinned"], runtime)) if "pinned" in result else None]
    columns = [c for c in columns if c]
    rows = [("in-process pipeline, batch 256 (decode, preprocessing, T²/Q, model, encode)", "a"),
            ("model alone, batch 256", "model"),
            ("worker draining a pre-filled topic (predictions acknowledged, offsets committed)", "b"),
            ("two workers in one group", "e"), ("worker RSS", "rss"), ("cold start to `/ready`", "cold"),
            ("end-to-end p50 / p99 at 1,000 spectra/s", 1000), ("end-to-end p50 / p99 at 3,000 spectra/s", 3000)]
    lines = ["| " + runtime.upper() + " worker | " + " | ".join(name for name, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    lines += [f"| {label} | " + " | ".join(cell[key] for _, cell in columns) + " |" for label, key in rows]
    goals_met = [(key, goal) for key, goal in {**result.get("start_goals", {}), **result.get("goals", {})}.items()]
    if goals_met:
        lines.append("")
        lines.append("Issue 31's goals: " + "; ".join(
            f"`{key}` {goal['goal']}: {goal.get('value', goal.get('pinned')):.3g}, {'met' if goal['met'] else 'not met'}"
            for key, goal in goals_met) + " (pinned run for `b_over_a` and latency).")
    provenance = result["provenance"]
    lines += ["", f"From `benchmarks/results/stream.json` (commit `{provenance['commit'][:10]}`, "
                  f"`{provenance['command']}`)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", type=int, default=20000)
    parser.add_argument("--per-message-spectra", type=int, default=2000)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 3000.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runtimes", nargs="+", default=["onnx", "keras"], choices=["onnx", "keras"],
                        help="the first is the one the top-level keys report")
    parser.add_argument("--pin", choices=["both", "off", "only"], default="both",
                        help="both: the unpinned suite, then the pinned one (first runtime); only: the pinned one alone")
    parser.add_argument("--profile", action="store_true", help="py-spy samples the pinned worker (drain, 1,000/s)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/stream.json"))
    add_section_arguments(parser, SECTION)
    args = parser.parse_args()
    if render_only(args, parser, SECTION, render_section, SECTION_COMMAND):
        return 0
    if args.pin != "off" and len(os.sched_getaffinity(0)) < 2:
        parser.error("the pinned run needs two CPUs")
    if args.profile and not Path(sys.executable).with_name("py-spy").exists():
        parser.error(f"--profile needs py-spy beside {sys.executable}: pip install py-spy")
    before = earlier_figures(args.output)

    with tempfile.TemporaryDirectory() as scratch, EmbeddedBroker.start() as broker:
        workdir = Path(scratch)
        registry, spectra, grid = paper_size_registry(workdir / "registry")
        msgs = messages(spectra, grid, args.spectra)
        results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
        if args.pin != "only":
            results["runtimes"] = run_suite(broker, registry, msgs, spectra, grid, workdir, args, args.runtimes, pinned=False)
            results.update(headline(results["runtimes"], args.runtimes[0], args.rates))
            results["start_goals"] = start_goals(results)
        if args.pin != "off":
            everywhere = set(process_cpus(os.getpid()))
            pin_process(broker.process.pid, {BROKER_CPU})
            pin_process(os.getpid(), {BROKER_CPU})
            try:
                pinned = run_suite(broker, registry, msgs, spectra, grid, workdir, args, args.runtimes[:1], pinned=True)
            finally:
                pin_process(os.getpid(), everywhere)
            section = results["pinned"] = {"cpus": {"broker_and_benchmark": [BROKER_CPU], "worker_and_a": [WORKER_CPU]},
                                           **headline(pinned, args.runtimes[0], args.rates)}
            section["runtimes"] = pinned
            lean = pinned[args.runtimes[0]]
            profiles = {"drain": lean["b_worker_drain"].pop("profile", None),
                        "latency_1000": lean.get("latency_1000", {}).pop("profile", None)}
            if any(profiles.values()):
                section["profile"] = {k: v for k, v in profiles.items() if v}
            results["goals"] = goals(section)
        if before:
            results["before_issue31"] = before
        print(json.dumps({k: v for k, v in results.items() if k not in ("runtimes", "machine", "pinned", "before_issue31")},
                         indent=1))
    write_result(args.output, results)
    if args.readme:
        update_section(args.readme, SECTION, render_section(json.loads(args.output.read_text())), SECTION_COMMAND)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
