import os

import numpy as np
import pytest

from nirstream.core.datasets import load_tecator
from nirstream.core.datasets.tablets import tablets_path


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
