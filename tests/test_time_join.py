"""The lab join by sampling time: lab values without sample id (analyzer id and sampling time) joined with that
analyzer's spectra around the sampling time, the nearest or the window's mean; waiting until the window is closed,
kept in the changelog, published once. Unit tests of the window logic use synthetic spectra; the worker tests
replay real tecator spectra with known acquisition times."""

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from nirstream.core.errors import RejectReason
from nirstream.core.messages.codec import encode_binary
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.labelled import LabelledPair, encode_labelled
from nirstream.core.messages.reference import ReferenceMessage, decode_reference
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.core.serving.predictor import Predictor
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, process_batch
from nirstream.stream.join_changelog import decode_change, encode_change, fold
from nirstream.stream.lab_join import join_lab_values
from nirstream.stream.lab_join_store import SPECTRUM_KEY, OnlineMonitor, StateChange, UnmatchedReference, WindowSpectrum
from nirstream.stream.time_window import choose, describe_no_match, in_window, window_closed
from nirstream.trainer.plant_store import PlantStore
from tests.helpers import as_float32
from tests.streaming import collect, decoded, produce, run
from tests.test_worker_hostile import wait_for_commits

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the first spectrum's acquisition time
STEP = 60.0  # seconds between spectra
GRID = {"start_nm": 850.0, "step_nm": 2.0, "count": 5}


def kept(i: int, at: float = 0.0, version: str = "1", flag: str = "ok") -> WindowSpectrum:
    """Synthetic spectrum i, acquired at T0 + i minutes, predicted fat = i."""
    values = np.full(5, float(i), np.float32)
    return WindowSpectrum("line-1", f"line-1:{i}", version, {"fat": float(i)}, flag, GRID, values, at,
                          T0.timestamp() + i * STEP)


def lab(minutes: float, fat: float = 5.0, analyzer: str = "line-1") -> ReferenceMessage:
    return ReferenceMessage(analyzer_id=analyzer, values={"fat": fat}, sampled_at=T0 + timedelta(minutes=minutes),
                            measured_at=T0 + timedelta(hours=3))


def minute(m: float) -> float:
    return T0.timestamp() + m * STEP


# --- the window logic ---

def test_the_window_holds_the_spectra_within_its_half_width_and_closes_after_a_later_one():
    spectra = [kept(i) for i in range(10)]
    assert [s.message_id for s in in_window(spectra, minute(4.5), 120)] == ["line-1:3", "line-1:4", "line-1:5", "line-1:6"]
    assert [s.message_id for s in in_window(spectra, minute(4), 60)] == ["line-1:3", "line-1:4", "line-1:5"]  # ends included
    assert window_closed(minute(7), minute(4.5), 120) and not window_closed(minute(6.5), minute(4.5), 120)
    assert not window_closed(None, minute(4.5), 120)  # nothing kept yet
    assert "acquired 3600 s after it" in describe_no_match(spectra, minute(-60), 120)  # an hour off: a clock mismatch
    assert "no spectrum of this analyzer is kept" in describe_no_match([], minute(0), 120)


def test_nearest_takes_the_closest_spectrum_and_mean_averages_the_window_of_one_model_version():
    window = [kept(3), kept(4, flag="warning"), kept(5), kept(6, version="2")]
    nearest = choose(window, minute(4.4), "nearest")
    assert (nearest.spectrum.message_id, nearest.count, nearest.flag, nearest.acquired_at) == ("line-1:4", 1, "warning", minute(4))
    assert choose(window, minute(4.5), "nearest").spectrum.message_id == "line-1:4"  # a tie: the earlier one
    mean = choose(window, minute(4.4), "mean")  # spectrum 6 came from model 2: not averaged with model 1's
    assert mean.count == 3 and mean.predicted == {"fat": pytest.approx(4.0)} and mean.flag == "warning"
    np.testing.assert_allclose(mean.values, np.full(5, 4.0)) and mean.values.dtype == np.float32
    assert mean.acquired_at == pytest.approx(minute(4))


# --- the lab value ---

