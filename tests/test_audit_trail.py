"""The registry's audit trail: who/when/why/checksum of every change, a hash chain plus head anchor that names the
line where the log was edited, cut, reordered or extended by hand, and one chain from two concurrent writers.

Real registry on the real file system, with small PLS bundles on tecator (no network training)."""

import getpass
import json
import logging
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from nirstream.cli import main
from nirstream.core.artifacts.bundle import write_bundle
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.chemometrics.linear_model import LinearModel
from nirstream.core.artifacts.manifest import manifest_checksum
from nirstream.core.artifacts.registry import HISTORY_FILE, ModelRegistry, RegistryEvent
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def template(tecator, tmp_path_factory):
    """A registry with two PLS versions (published by 'ci-trainer'), copied by each test."""
    train = tecator.split("train")
    preprocessor = SpectralPreprocessor(tecator.wavelengths, emsc_order=None).fit(train.X)
    features = preprocessor.transform(train.X)
    registry = ModelRegistry(tmp_path_factory.mktemp("audit") / "registry")
    for components in (8, 10):
        model = LinearModel.from_pls([PLSRegression(n_components=components, scale=False).fit(features, train.target("fat"))])
        registry.publish(lambda d, m=model: write_bundle(
            d, m, preprocessor, ApplicabilityDomain().fit(features), targets=["fat"], units={"fat": "%"}, target_mean=[0.0],
            target_scale=[1.0], target_range={"fat": (0.0, 60.0)}, model_kind="pls"), by="ci-trainer")
    return registry.base


@pytest.fixture
def registry(template, tmp_path):
    return ModelRegistry(shutil.copytree(template, tmp_path / "registry"))


