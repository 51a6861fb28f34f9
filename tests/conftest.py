import os

import numpy as np
import pytest

from nirstream.core.datasets import load_tecator
from nirstream.core.datasets.tablets import tablets_path
from tests.streaming import WorkerProcess, unique_topics

# Fixtures publish unsigned bundles; the worker and `evaluate` refuse those unless allowed (docs/security.md). Every
# test and the processes it starts run as a trial, except where a test sets it false (tests/test_signed_models.py).
os.environ["NIRSTREAM_ALLOW_UNSIGNED"] = "true"


@pytest.fixture(scope="session")
def tecator():
    return load_tecator()


@pytest.fixture(scope="session")
def tecator_spectra(tecator):
    return tecator.X


def tablets_available() -> bool:
    return tablets_path().exists()


# CI sets NIRSTREAM_REQUIRE_TABLETS=1 so that a failed fetch fails the tests instead of skipping them.
requires_tablets = pytest.mark.skipif(
    not tablets_available() and os.environ.get("NIRSTREAM_REQUIRE_TABLETS") != "1",
    reason="tablet data not fetched: run `make data` (or `nirstream data fetch`)",
)


@pytest.fixture
def rng():
    return np.random.default_rng(20171005)


@pytest.fixture(scope="session")
def broker():
    """One real embedded Kafka-protocol broker for the whole test session."""
    from nirstream.devtools.embedded_broker import EmbeddedBroker

    with EmbeddedBroker.start() as running:
        yield running


@pytest.fixture(scope="session")
def template_registry(tmp_path_factory, tecator):
    """Version 1 (champion) and 2 (published, not promoted): small real models on tecator."""
    from nirstream.core.artifacts.registry import ModelRegistry
    from tests.helpers import publish_small_tecator_model

    registry = ModelRegistry(tmp_path_factory.mktemp("template-registry"))
    publish_small_tecator_model(registry, tecator, seed=1, promote=True)
    publish_small_tecator_model(registry, tecator, seed=2, promote=False)
    return registry


@pytest.fixture
def registry(template_registry, tmp_path):
    """A private copy of the template registry that a test may change."""
    import shutil

    from nirstream.core.artifacts.registry import ModelRegistry

    return ModelRegistry(shutil.copytree(template_registry.base, tmp_path / "registry"))


@pytest.fixture
def topics():
    return unique_topics()


@pytest.fixture
def start_worker(broker, registry, topics, tmp_path):
    """``start_worker(**env)`` starts a worker and waits until it is ready; ``start_worker.many(n, **env)``
    starts n at once (their TensorFlow imports overlap) and waits for all. All share one consumer group."""
    workers = []

    def many(count: int, **extra_env) -> list[WorkerProcess]:
        started = []
        for _ in range(count):
            worker = WorkerProcess(broker.bootstrap_servers, registry.base, topics, tmp_path / f"worker{len(workers)}.log",
                                   extra_env=extra_env)
            if workers:
                worker.group_id = workers[0].group_id  # same consumer group as the first worker
            workers.append(worker.start())
            started.append(worker)
        for worker in started:
            worker.wait_ready()
        return started

    def start(**extra_env) -> WorkerProcess:
        return many(1, **extra_env)[0]

    start.many = many
    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory):
    """A trusted key pair (its public key alone in ``trusted``) and an outsider's, for signing tests."""
    from types import SimpleNamespace

    from nirstream.core.artifacts.signing import ArtifactSigner, generate_key_pair

    base = tmp_path_factory.mktemp("keys")
    generate_key_pair(base / "trusted.key", base / "trusted" / "trusted.pem")
    generate_key_pair(base / "outsider.key", base / "outsider.pem")
    return SimpleNamespace(trusted=base / "trusted", private=base / "trusted.key", outsider=base / "outsider.key",
                           signer=ArtifactSigner.from_file(base / "trusted.key"),
                           outsider_signer=ArtifactSigner.from_file(base / "outsider.key"))