def test_a_lab_value_names_its_sample_by_id_or_by_analyzer_and_sampling_time():
    old = b'{"schema_version": 1, "sample_id": "T-0042", "analyzer_id": "line-1", "values": {"assay": 198.7}, ' \
          b'"measured_at": "2026-11-25T15:10:00Z"}'
    assert decode_reference(old).join_key == "T-0042"  # today's messages decode as they did
    timed = decode_reference(b'{"analyzer_id": "line-1", "values": {"fat": 5.0}, "sampled_at": "2026-03-02T14:03:00"}')
    assert timed.sampled_at == datetime(2026, 3, 2, 14, 3, tzinfo=UTC)  # no zone: UTC, as spectra
    assert timed.join_key == "line-1@2026-03-02T14:03:00Z"
    for missing in (b'{"values": {"fat": 5.0}, "sampled_at": "2026-03-02T14:03:00Z"}',
                    b'{"analyzer_id": "line-1", "values": {"fat": 5.0}}'):
        with pytest.raises(ValueError, match="without sample_id needs analyzer_id and sampled_at"):
            decode_reference(missing)


# --- the monitor: waiting, restoring, once ---

def monitor(mode="nearest", **options) -> OnlineMonitor:
    return OnlineMonitor(retention_seconds=3600, time_analyzers=["line-1"], time_window=150, time_mode=mode, **options)


def test_a_lab_value_waits_until_its_window_is_closed_and_is_joined_once():
    first = monitor()
    for i in range(6):
        first.add_window_spectrum(kept(i, at=float(i)), partition=2)
    assert first.add_reference(lab(5.2), now=10.0, partition=2) is None  # spectra up to 7.7 min may still come
    batch1 = first.take_changes()
    assert {c.sample_id for c in batch1} == {SPECTRUM_KEY + f"line-1:{i}" for i in range(6)} | {"line-1@2026-03-02T14:05:12Z"}
    # the worker dies; its successor restores partition 2 from the changelog and reads the next spectra
    latest = {encode_change(c)[1]: encode_change(c)[2] for c in batch1}
    second = monitor()
    second.restore(fold(2, latest, 20.0, 3600), now=20.0)
    assert len(second.window_spectra["line-1"]) == 6 and len(second.time_references) == 1
    for i in (6, 7):
        second.add_window_spectrum(kept(i, at=20.0), partition=2)
    assert second.complete_time_joins(20.0) == ([], [])  # 7 min is inside 5.2 min + 150 s: still open
    second.add_window_spectrum(kept(8, at=21.0), partition=2)
    [pair], unmatched = second.complete_time_joins(21.0)
    assert unmatched == [] and pair["message_id"] == pair["sample_id"] == "line-1@2026-03-02T14:05:12Z"
    assert (pair["joined_by"], pair["spectra_averaged"], pair["predicted"]) == ("time_nearest", 1, {"fat": 5.0})
    assert pair["spectrum_at"] == T0 + timedelta(minutes=5) and pair["sampled_at"] == T0 + timedelta(minutes=5.2)
    LabelledPair.model_validate_json(encode_labelled(pair)[1])
    joined = [c for c in second.take_changes() if c.sample_id == pair["sample_id"]]
    assert [type(c.entry).__name__ for c in joined] == ["JoinedSample"]
    # the lab value again (a replayed batch, or the lab sending it twice): joined once
    assert second.add_reference(lab(5.2), now=22.0, partition=2) is None
    assert second.complete_time_joins(22.0) == ([], [])


def test_the_mean_pair_averages_the_window_and_one_spectrum_may_serve_two_lab_values():
    mean = monitor("mean")
    for i in range(12):
        mean.add_window_spectrum(kept(i, at=1.0))
    pair = mean.add_reference(lab(8.0, fat=7.0), now=2.0)
    assert (pair["joined_by"], pair["spectra_averaged"]) == ("time_mean", 5)  # minutes 5.5 to 10.5: spectra 6 to 10
    assert pair["predicted"] == {"fat": pytest.approx(8.0)} and pair["error"] == {"fat": pytest.approx(1.0)}
    np.testing.assert_allclose(pair["values"], np.full(5, 8.0))
    nearest = monitor()
    for i in range(12):
        nearest.add_window_spectrum(kept(i, at=1.0))
    one, other = nearest.add_reference(lab(3.1), now=2.0), nearest.add_reference(lab(2.9), now=2.0)
    assert one["spectrum_at"] == other["spectrum_at"] and one["message_id"] != other["message_id"]  # two samples, two pairs


