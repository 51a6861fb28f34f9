"""The analyzer file bridge against the real broker and file system: real tecator spectra as JCAMP-DX and CSV
files; each published once, in order, with the file's values; broken files rejected with a reason; restarts
(kill -9 included) neither skip nor re-send beyond the one file in flight; hostile names and links, a folder
that vanishes, a file that stays locked or cannot be moved never stop the bridge (nor hang ``--once``)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nirstream.devtools.embedded_broker import EmbeddedBroker, free_port
from nirstream.core.artifacts.atomic_files import write_atomically
from nirstream.core.messages.codec import decode_spectrum
from nirstream.core.datasets.spectrum_file import read_jcamp, read_spectrum_csv, write_spectrum_csv
from nirstream.core.datasets.tabular import DataFileError
from nirstream.core.messages.common import WavelengthGrid
from nirstream.ingest import ONCE_ATTEMPTS, ONCE_SEND_ATTEMPTS
from nirstream.ingest.bridge import (STATE_DIR, BridgeConfig, FileBridge, FileRejected, FreeNames, message_id,
                                     read_listed_file)
from nirstream.ingest.publisher import SpectrumPublisher
from nirstream.ingest.scanner import FolderScanner
from nirstream.ingest.state import BridgeState
from tests.helpers import as_float32, write_jcamp
from tests.streaming import collect, run

ANALYZER = "line-1"
HOUR_AGO = time.time() - 3600


def age(path: Path, seconds_after_start: float) -> Path:
    """Give ``path`` a modification time in the past: the bridge orders by it and takes old files at first sight."""
    os.utime(path, (HOUR_AGO + seconds_after_start, HOUR_AGO + seconds_after_start))
    return path


def write_tecator_jcamp(folder: Path, tecator, rows, start_second: float = 0) -> list[str]:
    """One JCAMP-DX file per row; names run against the time order, so only ordering by time passes."""
    names = []
    for k, row in enumerate(rows):
        name = f"{999 - row:03d}-{tecator.sample_names[row]}.jdx"
        write_jcamp(folder / ".writing", tecator.sample_names[row], tecator.wavelengths, tecator.X[row])
        age(folder / ".writing", start_second + k)
        os.replace(folder / ".writing", folder / name)  # as an analyzer does: whole files appear
        names.append(name)
    return names


def bridge_config(folder: Path, topic: str, **changes) -> BridgeConfig:
    return BridgeConfig(**({"folder": folder, "analyzer_id": ANALYZER, "file_format": "jcamp", "topic": topic,
                            "poll_seconds": 0.1, "settle_seconds": 60.0, "once": True} | changes))


async def run_bridge(config: BridgeConfig, bootstrap: str):
    stop = asyncio.Event()
    return await FileBridge(config, SpectrumPublisher({"bootstrap_servers": bootstrap}, config.topic, stop), stop).run()


def spectra_on(bootstrap: str, topic: str, expected: int):
    """Every message on ``topic`` (expected of them, and a moment more to catch extras), decoded."""
    return [decode_spectrum(m.value) for m in run(collect(bootstrap, topic, expected, timeout=90, settle=1.0))]


def state_of(folder: Path) -> BridgeState:
    return BridgeState.model_validate_json((folder / STATE_DIR / f"{ANALYZER}.json").read_text())


# -- parts ---------------------------------------------------------------------------------------------------

def test_a_file_is_taken_once_unchanged_for_a_poll_and_never_overtaken_by_a_newer_one(tmp_path):
    now = [100.0]
    scanner = FolderScanner(tmp_path, frozenset({".jdx"}), poll_seconds=2.0, settle_seconds=60.0, clock=lambda: now[0])
    growing = tmp_path / "a.jdx"
    growing.write_text("##TITLE=half")
    (tmp_path / "c.tmp").write_text("not a spectrum suffix: never listed")
    assert scanner.scan().ready == []  # first sight of a fresh file: not known to be complete
    now[0] += 2.0
    with growing.open("a") as out:
        out.write("\n##XYPOINTS")  # still being written: size and mtime change
    assert scanner.scan().ready == []
    now[0] += 2.0
    assert [c.name for c in scanner.scan().ready] == ["a.jdx"]  # unchanged for one poll
    renamed_in = tmp_path / "b.jdx"  # written earlier under another name, renamed in now: an older mtime
    renamed_in.write_text("##TITLE=whole\n##END=\n")
    os.utime(renamed_in, (time.time() - 5, time.time() - 5))
    scan = scanner.scan()
    assert scan.ready == [] and scan.waiting == 2  # a is complete but waits behind the older, newly seen b
    now[0] += 2.0
    assert [c.name for c in scanner.scan().ready] == ["b.jdx", "a.jdx"]
    age(growing, 0)
    fresh = FolderScanner(tmp_path, frozenset({".jdx"}), poll_seconds=2.0, settle_seconds=60.0, clock=lambda: now[0])
    assert [c.name for c in fresh.scan().ready] == ["a.jdx"]  # older than the settle time: complete at first sight


def test_one_reader_gives_the_sample_id_and_refuses_truncated_or_binary_files(tecator, tmp_path):
    plain = write_jcamp(tmp_path / "T-7.jdx", "free text title", tecator.wavelengths, tecator.X[7])
    spectrum = read_jcamp(plain.name, plain.read_bytes())
    assert spectrum.sample_id == "T-7"  # the file name, not the title
    np.testing.assert_array_equal(spectrum.values, tecator.X[7])
    labelled = write_jcamp(tmp_path / "x.jdx", "t", tecator.wavelengths, tecator.X[7], sample_id="LOT7-S42")
    assert read_jcamp(labelled.name, labelled.read_bytes()).sample_id == "LOT7-S42"
    text = plain.read_bytes()
    with pytest.raises(DataFileError, match="NPOINTS=100 but 49 points"):
        read_jcamp("cut.jdx", text[: text.index(b"##END=")].rsplit(b"\n", 52)[0] + b"\n##END=\n")
    with pytest.raises(DataFileError, match="no ##END="):
        read_jcamp("cut.jdx", text[: len(text) // 2])
    with pytest.raises(DataFileError, match="binary content"):
        read_jcamp("junk.jdx", np.random.default_rng(0).bytes(300))
    with pytest.raises(DataFileError, match="empty file"):
        read_jcamp("empty.jdx", b"")
    csv = write_spectrum_csv(tmp_path / "s.csv", tecator.wavelengths[::-1], tecator.X[3][::-1], sample_id="S-3")
    from_csv = read_spectrum_csv(csv.name, csv.read_bytes())
    assert from_csv.sample_id == "S-3"
    np.testing.assert_array_equal(from_csv.wavelengths, tecator.wavelengths)  # sorted into increasing order
    np.testing.assert_array_equal(from_csv.values, tecator.X[3])
    with pytest.raises(DataFileError, match=r"column 'value' is not a number in row\(s\) 2: 'abc'"):
        read_spectrum_csv("bad.csv", b"wavelength_nm,value\n850,1.5\n852,abc\n")
    with pytest.raises(DataFileError, match="header must be wavelength_nm,value"):
        read_spectrum_csv("bad.csv", b"x,y\n850,1.5\n852,1.6\n")


# -- the bridge on the real broker ---------------------------------------------------------------------------

def test_each_file_published_once_in_time_order_with_its_values_and_bad_files_rejected(broker, topics, tecator, tmp_path):
    rows = list(range(12))
    names = write_tecator_jcamp(tmp_path, tecator, rows)
    text = (tmp_path / names[0]).read_bytes()
    bad = {
        "truncated.jdx": text[: len(text) // 2],  # cut mid-data, no ##END=
        "garbage.jdx": np.random.default_rng(1).bytes(400),
        "empty.jdx": b"",
        "nan.jdx": text.replace(repr(float(tecator.X[rows[0]][50])).encode(), b"nan", 1),
        "huge.jdx": text * 5,  # over the limit set below
        "shifted.jdx": write_jcamp(tmp_path / ".s", "s", tecator.wavelengths + 10.0, tecator.X[0]).read_bytes(),  # 10 nm off
    }
    for k, (name, content) in enumerate(bad.items()):
        (tmp_path / name).write_bytes(content)
        age(tmp_path / name, 3.5 + k)  # among the good files in time
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)

    config = bridge_config(tmp_path, topics.spectra, expected_grid=grid, max_file_bytes=3 * len(text))
    stop = asyncio.Event()
    bridge = FileBridge(config, SpectrumPublisher({"bootstrap_servers": broker.bootstrap_servers}, config.topic, stop), stop)
    summary = asyncio.run(bridge.run())

    spectra = spectra_on(broker.bootstrap_servers, topics.spectra, len(rows))
    assert len(spectra) == len(rows)
    assert [s.header.sequence for s in spectra] == list(range(len(rows)))
    assert [s.header.sample_id for s in spectra] == [Path(n).stem for n in names]  # time order, not name order
    for spectrum, row, name in zip(spectra, rows, names, strict=True):
        np.testing.assert_array_equal(spectrum.values, as_float32(tecator.X[row]))
        assert spectrum.header.grid == grid and spectrum.header.analyzer_id == ANALYZER
        assert spectrum.header.message_id.startswith(f"{ANALYZER}:file:")
        assert spectrum.header.timestamp.timestamp() == pytest.approx((tmp_path / "published" / name).stat().st_mtime)
    assert sorted(summary.published) == sorted(names) and sorted(summary.rejected) == sorted(bad)
    assert sorted(p.name for p in (tmp_path / "published").iterdir()) == sorted(names)
    expected_reasons = {"truncated.jdx": "unreadable", "garbage.jdx": "unreadable", "empty.jdx": "unreadable",
                        "nan.jdx": "non_finite", "shifted.jdx": "wrong_grid", "huge.jdx": "oversize"}
    for name, reason in expected_reasons.items():
        assert (tmp_path / "rejected" / name).read_bytes() == bad[name]
        assert f"reason: {reason}\n" in (tmp_path / "rejected" / f"{name}.reason.txt").read_text()
    assert not any(p.is_file() and not p.name.startswith(".") for p in tmp_path.iterdir())  # all taken
    sample = bridge.metrics.registry.get_sample_value
    assert sample("nirstream_ingest_files_published_total", {"analyzer": ANALYZER}) == len(rows)
    for reason in ("unreadable", "non_finite", "wrong_grid", "oversize"):
        count = sum(r == reason for r in expected_reasons.values())
        assert sample("nirstream_ingest_files_rejected_total", {"analyzer": ANALYZER, "reason": reason}) == count
    assert sample("nirstream_ingest_files_waiting", {"analyzer": ANALYZER}) == 0
    assert sample("nirstream_ingest_last_published_timestamp_seconds", {"analyzer": ANALYZER}) > HOUR_AGO

    again = asyncio.run(run_bridge(bridge_config(tmp_path, topics.spectra), broker.bootstrap_servers))
    assert again.published == [] and again.rejected == []
    assert state_of(tmp_path).next_sequence == len(rows)


def test_csv_files_are_published_with_their_sample_ids(broker, topics, tecator, tmp_path):
    for k, row in enumerate(range(20, 24)):
        age(write_spectrum_csv(tmp_path / f"m{k}.csv", tecator.wavelengths, tecator.X[row],
                               sample_id=f"LAB-{row}" if k % 2 else None), k)
    (tmp_path / "broken.csv").write_text("wavelength_nm,value\n850,0.1\n852,oops\n")
    age(tmp_path / "broken.csv", 10)
    (tmp_path / "ignored.jdx").write_text("another format: not this bridge's files")

    summary = asyncio.run(run_bridge(bridge_config(tmp_path, topics.spectra, file_format="csv"), broker.bootstrap_servers))

    spectra = spectra_on(broker.bootstrap_servers, topics.spectra, 4)
    assert [s.header.sample_id for s in spectra] == ["m0", "LAB-21", "m2", "LAB-23"]
    for spectrum, row in zip(spectra, range(20, 24), strict=True):
        np.testing.assert_array_equal(spectrum.values, as_float32(tecator.X[row]))
    assert summary.rejected == ["broken.csv"]
    assert "column 'value' is not a number in row(s) 2" in (tmp_path / "rejected" / "broken.csv.reason.txt").read_text()
    assert (tmp_path / "ignored.jdx").exists()


def test_a_wavenumber_file_reaches_the_topic_as_training_reads_it(broker, topics, tecator, tmp_path):
    """One reader, one regular-grid rule: what the bridge publishes is what `nirstream train --data` fits on."""
    from nirstream.trainer.data_splits import DataSource

    spectra_dir = tmp_path / "spectra"
    spectra_dir.mkdir()
    wavelengths = 1e7 / np.linspace(1e7 / 1050, 1e7 / 850, 100)  # an instrument's regular wavenumber axis
    values = np.interp(wavelengths, tecator.wavelengths, tecator.X[9])
    age(write_jcamp(spectra_dir / "T-9.dx", "t", wavelengths, values, wavenumbers=True), 0)
    (tmp_path / "lab.csv").write_text("sample,fat\nT-9,12.5\n")
    trained_on = DataSource(path=spectra_dir, references=tmp_path / "lab.csv").load()

    asyncio.run(run_bridge(bridge_config(spectra_dir, topics.spectra), broker.bootstrap_servers))

    [published] = spectra_on(broker.bootstrap_servers, topics.spectra, 1)
    assert "resampled" in trained_on.name  # 1/cm -> nm is an irregular axis: both put it on the same regular grid
    np.testing.assert_allclose(published.header.grid.wavelengths(), trained_on.wavelengths, rtol=1e-12)
    np.testing.assert_array_equal(published.values, as_float32(trained_on.X[0]))
    assert published.header.sample_id == trained_on.sample_names[0] == "T-9"


def test_a_crash_between_ack_and_state_resends_only_that_file_with_the_same_id(broker, topics, tecator, tmp_path):
    config = bridge_config(tmp_path, topics.spectra)
    write_tecator_jcamp(tmp_path, tecator, [0, 1])
    asyncio.run(run_bridge(config, broker.bootstrap_servers))
    state_before = (tmp_path / STATE_DIR / f"{ANALYZER}.json").read_text()
    [third] = write_tecator_jcamp(tmp_path, tecator, [2], start_second=10)
    asyncio.run(run_bridge(config, broker.bootstrap_servers))

    # The broker acknowledged the third file, then the process died before saving the state: the state is the
    # one before it and the file still in the folder (os.replace keeps its modification time).
    (tmp_path / STATE_DIR / f"{ANALYZER}.json").write_text(state_before)
    os.replace(tmp_path / "published" / third, tmp_path / third)
    asyncio.run(run_bridge(config, broker.bootstrap_servers))
    # Acknowledged and saved, then died before the move: the state names the file, so it is moved, not sent.
    os.replace(tmp_path / "published" / third, tmp_path / third)
    summary = asyncio.run(run_bridge(config, broker.bootstrap_servers))

    assert summary.published == [] and (tmp_path / "published" / third).exists()
    raw = [m.value for m in run(collect(broker.bootstrap_servers, topics.spectra, 4, timeout=90, settle=1.0))]
    assert len(raw) == 4 and raw[2] == raw[3]  # the one re-sent file: byte-identical, same sequence and message id
    resent = decode_spectrum(raw[3]).header
    third_sha = state_of(tmp_path).last.sha256
    assert resent.sequence == 2 and resent.message_id == message_id(ANALYZER, third, third_sha)
    assert state_of(tmp_path).next_sequence == 3


def test_kill_9_mid_stream_and_restart_skips_nothing_and_resends_at_most_the_file_in_flight(broker, topics, tecator, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    first = write_tecator_jcamp(inbox, tecator, range(80))

    def bridge(*extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "nirstream", "ingest", "--watch", str(inbox), "--analyzer", ANALYZER,
             "--format", "jcamp", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topics.spectra,
             "--poll-seconds", "0.2", *extra],
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    metrics_port = free_port()
    process = bridge("--metrics-port", str(metrics_port))
    try:
        deadline = time.monotonic() + 120
        while not ((inbox / STATE_DIR / f"{ANALYZER}.json").exists() and state_of(inbox).published >= 5):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the bridge acknowledged no 5 files in 120 s"
            time.sleep(0.01)  # polling the state file for the event
        # its /metrics, as Prometheus scrapes it mid-stream: files acknowledged and the backlog still waiting
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            samples = {s.name: s.value for f in text_string_to_metric_families(response.read().decode()) for s in f.samples
                       if s.labels.get("analyzer") == ANALYZER and "reason" not in s.labels}
        assert samples["nirstream_ingest_files_published_total"] >= 5 and samples["nirstream_ingest_files_waiting"] > 0
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    acknowledged = state_of(inbox).published
    later = write_tecator_jcamp(inbox, tecator, range(80, 100), start_second=1000)
    restarted = bridge("--once")
    output, _ = restarted.communicate(timeout=180)
    assert restarted.returncode == 0, output

    names = first + later
    spectra = spectra_on(broker.bootstrap_servers, topics.spectra, len(names))
    ids = [s.header.message_id for s in spectra]
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= 1, f"{duplicates} re-sent files; the bound is the one in flight at the kill"
    by_id = {}
    for spectrum in spectra:
        if spectrum.header.message_id in by_id:  # a re-send is the same message
            assert by_id[spectrum.header.message_id].header == spectrum.header
        by_id[spectrum.header.message_id] = spectrum
    assert list(by_id.values()) == sorted(by_id.values(), key=lambda s: s.header.sequence)  # in order
    assert [s.header.sample_id for s in by_id.values()] == [Path(n).stem for n in names]  # none skipped
    for spectrum, row in zip(by_id.values(), range(100), strict=True):
        np.testing.assert_array_equal(spectrum.values, as_float32(tecator.X[row]))
    assert sorted(p.name for p in (inbox / "published").iterdir()) == sorted(names)
    print(f"killed after {acknowledged} acknowledged files; {duplicates} re-sent")


def test_a_broker_that_is_down_delays_the_files_and_loses_none(topics, tecator, tmp_path, caplog):
    port = free_port()
    write_tecator_jcamp(tmp_path, tecator, [5, 6])

    async def scenario():
        task = asyncio.create_task(run_bridge(bridge_config(tmp_path, topics.spectra), f"127.0.0.1:{port}"))
        deadline = time.monotonic() + 60
        while not any("cannot publish" in r.getMessage() for r in caplog.records):
            assert not task.done() and time.monotonic() < deadline
            await asyncio.sleep(0.05)  # polling the log for the failed attempt
        assert not (tmp_path / "published").exists() or not any((tmp_path / "published").iterdir())
        late = await asyncio.to_thread(EmbeddedBroker.start, port)
        try:
            summary = await asyncio.wait_for(task, timeout=90)
            return late, summary
        except BaseException:
            late.stop()
            raise

    with caplog.at_level(logging.WARNING, logger="nirstream.ingest.publisher"):
        late, summary = asyncio.run(scenario())
    with late:
        spectra = spectra_on(late.bootstrap_servers, topics.spectra, 2)
    assert len(summary.published) == 2
    assert [s.header.sequence for s in spectra] == [0, 1]
    np.testing.assert_array_equal(spectra[1].values, as_float32(tecator.X[6]))


def test_once_gives_up_on_an_unreachable_broker_and_leaves_the_files_for_the_next_run(tecator, tmp_path):
    write_tecator_jcamp(tmp_path, tecator, [5, 6])
    result = subprocess.run(
        [sys.executable, "-m", "nirstream", "ingest", "--watch", str(tmp_path), "--analyzer", ANALYZER, "--format",
         "jcamp", "--settle-seconds", "0", "--once", "--bootstrap-servers", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "nirstream: error: --once gave up: the broker could not be reached" in result.stderr
    assert f"{ONCE_SEND_ATTEMPTS} sends to" in result.stderr
    assert not (tmp_path / "published").exists() or not any((tmp_path / "published").iterdir())
    assert len(list(tmp_path.glob("*.jdx"))) == 2  # still waiting in the folder


def test_cli_refuses_a_missing_folder_and_a_bad_analyzer_id(tmp_path):
    def ingest(*args):
        return subprocess.run([sys.executable, "-m", "nirstream", "ingest", "--format", "jcamp", "--once", *args],
                              capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)

    missing = ingest("--watch", str(tmp_path / "nowhere"), "--analyzer", ANALYZER)
    assert missing.returncode == 2 and "nirstream: error: no such folder to watch" in missing.stderr
    bad_id = ingest("--watch", str(tmp_path), "--analyzer", "line 1/x")
    assert bad_id.returncode == 2 and "--analyzer 'line 1/x'" in bad_id.stderr


# -- what an analyzer share can hold: hostile names and links, vanishing folders, locked and stuck files ----------

def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_atomic_writes_get_a_new_files_mode_keep_an_old_ones_and_fit_long_names(tmp_path):
    previous = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.txt"
        write_atomically(fresh, "a")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # 0o666 less the umask, not mkstemp's 0o600
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o604)
        write_atomically(kept, "new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() == "new"
    finally:
        os.umask(previous)
    longest = tmp_path / ("n" * 255)  # the longest name the file system takes: the temporary name must still fit
    write_atomically(longest, "Probe_\udce4")  # a lone surrogate, as an undecodable file name gives: escaped
    assert longest.read_text() == "Probe_\\udce4"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fresh.txt", "kept.txt", longest.name])  # no temporaries


def test_reader_errors_quote_only_a_short_escaped_snippet_of_the_file():
    with pytest.raises(DataFileError) as cell:
        read_spectrum_csv("x.csv", b"wavelength_nm,value\n850,1\n852," + b"SECRET" * 2000 + b"\n")
    with pytest.raises(DataFileError) as header:
        read_spectrum_csv("x.csv", b"wavelength_nm," + b"SECRET" * 2000 + b"\n850,1\n")
    for error in (str(cell.value), str(header.value)):
        assert len(error) < 250 and error.count("SECRET") <= 13, error


def test_a_read_stops_at_the_limit_and_never_follows_a_link_swapped_in_after_the_listing(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("grows.jdx", "swapped.jdx"):
        (inbox / name).write_bytes(b"x" * 10)
        age(inbox / name, 0)
    os.symlink(secret, inbox / "link.jdx")
    os.mkfifo(inbox / "fifo.jdx")  # never listed: opening it would block
    listed = {c.name: c for c in FolderScanner(inbox, frozenset({".jdx"}), 0.1, 60.0).scan().listed}
    assert sorted(listed) == ["grows.jdx", "link.jdx", "swapped.jdx"]
    assert listed["link.jdx"].symlink and not listed["grows.jdx"].symlink

    (inbox / "grows.jdx").write_bytes(b"x" * 5000)  # grew after the listing
    with pytest.raises(FileRejected) as grown:
        read_listed_file(listed["grows.jdx"], limit=1000)
    assert grown.value.reason == "oversize" and "grew" in grown.value.detail
    (inbox / "swapped.jdx").unlink()
    os.symlink(secret, inbox / "swapped.jdx")  # a link put in its place after the listing
    with pytest.raises(FileRejected, match="symbolic link: not followed"):
        read_listed_file(listed["swapped.jdx"], limit=1000)
    assert read_listed_file(listed["grows.jdx"], limit=5000) == b"x" * 5000


def test_hostile_names_and_links_are_rejected_with_a_reason_and_never_followed(broker, topics, tecator, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n" * 10)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    [good] = write_tecator_jcamp(inbox, tecator, [50])
    spectrum = (inbox / good).read_bytes()
    undecodable = os.fsdecode(b"Probe_\xe4.jdx")  # Latin-1 from an old Windows analyzer: not UTF-8
    long_name = "L" * 246 + ".jdx"  # 250 bytes: NAME.reason.txt would not fit in 255
    newline = "two\nreason: ok.jdx"
    for k, (name, content) in enumerate({undecodable: spectrum, long_name: spectrum, newline: b"junk"}.items()):
        (inbox / name).write_bytes(content)
        age(inbox / name, 1 + k)
    os.symlink(secret, inbox / "link.jdx")
    os.utime(inbox / "link.jdx", (HOUR_AGO + 9, HOUR_AGO + 9), follow_symlinks=False)

    summary = asyncio.run(run_bridge(bridge_config(inbox, topics.spectra), broker.bootstrap_servers))

    [published] = spectra_on(broker.bootstrap_servers, topics.spectra, 1)
    assert published.header.sample_id == Path(good).stem and summary.published == [good]
    assert sorted(summary.rejected) == sorted([undecodable, long_name, newline, "link.jdx"])
    rejected = inbox / "rejected"
    reasons = {p.name: p.read_text() for p in rejected.iterdir() if p.name.endswith(".reason.txt")}
    assert len(reasons) == 4
    assert "file name b'Probe_\\xe4.jdx' is not valid UTF-8" in reasons[os.fsdecode(b"Probe_\xe4.jdx.reason.txt")]
    assert (rejected / undecodable).read_bytes() == spectrum
    [cut] = [n for n in os.listdir(rejected) if n.startswith("LLL") and n.endswith(".jdx")]
    assert len(cut) < 250 and "~" in cut and (rejected / cut).read_bytes() == spectrum
    assert f"file: {long_name}\n" in reasons[cut + ".reason.txt"] and "reason: schema_invalid" in reasons[cut + ".reason.txt"]
    forged = reasons[newline + ".reason.txt"].splitlines()
    assert forged[0] == "file: two\\nreason: ok.jdx" and [line for line in forged if line.startswith("reason:")] == [
        "reason: unreadable"]
    assert "detail: symbolic link: not followed" in reasons["link.jdx.reason.txt"]
    assert os.readlink(rejected / "link.jdx") == str(secret)  # the link itself moved; its target untouched
    assert secret.read_text() == "TOP-SECRET-LINE\n" * 10
    assert not any("TOP-SECRET" in text for text in reasons.values())
    for name in reasons:
        assert stat.S_IMODE((rejected / name).stat().st_mode) == 0o666 & ~current_umask()  # readable on the share


@contextlib.contextmanager
def unmovable(path: Path):
    """``path`` cannot be renamed: made immutable for root (who ignores permissions), else its folder read-only."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(0o755)