def history_cli(registry, *extra, capsys):
    code = main(["models", "history", "--registry", str(registry.base), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_promote_rollback_and_transfer_are_recorded_with_who_why_and_checksum(registry, tecator, tmp_path, capsys,
                                                                               monkeypatch):
    base = str(registry.base)
    monkeypatch.delenv("NIRSTREAM_USER", raising=False)
    assert main(["models", "promote", "1", "--by", "alice", "--reason", "first model", "--registry", base]) == 0
    assert "audit trail: 3 records, head " in capsys.readouterr().out
    monkeypatch.setenv("NIRSTREAM_USER", "bob")
    assert main(["models", "promote", "2", "--reason", "beats 1", "--registry", base]) == 0
    monkeypatch.delenv("NIRSTREAM_USER")
    assert main(["models", "rollback", "--reason", "bad in production", "--registry", base]) == 0
    rows = np.arange(0, 215, 7)  # calibration transfer standards: the analyzer reads 1 % high plus an offset
    columns = [f"{w:.10g}" for w in tecator.wavelengths]
    for name, X in (("master", tecator.X[rows]), ("slave", tecator.X[rows] * 1.01 + 0.002)):
        lines = [",".join(["sample", *columns])] + [",".join([f"s{i}", *(f"{v:.17g}" for v in x)]) for i, x in zip(rows, X, strict=True)]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    assert main(["transfer", "fit", "--analyzer", "line-2", "--master", str(tmp_path / "master.csv"), "--slave",
                 str(tmp_path / "slave.csv"), "--method", "sbc", "--by", "carol", "--reason", "line 2 commissioning",
                 "--registry", base]) == 0
    capsys.readouterr()

    history = registry.history()
    assert [(e.event, e.version, e.by, e.reason) for e in history] == [
        ("published", "1", "ci-trainer", ""), ("published", "2", "ci-trainer", ""),
        ("promoted", "1", "alice", "first model"), ("promoted", "2", "bob", "beats 1"),
        ("rolled_back", "1", f"{getpass.getuser()}@{socket.gethostname()}", "bad in production"),
        ("transfer_published", "1", "carol", "line 2 commissioning"),
    ]
    bundle_sums = {v: manifest_checksum(registry.path(v)) for v in ("1", "2")}
    assert [e.checksum for e in history[:5]] == [bundle_sums[e.version] for e in history[:5]]
    assert bundle_sums["1"] != bundle_sums["2"]
    assert history[-1].checksum == manifest_checksum(registry.transfer_path("line-2", "1"))
    assert history[-1].details["analyzer"] == "line-2" and registry.load_transfer("line-2").metadata.by == "carol"
    assert all(datetime.fromisoformat(e.at).utcoffset().total_seconds() == 0 for e in history)
    assert all(e.prev == before.hash for before, e in zip(history, history[1:])) and not any(e.legacy for e in history)
    assert registry.status("1") == "champion" and registry.status("2") == "promoted"

    code, out, _ = history_cli(registry, capsys=capsys)
    assert code == 0
    assert "chain intact: 6 records, head " + registry.audit.anchor().hash in out.splitlines()[-1]
    table = out.splitlines()[1:-1]
    assert "promoted" in table[3] and "alice" in table[2] and "first model" in table[2] and bundle_sums["1"][:12] in table[2]
    assert "line-2 transfer 1 (v1)" in table[5] and "carol" in table[5]
    code, out, _ = history_cli(registry, "--json", capsys=capsys)
    document = json.loads(out)
    assert code == 0 and document["verification"]["intact"] and document["verification"]["records"] == 6
    assert [r["by"] for r in document["records"]][2:4] == ["alice", "bob"]


def _lines(registry) -> list[bytes]:
    return (registry.base / HISTORY_FILE).read_bytes().splitlines(keepends=True)


def _write(registry, lines: list[bytes]) -> None:
    (registry.base / HISTORY_FILE).write_bytes(b"".join(lines))


def _edit_a_byte(lines):
    line = lines[2]
    at = line.index(b'"reason":"') + len(b'"reason":"')
    lines[2] = line[:at] + bytes([line[at] ^ 0x01]) + line[at + 1:]  # "first" -> "girst": still valid JSON
    return lines


TAMPERING = {
    "edited a byte of line 3": (_edit_a_byte, "line 3 (edited)"),
    "garbled line 3": (lambda lines: lines[:2] + [b"{not json\n"] + lines[3:], "line 3 (edited)"),
    "deleted line 3": (lambda lines: lines[:2] + lines[3:], "line 3 (removed)"),
    "swapped lines 2 and 3": (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], "line 2 (reordered)"),
    "cut the last line": (lambda lines: lines[:-1], "line 5 (truncated)"),
    "cut the last line mid-record": (lambda lines: lines[:-1] + [lines[-1][:40]], "line 5 (truncated)"),
    "appended a copy of line 4": (lambda lines: [*lines, lines[3]], "line 6 (reordered)"),
}


@pytest.mark.parametrize("case", TAMPERING, ids=list(TAMPERING))
def test_tampering_is_detected_and_the_line_named(registry, case, capsys):
    registry.promote("1", "first model", by="alice")
    registry.promote("2", "beats 1", by="bob")
    registry.rollback("bad in production", by="carol")
    assert history_cli(registry, "--verify", capsys=capsys)[0] == 0
    tamper, named = TAMPERING[case]
    _write(registry, tamper(_lines(registry)))
    code, out, err = history_cli(registry, capsys=capsys)
    assert code == 2, out
    assert f"audit trail broken at {named}" in err.splitlines()[0], err
    assert "chain intact" not in out


def test_a_cut_tail_stays_detected_after_later_appends(registry, capsys):
    """Truncate, then let the trainer carry on: the anchor is left as evidence, not moved over the cut."""
    registry.promote("1", "first model", by="alice")
    registry.promote("2", "beats 1", by="bob")
    _write(registry, _lines(registry)[:-1])
    registry.reject("2", "a later run", by="trainer")  # operations go on
    assert registry.history()[-1].reason == "a later run"
    report = registry.audit.verify()
    assert not report.intact and report.problems[0].line == 4 and report.problems[0].kind == "truncated"


def test_the_crash_window_between_append_and_anchor_is_accepted_and_caught_up(registry, capsys):
    registry.promote("1", "first model", by="alice")
    head = registry.audit.head_path
    before = head.read_bytes()
    registry.promote("2", "beats 1", by="bob")
    head.write_bytes(before)  # as if the writer died after appending, before replacing the anchor
    code, out, _ = history_cli(registry, "--verify", capsys=capsys)
    assert code == 0 and "one record behind" in out and "chain intact: 4 records" in out
    registry.rollback("bad in production", by="carol")
    assert registry.audit.anchor().count == 5 and registry.audit.verify().notes == []
    head.write_bytes(before)  # two behind: records were added without the anchor, which no writer does
    assert [(p.line, p.kind) for p in registry.audit.verify().problems] == [(5, "inserted")]


def test_legacy_history_is_read_sealed_and_chained_after(template, tmp_path, capsys):
    """A registry from before the audit trail: its lines had no by/checksum/prev/hash and there is no anchor."""
    registry = ModelRegistry(shutil.copytree(template, tmp_path / "registry"))
    registry.audit.head_path.unlink()
    old = [{"event": "published", "version": v, "reason": "", "at": "2024-01-0%sT10:00:00+00:00" % v, "details": {}}
           for v in ("1", "2")]
    old.append({"event": "promoted", "version": "1", "reason": "first model", "at": "2024-01-03T10:00:00+00:00",
                "details": {"previous": None}})
    (registry.base / HISTORY_FILE).write_text("".join(json.dumps(r) + "\n" for r in old))
    assert registry.status("2") == "published" and registry.history()[2].legacy
    code, out, _ = history_cli(registry, capsys=capsys)
    assert code == 0 and "(legacy)" in out and "chain intact: 3 records (3 legacy)" in out and "legacy (unchained)" in out

    registry.promote("2", "beats 1", by="bob")
    assert registry.status("2") == "champion"
    code, out, _ = history_cli(registry, capsys=capsys)
    assert code == 0 and "chain intact: 4 records (3 legacy), head " in out
    lines = _lines(registry)
    lines[1] = lines[1].replace(b'"2024-01-02', b'"2023-01-02')  # backdating a legacy record after the upgrade
    _write(registry, lines)
    code, out, err = history_cli(registry, capsys=capsys)
    assert code == 2 and "broken at line 4 (edited): the legacy lines before line 4 changed" in err


def test_edited_lines_of_any_shape_are_reported_and_the_registry_keeps_working(registry, capsys, caplog):
    """Lines that are JSON but not events (a number where a name was, a record without its version) are exactly what
    the audit tools exist to report: the table shows them, the verdict names them, list/show/rollback go on."""
    registry.promote("1", "first model", by="alice")
    registry.promote("2", "beats 1", by="bob")
    _write(registry, _lines(registry) + [b'{"event": 5}\n', b'{"version": 3}\n', b'{"event": "promoted"}\n'])
    code, out, err = history_cli(registry, capsys=capsys)
    assert code == 2 and err.splitlines()[0].startswith("nirstream: error: audit trail broken at line 5 (inserted)"), err
    rows = {row.split()[0]: row for row in out.splitlines()[1:]}
    assert " 5 " in rows["5"] and "v3" in rows["6"] and "promoted" in rows["7"] and "v?" in rows["7"]
    with caplog.at_level(logging.WARNING, logger="nirstream.core.artifacts.registry"):
        assert [e.version for e in registry.history()] == ["1", "2", "1", "2"]
    assert [r.getMessage().split(" is not")[0][-6:] for r in caplog.records] == ["line 5", "line 6", "line 7"]
    assert main(["models", "list", "--registry", str(registry.base)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:2] == ["1", "promoted"] and listing[1].split()[:2] == ["2", "champion"]
    assert main(["models", "show", "--registry", str(registry.base)]) == 0 and '"status": "champion"' in capsys.readouterr().out
    assert registry.rollback("bad in production", by="carol") == "1"  # the versionless "promoted" is no candidate
    assert registry.status("1") == "champion"

    lines = _lines(registry)
    lines[3] = lines[3].replace(b'"by":"bob"', b'"by":7')  # a chained record edited to hold a number
    _write(registry, lines)
    code, out, err = history_cli(registry, capsys=capsys)
    assert code == 2 and "audit trail broken at line 4 (edited)" in err.splitlines()[0], err
    assert " 7 " in out.splitlines()[4] and "Unknown format" not in err


def test_hostile_lines_and_anchors_are_reported_and_a_promotion_is_never_unrecorded(registry, capsys):
    """A line nested past the JSON parser's depth, a transfer record whose details are a list, an anchor counting
    Infinity: each is reported by line, and a promotion either moves the champion and records it, or neither."""
    registry.promote("1", "first model", by="alice")
    _write(registry, _lines(registry) + [b"[" * 100_000 + b"]" * 100_000 + b"\n",
                                         b'{"event": "transfer_published", "details": [1, 2]}\n'])
    code, out, err = history_cli(registry, capsys=capsys)
    assert code == 2 and "audit trail broken at line" in err and "Traceback" not in err
    assert "transfer_published" in out
    registry.audit.head_path.write_text('{"count": Infinity, "hash": "x"}')
    code, _, err = history_cli(registry, "--verify", capsys=capsys)
    assert code == 2 and "history.head is unreadable" in err
    registry.promote("2", "beats 1", by="bob")
    assert registry.champion() == "2" and registry.history()[-1].reason == "beats 1"


def test_an_unreadable_anchor_is_named_not_a_traceback(registry, capsys):
    """history.head that cannot be read (here a directory in its place; also permissions, I/O errors)."""
    registry.audit.head_path.unlink()
    registry.audit.head_path.mkdir()
    code, _, err = history_cli(registry, "--verify", capsys=capsys)
    assert code == 2 and "(anchor): the head anchor is unreadable: " in err and "history.head cannot be read" in err
    registry.promote("1", "first model", by="alice")  # operations go on; the anchor is left as it is
    assert registry.history()[-1].reason == "first model" and registry.audit.head_path.is_dir()
    assert main(["models", "promote", "2", "--reason", "beats 1", "--registry", str(registry.base)]) == 0
    captured = capsys.readouterr()  # the promotion is made and recorded, the anchor's problem is said
    assert "champion is now version 2" in captured.out and "warning: audit trail: " in captured.err
    assert "history.head cannot be read" in captured.err and registry.history()[-1].reason == "beats 1"


def test_a_kept_head_catches_a_rewritten_chain(registry, capsys):
    """Rewriting the whole log and anchor consistently passes the chain check; the head kept elsewhere does not."""
    registry.promote("1", "first model", by="alice")
    kept = registry.audit.anchor().hash
    assert history_cli(registry, "--verify", "--expect-head", kept[:16], capsys=capsys)[0] == 0
    records = registry.history()
    rewritten = ModelRegistry(registry.base.parent / "rewritten")
    for event in records:  # a forger replays the log with one reason changed, through the real writer
        with rewritten.audit.writing() as audit:
            fields = event.model_dump(exclude={"prev", "hash"})
            audit.append(fields | ({"reason": "forged"} if event.event == "promoted" else {}))
    for name in (HISTORY_FILE, rewritten.audit.head_path.name):
        shutil.copy(rewritten.base / name, registry.base / name)
    assert history_cli(registry, "--verify", capsys=capsys)[0] == 0
    code, _, err = history_cli(registry, "--verify", "--expect-head", kept, capsys=capsys)
    assert code == 2 and "the head you kept" in err


WRITER = textwrap.dedent("""
    import sys
    from nirstream.core.artifacts.registry import ModelRegistry

    ModelRegistry(sys.argv[1]).reject("2", "second writer", by="trainer-b")
""")


def _waits_for_lock(pid: int, path: Path) -> bool:
    """Whether process ``pid`` is blocked waiting for a lock on ``path``: the kernel lists it in /proc/locks as '->'."""
    inode = f":{path.stat().st_ino} "
    return any(line.split()[1] == "->" and f" {pid} " in line and inode in line
               for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see a writer wait for the lock")
def test_a_second_writer_waits_for_the_first_and_chains_onto_its_record(registry, tmp_path, capsys):
    """This process holds the log's lock with its tail read; a second process appends meanwhile. With the lock it must
    wait (the kernel shows it blocked) and chain onto our record; without it, it would append onto the tail we read
    and our record would fork the chain. Either way the outcome is decided before we append, whatever the speed."""
    with registry.audit.writing() as audit:
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(registry.base)], cwd=REPO, stderr=subprocess.PIPE,
                                 text=True)
        try:
            deadline = time.monotonic() + 120
            while child.poll() is None and not _waits_for_lock(child.pid, registry.audit.path):
                assert time.monotonic() < deadline, "the second writer neither appended nor waited for the lock"
                time.sleep(0.01)  # polling the kernel's lock table
            waited = child.poll() is None
            event = RegistryEvent(event="rejected", version="1", reason="first writer", by="trainer-a")
            audit.append(event.model_dump(exclude={"prev", "hash"}))
        except BaseException:
            child.kill()
            raise
    assert child.wait(timeout=120) == 0, child.stderr.read()
    assert waited, "the second writer appended while the first held the lock"
    history = registry.history()
    assert [(e.reason, e.by) for e in history[-2:]] == [("first writer", "trainer-a"), ("second writer", "trainer-b")]
    assert history[-1].prev == history[-2].hash
    report = registry.audit.verify()
    assert report.intact, report.problems
    assert report.records == 4 and registry.audit.anchor().count == 4
    assert history_cli(registry, "--verify", capsys=capsys)[0] == 0


def test_the_installed_command_exits_2_on_a_broken_log(registry):
    registry.promote("1", "first model", by="alice")
    registry.promote("2", "beats 1", by="bob")
    _write(registry, _lines(registry)[:2] + _lines(registry)[3:])
    result = subprocess.run([sys.executable, "-m", "nirstream", "models", "history", "--registry", str(registry.base)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2
    assert "audit trail broken at line 3 (removed)" in result.stderr and "Traceback" not in result.stderr
    assert "alice" not in result.stdout and "bob" in result.stdout  # the table still shows what is there