def test_a_lab_value_without_spectra_in_its_closed_window_or_of_an_analyzer_not_kept_is_unmatched():
    join = monitor()
    for i in range(5):
        join.add_window_spectrum(kept(i, at=1.0))
    with pytest.raises(UnmatchedReference, match="acquired 3600 s after it"):
        join.add_reference(lab(-60), now=2.0)
    with pytest.raises(UnmatchedReference, match="time_join_analyzers"):
        join.add_reference(lab(1, analyzer="line-9"), now=2.0)
    assert join.add_reference(lab(30), now=2.0) is None  # waits: no spectrum after 32.5 min yet
    join.add_window_spectrum(kept(40, at=3.0))  # the analyzer went on after a stop: the window stayed empty
    pairs, [(partition, reference, why)] = join.complete_time_joins(3.0)
    assert pairs == [] and (partition, reference) == (0, lab(30)) and "nearest kept one was acquired 600 s after it" in why
    assert [c.entry for c in join.take_changes() if c.sample_id.startswith("line-1@")] == [None]  # its tombstone


def test_kept_spectra_are_bounded_per_analyzer_and_expire_with_the_retention():
    join = monitor(time_capacity=3)
    for i in range(5):
        join.add_window_spectrum(kept(i, at=float(i)))
    assert list(join.window_spectra["line-1"]) == [SPECTRUM_KEY + f"line-1:{i}" for i in (2, 3, 4)]
    join.complete_time_joins(now=3602.5)  # spectrum 2 (3600.5 s old) expired, 3 and 4 not
    assert list(join.window_spectra["line-1"]) == [SPECTRUM_KEY + f"line-1:{i}" for i in (3, 4)]
    forgotten = sorted(c.sample_id for c in join.take_changes() if c.entry is None)
    assert forgotten == [SPECTRUM_KEY + f"line-1:{i}" for i in (0, 1, 2)]


def test_a_kept_spectrum_round_trips_through_its_changelog_record():
    spectrum = kept(3, at=9.5)
    back = decode_change(*encode_change(StateChange(1, SPECTRUM_KEY + "line-1:3", spectrum, 9.5)))
    assert type(back.entry) is WindowSpectrum and back.entry.acquired_at == spectrum.acquired_at
    np.testing.assert_array_equal(back.entry.values, spectrum.values)
    reference = decode_change(*encode_change(StateChange(1, "line-1@x", lab(3), 9.5))).entry
    assert reference == lab(3)


# --- the batch join with the served model ---

@pytest.fixture(scope="module")
def predictor(template_registry):
    return Predictor(template_registry.load("1"))


def spectra_records(tecator, rows, sample_ids=False) -> list[InboundRecord]:
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    return [InboundRecord("spectra", 0, i, b"line-1", encode_binary(
        SpectrumHeader(analyzer_id="line-1", sequence=i, grid=grid, timestamp=T0 + timedelta(minutes=i),
                       sample_id=f"S{i}" if sample_ids else None), tecator.X[i])) for i in rows]