def test_a_rejected_file_that_cannot_be_moved_is_remembered_not_rejected_every_poll(broker, topics, tecator, tmp_path):
    config = bridge_config(tmp_path, topics.spectra)
    for sub in ("published", "rejected", STATE_DIR):
        (tmp_path / sub).mkdir()
    stuck = tmp_path / "stuck.jdx"
    stuck.write_bytes(b"junk")
    age(stuck, 0)
    [good] = write_tecator_jcamp(tmp_path, tecator, [60], start_second=5)

    with unmovable(stuck):
        first = asyncio.run(run_bridge(config, broker.bootstrap_servers))
        second = asyncio.run(run_bridge(config, broker.bootstrap_servers))  # a restart reads the list back

    assert first.rejected == ["stuck.jdx"] and first.published == [good]  # went on past it
    assert second.rejected == [] and second.published == []  # not read, rejected and explained again
    assert stuck.exists() and [p.name for p in (tmp_path / "rejected").iterdir()] == ["stuck.jdx.reason.txt"]
    assert [(u.name, u.reason) for u in state_of(tmp_path).unmoved] == [("stuck.jdx", "unreadable")]
    age(stuck, 20)  # changed (written again): a new file to judge
    third = asyncio.run(run_bridge(config, broker.bootstrap_servers))
    assert third.rejected == ["stuck.jdx"] and (tmp_path / "rejected" / "stuck.jdx").exists()
    assert state_of(tmp_path).unmoved == []


