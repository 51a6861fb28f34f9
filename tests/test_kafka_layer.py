"""The Kafka layer's back-off: the pauses each retrying client documents (docs/reliability.md for the worker)."""

from itertools import islice

from nirstream.ingest.publisher import BACKOFF as BRIDGE_BACKOFF
from nirstream.stream.batch_publishing import PUBLISH_BACKOFF
from nirstream.stream.prediction_feed import RECONNECT


def test_the_worker_retries_publishing_after_0_4_s_doubling_to_30_s():
    assert list(islice(PUBLISH_BACKOFF.pauses(), 9)) == [0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_the_file_bridge_retries_after_half_a_second_doubling_to_15_s():
    assert list(islice(BRIDGE_BACKOFF.pauses(), 7)) == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]


def test_the_prediction_feed_reconnects_after_1_s_doubling_to_30_s():
    assert list(islice(RECONNECT.pauses(), 7)) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