def test_the_batch_join_keeps_only_the_configured_analyzers_spectra_and_dead_letters_unmatched_lab_values(predictor, tecator):
    join = OnlineMonitor(time_analyzers=["line-1"], time_window=90)
    predicted = process_batch(spectra_records(tecator, range(8)), predictor, BatchPolicy())
    first = join_lab_values(predicted, predictor, [], join, "w1", now=0.0, reference_topic="ref")
    assert len(first.state_records) == 8 and {k for _, k, _ in first.state_records} == {
        (SPECTRUM_KEY + f"line-1:{i}").encode() for i in range(8)}
    fat = float(tecator.target("fat")[3])
    references = [InboundRecord("ref", 0, n, b"line-1", body.model_dump_json().encode()) for n, body in enumerate([
        lab(3.4, fat), lab(-120, fat), lab(3.4, 1e6), lab(6.4, fat)])]
    second = join_lab_values(process_batch([], predictor, BatchPolicy()), predictor, references, join, "w1", now=1.0,
                             reference_topic="ref")
    assert len(second.labelled) == 1 and second.reasons == {RejectReason.UNMATCHED_REFERENCE.value: 1,
                                                              RejectReason.IMPLAUSIBLE_REFERENCE.value: 1}
    pair = LabelledPair.model_validate_json(second.labelled[0][1])
    np.testing.assert_allclose(pair.values, as_float32(tecator.X[3]), rtol=1e-6)
    assert pair.spectrum_at == T0 + timedelta(minutes=3)
    # the 6.4 min lab value waited; spectra with a sample id neither keep nor close a window; spectrum 8 closes it
    with_ids = process_batch(spectra_records(tecator, range(100, 102), sample_ids=True), predictor, BatchPolicy())
    assert join_lab_values(with_ids, predictor, [], join, "w1", now=2.0).labelled == []
    third = join_lab_values(process_batch(spectra_records(tecator, [8]), predictor, BatchPolicy()), predictor, [], join,
                            "w1", now=3.0)
    assert [LabelledPair.model_validate_json(v).spectrum_at for _, v in third.labelled] == [T0 + timedelta(minutes=6)]


# --- the trainer's store ---

def test_the_plant_store_keeps_a_time_joined_pair_once_with_its_times_and_adds_the_columns_to_an_older_store(tmp_path, tecator):
    old = sqlite3.connect(tmp_path / "plant.sqlite")  # a store created before the time join: its columns only
    old.execute("CREATE TABLE labelled_pairs (message_id TEXT PRIMARY KEY, sample_id TEXT NOT NULL, analyzer_id TEXT "
                "NOT NULL, model_version TEXT NOT NULL, flag TEXT NOT NULL, measured_at TEXT NOT NULL, archived_at TEXT "
                "NOT NULL, grid TEXT NOT NULL, reference TEXT NOT NULL, predicted TEXT NOT NULL, spectrum BLOB NOT NULL)")
    old.commit()
    old.close()
    join = monitor("mean")
    join.time_window = 90
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths).model_dump()
    for i in range(6):
        join.add_window_spectrum(WindowSpectrum("line-1", f"line-1:{i}", "1", {"fat": 10.0 + i}, "ok", grid,
                                                tecator.X[i].astype(np.float32), 1.0, minute(i)))
    pair = LabelledPair.model_validate_json(encode_labelled(join.add_reference(lab(2, fat=12.5), now=2.0))[1])
    with PlantStore(tmp_path / "plant.sqlite") as store:
        assert (store.add([pair]).stored, store.add([pair]).repeats) == (1, 1)  # the replay stores nothing
        [stored] = store.pairs()
    assert (stored.message_id, stored.joined_by, stored.spectra_averaged) == ("line-1@2026-03-02T14:02:00Z", "time_mean", 3)
    assert stored.sampled_at == T0 + timedelta(minutes=2) and stored.spectrum_at == T0 + timedelta(minutes=2)
    np.testing.assert_allclose(stored.spectrum, tecator.X[1:4].astype(np.float32).mean(axis=0), rtol=1e-6)


# --- the worker, with the embedded broker ---

def spectrum_messages(tecator, rows) -> list[tuple[bytes, bytes]]:
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    return [(b"line-1", encode_binary(SpectrumHeader(analyzer_id="line-1", sequence=i, grid=grid,
                                                     timestamp=T0 + timedelta(minutes=i)), tecator.X[i])) for i in rows]


def lab_messages(tecator, minutes: list[float], rows: list[int]) -> list[tuple[bytes, bytes]]:
    fat = tecator.target("fat")
    return [(b"line-1", lab(m, float(fat[r])).model_dump_json().encode()) for m, r in zip(minutes, rows, strict=True)]


TIME_JOIN = {"NIRSTREAM_TIME_JOIN_ANALYZERS": '["line-1"]', "NIRSTREAM_TIME_JOIN_WINDOW_SECONDS": "150"}