async def until(condition, task: asyncio.Task, what: str, timeout: float = 90.0) -> None:
    """Poll ``condition`` while the bridge runs; fail if the bridge ended or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if task.done():
            await task  # its exception, if any
            raise AssertionError(f"the bridge stopped while waiting for {what}")
        assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s"
        await asyncio.sleep(0.05)  # polling for the event


def test_a_watched_folder_that_vanishes_and_returns_does_not_stop_the_bridge(broker, topics, tecator, tmp_path, caplog):
    inbox, away = tmp_path / "inbox", tmp_path / "away"
    inbox.mkdir()
    [first] = write_tecator_jcamp(inbox, tecator, [70])
    config = bridge_config(inbox, topics.spectra, once=False)

    async def scenario():
        stop = asyncio.Event()
        bridge = FileBridge(config, SpectrumPublisher({"bootstrap_servers": broker.bootstrap_servers}, config.topic, stop), stop)
        task = asyncio.create_task(bridge.run())
        await until(lambda: (inbox / "published" / first).exists(), task, "first file published")
        os.rename(inbox, away)  # the share drops out: listing fails with ENOENT
        await until(lambda: any("cannot list" in r.getMessage() for r in caplog.records), task, "failed listing")
        os.rename(away, inbox)  # ...and comes back
        [second] = write_tecator_jcamp(inbox, tecator, [71], start_second=10)
        await until(lambda: (inbox / "published" / second).exists(), task, "second file published")
        stop.set()
        return second, await asyncio.wait_for(task, timeout=60)

    with caplog.at_level(logging.WARNING, logger="nirstream.ingest.bridge"):
        second, summary = asyncio.run(scenario())
    assert summary.published == [first, second]
    spectra = spectra_on(broker.bootstrap_servers, topics.spectra, 2)
    assert [s.header.sample_id for s in spectra] == [Path(first).stem, Path(second).stem]
    assert [s.header.sequence for s in spectra] == [0, 1]


def test_once_gives_up_on_a_file_that_stays_locked_and_exits_1_naming_it(broker, topics, tecator, tmp_path):
    first, locked, after = write_tecator_jcamp(tmp_path, tecator, [80, 81, 82])
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)  # the kernel tells a lease holder of readers by SIGIO
    holder = os.open(tmp_path / locked, os.O_RDONLY)
    try:
        fcntl.fcntl(holder, fcntl.F_SETLEASE, fcntl.F_WRLCK)  # as Samba holds a file an analyzer is still writing
        result = subprocess.run(
            [sys.executable, "-m", "nirstream", "ingest", "--watch", str(tmp_path), "--analyzer", ANALYZER,
             "--format", "jcamp", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topics.spectra,
             "--poll-seconds", "0.05", "--once"],
            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=180)
    finally:
        os.close(holder)  # releases the lease
        signal.signal(signal.SIGIO, previous)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "published 1 file(s), rejected 0" in result.stdout
    assert f"nirstream: error: --once gave up after {ONCE_ATTEMPTS} attempts: cannot read {locked}" in result.stderr
    assert (tmp_path / locked).exists() and (tmp_path / after).exists()  # the file after it waits too: order kept
    [published] = spectra_on(broker.bootstrap_servers, topics.spectra, 1)
    assert published.header.sample_id == Path(first).stem


def test_once_gives_up_on_a_file_that_never_becomes_complete_and_exits_1_naming_it(broker, topics, tecator, tmp_path):
    [first] = write_tecator_jcamp(tmp_path, tecator, [83])
    empty = tmp_path / "next.jdx"  # empty and dated tomorrow: never older than the settle time, never steady
    empty.touch()
    os.utime(empty, (time.time() + 86400, time.time() + 86400))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "nirstream", "ingest", "--watch", str(tmp_path), "--analyzer", ANALYZER,
         "--format", "jcamp", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topics.spectra,
         "--poll-seconds", "0.05", "--settle-seconds", "0.2", "--once"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "published 1 file(s), rejected 0" in result.stdout
    assert f"nirstream: error: --once gave up after {4 + ONCE_ATTEMPTS} polls: next.jdx never became complete" \
        in result.stderr
    assert empty.exists() and (tmp_path / "published" / first).exists()
    assert time.monotonic() - started < 120  # bounded; without the limit it polled forever


def test_a_reused_name_gets_the_next_free_number_without_looking_at_every_earlier_one(tmp_path, monkeypatch):
    (tmp_path / "spectrum.1.jdx").touch()  # left from an earlier run
    (tmp_path / "spectrum.jdx").touch()
    looked_up = []
    real_lexists = os.path.lexists
    monkeypatch.setattr(os.path, "lexists", lambda path: looked_up.append(path) or real_lexists(path))
    names = FreeNames(tmp_path)
    moved = []
    for _ in range(200):  # an analyzer that writes every measurement as spectrum.jdx
        (tmp_path / "in.tmp").touch()
        target = names("spectrum.jdx")
        os.replace(tmp_path / "in.tmp", target)
        moved.append(target.name)
    assert moved == [f"spectrum.{n}.jdx" for n in range(2, 202)]
    assert len(looked_up) <= 2 * 200 + 1  # the plain name and the next number; once more to skip spectrum.1.jdx
    (tmp_path / "spectrum.202.jdx").touch()  # put there by hand: skipped, not overwritten
    assert names("spectrum.jdx").name == "spectrum.203.jdx" and names("other.jdx").name == "other.jdx"
    (tmp_path / "spectrum.203.jdx").touch()
    assert FreeNames(tmp_path)("spectrum.jdx").name == "spectrum.204.jdx"  # after a restart: counts up once
