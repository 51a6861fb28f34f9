"""nirstream: streaming NIR chemometrics (EMSC + 1D CNN) on Kafka."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nirstream")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"