@pytest.mark.reliability
def test_a_worker_killed_between_spectra_and_lab_values_is_replaced_and_the_nearest_spectra_are_joined_once(
        broker, topics, tecator, start_worker):
    bootstrap = broker.bootstrap_servers
    first = start_worker(**TIME_JOIN)
    run(produce(bootstrap, topics.spectra, spectrum_messages(tecator, range(20))))
    predictions = {p["message_id"]: p for p in decoded(run(collect(bootstrap, topics.predictions, 20)))}
    assert wait_for_commits(bootstrap, first.group_id, topics.spectra, 20) == 20  # the kept spectra are in the changelog
    first.kill()  # SIGKILL: the kept spectra survive only in the changelog
    second = start_worker(**TIME_JOIN)
    second.wait_for_log("restored 20 lab-join entries")
    sampled, rows = [3.3, 7.0, 11.6, -60.0], [3, 7, 12, 0]  # the last an hour before the first spectrum
    messages = lab_messages(tecator, sampled, rows)
    run(produce(bootstrap, topics.reference, messages + messages[:1]))  # the first twice: joined once
    pairs = decoded(run(collect(bootstrap, topics.labelled, 3, timeout=120, settle=1.0)))
    assert len(pairs) == 3
    row_at = {round(m * 60): r for m, r in zip(sampled, rows, strict=True)}  # sampling time (s after T0) -> row
    for pair in pairs:
        row = row_at[round((datetime.fromisoformat(pair["sampled_at"]) - T0).total_seconds())]
        assert pair["joined_by"] == "time_nearest" and pair["message_id"] == pair["sample_id"]
        assert datetime.fromisoformat(pair["spectrum_at"]) == T0 + timedelta(minutes=row)
        np.testing.assert_allclose(pair["values"], as_float32(tecator.X[row]), rtol=1e-6)
        assert pair["predicted"] == predictions[f"line-1:{row}"]["predictions"]  # predicted by the killed worker
        assert pair["reference"]["fat"] == pytest.approx(tecator.target("fat")[row])
    [dead] = decoded(run(collect(bootstrap, topics.deadletter, 1)))
    assert dead["reason"] == "unmatched_reference" and "3600 s after it" in dead["detail"]
    assert second.metric("nirstream_reference_pairs_total", analyzer="line-1") == 3


@pytest.mark.reliability
def test_a_lab_value_waiting_for_its_window_survives_a_restart_and_gets_the_windows_mean(broker, topics, tecator, start_worker):
    bootstrap = broker.bootstrap_servers
    options = TIME_JOIN | {"NIRSTREAM_TIME_JOIN_MODE": "mean"}
    first = start_worker(**options)
    run(produce(bootstrap, topics.spectra, spectrum_messages(tecator, range(10))))
    run(produce(bootstrap, topics.reference, lab_messages(tecator, [8.0], [8])))  # its window runs to 10.5 min
    assert wait_for_commits(bootstrap, first.group_id, topics.reference, 1) == 1
    assert first.stop() == 0
    second = start_worker(**options)
    second.wait_for_log("restored 11 lab-join entries")  # ten spectra and the waiting lab value
    run(produce(bootstrap, topics.spectra, spectrum_messages(tecator, range(10, 13))))  # 11 min closes the window
    [pair] = decoded(run(collect(bootstrap, topics.labelled, 1, timeout=120, settle=1.0)))
    predictions = {p["message_id"]: p for p in decoded(run(collect(bootstrap, topics.predictions, 13)))}
    averaged = range(6, 11)  # acquired 5.5 to 10.5 min
    assert (pair["joined_by"], pair["spectra_averaged"]) == ("time_mean", 5)
    np.testing.assert_allclose(pair["values"], as_float32(tecator.X[averaged]).astype(np.float32).mean(axis=0), rtol=1e-5)
    assert pair["predicted"]["fat"] == pytest.approx(np.mean([predictions[f"line-1:{i}"]["predictions"]["fat"] for i in averaged]))
    assert datetime.fromisoformat(pair["spectrum_at"]) == T0 + timedelta(minutes=8)
