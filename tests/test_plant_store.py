"""The plant data store keeps each labelled pair once, refuses invalid ones and survives a killed writer.
Real tecator spectra with their lab values stand in for what the stream joins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.labelled import LabelledPair
from nirstream.trainer.plant_store import PlantStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def pairs_from(tecator, rows, analyzer="line-1") -> list[LabelledPair]:
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    fat = tecator.target_names.index("fat")
    return [LabelledPair(sample_id=f"S{i}", analyzer_id=analyzer, message_id=f"{analyzer}:{i}", model_version="1",
                         predicted={"fat": float(tecator.y[i, fat]) + 0.5}, reference={"fat": float(tecator.y[i, fat])},
                         error={"fat": 0.5}, flag="ok", measured_at=T0 + timedelta(hours=i), grid=grid,
                         values=tecator.X[i].tolist())
            for i in rows]


def test_each_message_id_is_stored_once_and_reads_back_exactly(tmp_path, tecator):
    with PlantStore(tmp_path / "plant.sqlite") as store:
        first = store.add(pairs_from(tecator, range(10)))
        replay = store.add(pairs_from(tecator, range(5, 15)))  # five of them again, as after a crash
        assert (first.stored, first.repeats) == (10, 0)
        assert (replay.stored, replay.repeats) == (5, 5)
        assert store.count() == 15 and len(set(store.message_ids())) == 15
    with PlantStore(tmp_path / "plant.sqlite") as reopened:  # survives the process
        stored = reopened.pairs()
        assert [p.sample_id for p in stored] == [f"S{i}" for i in range(15)]  # lab-time order
        np.testing.assert_array_equal(stored[3].spectrum, tecator.X[3])
        X, y, _ = reopened.training_arrays(["fat"], stored[0].grid)
        np.testing.assert_array_equal(X, tecator.X[:15])
        assert reopened.count(since=T0 + timedelta(hours=9, minutes=30)) == 5
        assert [p.sample_id for p in reopened.pairs(newest=3)] == ["S12", "S13", "S14"]


def test_invalid_pairs_never_enter(tmp_path, tecator):
    good, short, holed = pairs_from(tecator, range(3))
    short = short.model_copy(update={"values": short.values[:-1]})
    holed = holed.model_copy(update={"values": [float("nan"), *holed.values[1:]]})
    with PlantStore(tmp_path / "plant.sqlite") as store:
        outcome = store.add([good, short, holed])
        assert outcome.stored == 1
        assert dict(outcome.refused).keys() == {short.message_id, holed.message_id}
        assert store.message_ids() == [good.message_id]
    with pytest.raises(ValueError):  # the schema itself refuses a non-finite lab value
        good.model_validate({**good.model_dump(), "reference": {"fat": float("inf")}})


def test_a_writer_killed_mid_stream_leaves_whole_batches_and_a_replay_completes_them(tmp_path, tecator):
    path = tmp_path / "plant.sqlite"
    np.save(tmp_path / "X.npy", tecator.X[:200])
    np.save(tmp_path / "y.npy", tecator.y[:200])
    writer = textwrap.dedent(f"""
        import sys, numpy as np
        from types import SimpleNamespace
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_plant_store import pairs_from
        from nirstream.trainer.plant_store import PlantStore
        data = SimpleNamespace(X=np.load({str(tmp_path / 'X.npy')!r}), y=np.load({str(tmp_path / 'y.npy')!r}),
                               wavelengths=np.linspace(850, 1050, 100), target_names=("water", "fat", "protein"))
        store = PlantStore({str(path)!r})
        for start in range(0, 200000, 10):  # batches of 10, for ever, until killed
            store.add(pairs_from(data, [i % 200 for i in range(start, start + 10)], analyzer=f"a{{start // 200}}"))
            if start == 50:
                print("writing", flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"  # killed only once it is writing
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    with PlantStore(path) as store:
        stored = store.count()
        assert stored > 0 and stored % 10 == 0  # whole batches only: a transaction is all or nothing
        ids = store.message_ids()
        assert len(ids) == len(set(ids))
        replay = store.add(pairs_from(tecator, range(200), analyzer="a0"))  # the first 200 again
        assert replay.stored == max(0, 200 - stored) and store.count() == max(stored, 200)
