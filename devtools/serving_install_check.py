"""``python -m nirstream.devtools.serving_install_check``: the serving install, as a user gets it, serves.

For each Python (this one, then the other CPythons found on the machine): a fresh virtual environment under a
temporary folder, ``pip install`` of nirstream's wheel without extras, then

* ``pip list`` holds no TensorFlow, Keras, scikit-learn, SciPy, pandas or torch;
* a real ``nirstream worker`` from that environment serves an ONNX bundle and a PLS bundle (written here, by the
  environment that runs this script, which has the trainer) from spectra on an embedded broker (started here too),
  and every spectrum's id comes back in a prediction from the champion's version;
* the worker ran with ``PYTHONPROFILEIMPORTTIME`` (``python -X importtime``): none of those heavy packages was
  imported, not even tried.

It also measures the installed size of site-packages of the serving environment and, once, of a training
environment (``pip install 'nirstream[train]'``): Docker does not run here, so these stand in for the two images'
sizes. Writes ``benchmarks/results/serving-install.json`` (``--write``); exits 1 when a check fails on any Python.
Needs the package index (``.ci/run`` runs it, not the test suite).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks/results/serving-install.json"
# Distributions a serving install must not carry, and the modules they import as
HEAVY = {"tensorflow": "tensorflow", "tensorflow-cpu": "tensorflow", "keras": "keras", "scikit-learn": "sklearn",
         "scipy": "scipy", "pandas": "pandas", "torch": "torch"}
HEAVY_MODULES = frozenset(HEAVY.values())
# Where other CPythons live on a machine: on PATH, or pyenv's versions
OTHER_PYTHONS = ("python3.11", "python3.12", "python3.13", "python3.14", "python3.15")
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
SPECTRA_PER_BUNDLE = 60


def run(command: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, check=True, **kwargs)


def python_version(python: str) -> str:
    return run([python, "-c", "import platform; print(platform.python_version())"]).stdout.strip()


def other_pythons(main: str) -> dict[str, str]:
    """One interpreter per CPython minor version 3.11 and up found here (PATH first, then pyenv), ``main``'s left out."""
    candidates = [shutil.which(name) for name in OTHER_PYTHONS]
    candidates += sorted(glob.glob(str(PYENV_VERSIONS / "3.1[1-9]*" / "bin" / "python3")))
    found: dict[str, str] = {}
    main_minor = ".".join(python_version(main).split(".")[:2])
    for candidate in filter(None, candidates):
        try:
            minor = ".".join(python_version(candidate).split(".")[:2])
        except (OSError, subprocess.CalledProcessError):
            continue
        if minor != main_minor and tuple(map(int, minor.split("."))) >= (3, 11):
            found.setdefault(minor, candidate)
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


def build_wheel(scratch: Path) -> Path:
    """nirstream's wheel, built once (setuptools builds in the source tree: leave the checkout as it was)."""
    build_existed = (ROOT / "build").exists()
    try:
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", scratch, ROOT])
    finally:
        if not build_existed:
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    return next(scratch.glob("nirstream-*.whl"))


def site_packages_mib(venv: Path) -> float:
    site = next(venv.glob("lib/python3*/site-packages"))
    return round(sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20, 1)


def install(python: str, venv: Path, requirement: str) -> dict:
    """A fresh venv at ``venv`` with ``requirement`` installed; its pip list and size."""
    started = time.monotonic()
    run([python, "-m", "venv", venv])
    pip = [venv / "bin/python", "-m", "pip"]
    run([*pip, "install", "--quiet", requirement], timeout=1800)
    listed = json.loads(run([*pip, "list", "--format", "json"]).stdout)
    return {"seconds": round(time.monotonic() - started, 1), "site_packages_mib": site_packages_mib(venv),
            "distributions": sorted(f"{d['name']}=={d['version']}" for d in listed)}


def heavy_distributions(distributions: Sequence[str]) -> list[str]:
    names = {d.split("==")[0].lower().replace("_", "-"): d for d in distributions}
    return sorted(names[name] for name in HEAVY if name in names)


def heavy_imports(importtime_log: str) -> list[str]:
    """The heavy top-level modules an ``-X importtime`` log shows imported."""
    found = {m.group(1).split(".")[0] for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", importtime_log, re.M)}
    return sorted(found & HEAVY_MODULES)


def write_bundles(base: Path) -> dict[str, Path]:
    """Two registries with one champion each, written by this (training) environment from the shipped tecator set:
    a small CNN exported to ONNX (model.onnx, parity-checked) and a PLS bundle (a plain linear model)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines: not this check's output
    import keras
    from sklearn.cross_decomposition import PLSRegression

    from nirstream.core.artifacts.bundle import write_bundle
    from nirstream.core.artifacts.registry import ModelRegistry
    from nirstream.core.chemometrics.domain import ApplicabilityDomain
    from nirstream.core.chemometrics.linear_model import LinearModel
    from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
    from nirstream.core.datasets import load_tecator

    tecator = load_tecator()
    train = tecator.split("train")
    preprocessor = SpectralPreprocessor(tecator.wavelengths, emsc_order=2).fit(train.X)
    features = preprocessor.transform(train.X)
    domain = ApplicabilityDomain().fit(features)
    fat = train.target("fat")
    common = {"targets": ["fat"], "units": {"fat": "%"}, "target_range": {"fat": (float(fat.min()), float(fat.max()))}}
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((features.shape[1],)), keras.layers.Reshape((features.shape[1], 1)),
                                keras.layers.Conv1D(4, 9, padding="same", activation="relu"), keras.layers.Flatten(),
                                keras.layers.Dense(1)])
    network.compile(optimizer="adam", loss="mse")
    network.fit(features, (fat - fat.mean()) / fat.std(), epochs=3, batch_size=32, verbose=0)
    pls = LinearModel.from_pls([PLSRegression(n_components=10, scale=False).fit(features, fat)])
    bundles = {
        "onnx": (network, {"target_mean": [float(fat.mean())], "target_scale": [float(fat.std())],
                           "parity_features": features[:32]}),
        "pls": (pls, {"target_mean": [0.0], "target_scale": [1.0], "model_kind": "pls"}),
    }
    registries = {}
    for kind, (model, extra) in bundles.items():
        registry = ModelRegistry(base / kind)
        version = registry.publish(lambda d, m=model, e=extra: write_bundle(d, m, preprocessor, domain, **common, **e))
        registry.promote(version, "serving install check")
        if kind == "onnx" and not (registry.path(version) / "model.onnx").is_file():
            raise RuntimeError("the ONNX bundle has no model.onnx: the worker would need the Keras runtime")
        registries[kind] = registry.base
    return registries


def spectra(count: int) -> list[tuple[bytes, bytes]]:
    from nirstream.core.datasets import load_tecator
    from nirstream.core.messages.codec import encode_binary, encode_json
    from nirstream.core.messages.common import WavelengthGrid
    from nirstream.core.messages.spectrum import SpectrumHeader

    tecator = load_tecator()
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    messages = []
    for i in range(count):
        header = SpectrumHeader(analyzer_id="line-1", sequence=i, grid=grid)
        encode = encode_binary if i % 2 else encode_json
        messages.append((b"line-1", encode(header, tecator.X[i % tecator.n_samples])))
    return messages


async def exchange(bootstrap: str, spectra_topic: str, predictions_topic: str, messages, timeout: float) -> list[dict]:
    """Send ``messages`` and read the predictions topic until one prediction per message arrived (or ``timeout``)."""
    import orjson
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async with AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 << 20) as producer:
        delivered = [await producer.send(spectra_topic, value, key=key) for key, value in messages]
        await asyncio.gather(*delivered)  # every spectrum acknowledged before the count starts
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    async with AIOKafkaConsumer(predictions_topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None) as consumer:
        while len(received) < len(messages) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            received += [orjson.loads(m.value) for records in batch.values() for m in records]
    return received


def serve(python: Path, broker, registry: Path, workdir: Path, kind: str) -> dict:
    """A worker of ``python``'s environment serves ``registry``'s champion; every spectrum's id must come back."""
    from nirstream.core.settings import TopicNames
    from nirstream.devtools.worker_process import WorkerProcess

    tag = uuid.uuid4().hex[:8]
    topics = TopicNames(**{name: f"s{tag}.{default}" for name, default in TopicNames().model_dump().items()})
    log = workdir / f"worker-{kind}.log"
    worker = WorkerProcess(broker.bootstrap_servers, registry, topics, log, group_id=f"g{tag}", python=str(python), cwd=workdir,
                           extra_env={"NIRSTREAM_ALLOW_UNSIGNED": "true", "PYTHONPROFILEIMPORTTIME": "1"})
    started = time.monotonic()
    outcome: dict = {"kind": kind}
    worker.start()
    try:
        worker.wait_ready(timeout=120)
        outcome["ready_seconds"] = round(time.monotonic() - started, 1)
        messages = spectra(SPECTRA_PER_BUNDLE)
        predictions = asyncio.run(exchange(broker.bootstrap_servers, topics.spectra, topics.predictions, messages, 60))
        wanted = {f"line-1:{i}" for i in range(len(messages))}
        got = {p.get("message_id") for p in predictions}
        versions = sorted({str(p.get("model_version")) for p in predictions})
        outcome |= {"spectra": len(messages), "predictions": len(predictions), "ids_match": got == wanted,
                    "model_versions": versions}
        outcome["served"] = got == wanted and versions == ["1"]
    except (RuntimeError, TimeoutError) as error:
        outcome |= {"served": False, "error": str(error).splitlines()[0]}
    finally:
        worker.stop()
    text = log.read_text(errors="replace")
    outcome["heavy_imports"] = heavy_imports(text)
    outcome["tried_heavy_imports"] = sorted({m.group(1).split(".")[0] for m in re.finditer(
        r"No module named '([\w.]+)'", text)} & HEAVY_MODULES)
    if not outcome["served"]:
        outcome["log_tail"] = [line for line in text.splitlines() if not line.startswith("import time:")][-15:]
    return outcome


def check_python(python: str, wheel: Path, scratch: Path, broker, registries: dict[str, Path]) -> dict:
    version = python_version(python)
    venv = scratch / f"serving-{version}"
    outcome: dict = {"python": version, "interpreter": python}
    try:
        installed = install(python, venv, str(wheel))
    except subprocess.CalledProcessError as error:
        return outcome | {"installed": False, "ok": False, "error": (error.stderr or "").strip()[-2000:]}
    heavy = heavy_distributions(installed["distributions"])
    outcome |= {"installed": True, "install_seconds": installed["seconds"],
                "site_packages_mib": installed["site_packages_mib"], "distributions": installed["distributions"],
                "heavy_distributions": heavy}
    workers = [serve(venv / "bin/python", broker, registry, scratch, f"{kind}-{version}")
               for kind, registry in registries.items()]
    outcome["workers"] = workers
    outcome["ok"] = (not heavy and all(w["served"] and not w["heavy_imports"] and not w["tried_heavy_imports"]
                                       for w in workers))
    return outcome


def report(outcome: dict) -> None:
    print(f"Python {outcome['python']}: " + ("OK" if outcome["ok"] else "FAILED"))
    if not outcome.get("installed"):
        print(f"  install failed: {outcome.get('error', '')[-500:]}")
        return
    print(f"  serving install: {outcome['site_packages_mib']} MiB of site-packages, "
          f"{len(outcome['distributions'])} distributions; heavy ones: {outcome['heavy_distributions'] or 'none'}")
    for worker in outcome["workers"]:
        served = (f"{worker['predictions']}/{worker['spectra']} predictions, ids match: {worker['ids_match']}"
                  if "predictions" in worker else worker.get("error", "no predictions"))
        print(f"  worker serving the {worker['kind']} bundle: {served}; heavy imports: "
              f"{worker['heavy_imports'] or 'none'}; heavy imports tried: {worker['tried_heavy_imports'] or 'none'}")
        for line in worker.get("log_tail", []):
            print(f"    | {line}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nirstream.devtools.serving_install_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=shutil.which("python3") or sys.executable,
                        help="the main CPython to check (default: the machine's python3)")
    parser.add_argument("--no-others", action="store_true", help="check only --python, not the other CPythons found")
    parser.add_argument("--no-train-size", action="store_true",
                        help="skip installing the train extra (its size is the training image's stand-in)")
    parser.add_argument("--write", nargs="?", const=RESULT, type=Path, metavar="FILE",
                        help="write the outcome as JSON (default benchmarks/results/serving-install.json)")
    args = parser.parse_args(argv)
    from nirstream.devtools.embedded_broker import EmbeddedBroker

    pythons = {".".join(python_version(args.python).split(".")[:2]): args.python}
    if not args.no_others:
        others = other_pythons(args.python)
        pythons |= others
        for minor in ("3.12", "3.13", "3.14"):
            if minor not in pythons:
                print(f"no CPython {minor} on this machine: not checked")
    with tempfile.TemporaryDirectory(prefix="nirstream-serving-") as tmp:
        scratch = Path(tmp)
        wheel = build_wheel(scratch / "wheel")
        registries = write_bundles(scratch / "registries")
        outcomes = []
        with EmbeddedBroker.start(log_path=scratch / "broker.log") as broker:
            for python in pythons.values():
                outcomes.append(check_python(python, wheel, scratch, broker, registries))
                report(outcomes[-1])
        from nirstream.core.provenance import current_commit

        # the tree the wheel was built from (this file's checkout), which may differ from the trainer's that wrote
        # the bundles and stamps the provenance
        result = {"wheel_source": {"tree": str(ROOT), "commit": current_commit(ROOT)},
                  "heavy": sorted(HEAVY), "spectra_per_bundle": SPECTRA_PER_BUNDLE, "pythons": outcomes,
                  "serving_site_packages_mib": outcomes[0].get("site_packages_mib")}
        if not args.no_train_size:
            try:
                training = install(args.python, scratch / "training", f"{wheel}[train]")
                result["training_site_packages_mib"] = training["site_packages_mib"]
                result["training_distributions"] = len(training["distributions"])
                print(f"training install: {training['site_packages_mib']} MiB of site-packages, "
                      f"{len(training['distributions'])} distributions")
            except subprocess.CalledProcessError as error:
                result["training_install_error"] = (error.stderr or "").strip()[-2000:]
                print(f"training install failed: {result['training_install_error'][-500:]}")
    if args.write:
        from nirstream.core.provenance import write_result

        command = ["python", "-m", "nirstream.devtools.serving_install_check", *(sys.argv[1:] if argv is None else argv)]
        write_result(args.write, result, argv=command)
    return 0 if all(outcome["ok"] for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
