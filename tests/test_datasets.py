"""Loaders on real data: tecator (shipped) and the IDRC 2002 tablets (fetched by set-up)."""

import shutil

import numpy as np
import pandas as pd
import pytest

from nirstream.core.datasets import TABLETS_SHA256, fetch_tablets, load_table, load_tablets, tablets_path
from nirstream.core.datasets.catalog import open_dataset
from nirstream.core.errors import DatasetUnavailable
from nirstream.core.artifacts.hashing import sha256_file
from tests.conftest import requires_tablets


def test_tecator_shapes_and_splits(tecator):
    assert tecator.X.shape == (215, 100)
    assert tecator.y.shape == (215, 3)
    assert tecator.target_names == ("water", "fat", "protein")
    assert tecator.units == ("%", "%", "%")
    assert {k: v.size for k, v in tecator.splits.items()} == {"train": 129, "monitor": 43, "test": 43}
    assert tecator.wavelengths[0] == pytest.approx(850) and tecator.wavelengths[-1] == pytest.approx(1050)
    assert np.isfinite(tecator.X).all()
    # water + fat + protein make up nearly all of the meat
    assert np.all(tecator.y.sum(axis=1) > 90) and np.all(tecator.y.sum(axis=1) < 102)


def test_dataset_selection_helpers(tecator):
    test = tecator.split("test")
    assert test.n_samples == 43 and test.splits == {}
    both = tecator.split("train", "monitor")
    assert both.n_samples == 172
    narrow = tecator.channels(900, 1000)
    assert narrow.wavelengths.min() >= 900 and narrow.wavelengths.max() <= 1000
    assert narrow.n_channels < tecator.n_channels
    assert tecator.fingerprint() == tecator.rows(np.arange(215)).fingerprint()
    assert tecator.fingerprint() != test.fingerprint()
    with pytest.raises(KeyError, match="unknown split"):
        tecator.split("holdout")
    with pytest.raises(KeyError, match="unknown target"):
        tecator.target("sugar")


@requires_tablets
@pytest.mark.tablets
@pytest.mark.parametrize("instrument", [1, 2])
def test_tablets_shapes_on_both_instruments(instrument):
    assert sha256_file(tablets_path()) == TABLETS_SHA256
    tablets = load_tablets(instrument)
    assert tablets.X.shape == (655, 650)
    assert {k: v.size for k, v in tablets.splits.items()} == {"calibrate": 155, "validate": 40, "test": 460}
    assert tablets.split("calibrate").X.shape == (155, 650)
    assert tablets.split("validate").X.shape == (40, 650)
    assert tablets.split("test").X.shape == (460, 650)
    np.testing.assert_array_equal(tablets.wavelengths, np.arange(600, 1900, 2))
    assert tablets.target_names == ("weight", "hardness", "assay")
    assay = tablets.target("assay")
    assert 140 < assay.min() and assay.max() < 250 and abs(np.median(assay) - 200) < 10  # nominal 200 mg


@requires_tablets
@pytest.mark.tablets
def test_tablets_instruments_measure_the_same_tablets():
    one, two = load_tablets(1), load_tablets(2)
    np.testing.assert_array_equal(one.y, two.y)
    assert one.sample_names == two.sample_names
    assert not np.allclose(one.X, two.X)  # different instruments, different spectra


@requires_tablets
@pytest.mark.tablets
def test_fetch_reuses_a_verified_copy_without_downloading(tmp_path):
    copy = tmp_path / "mine.mat"
    shutil.copy(tablets_path(), copy)
    assert fetch_tablets(copy) == copy


def test_tampered_tablet_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "nir_shootout_2002.mat"
    fake.write_bytes(b"not the shoot-out file")
    with pytest.raises(DatasetUnavailable, match="expected 129a32ec"):
        load_tablets(1, path=fake)
    monkeypatch.setenv("NIRSTREAM_TABLETS_PATH", str(fake))
    with pytest.raises(DatasetUnavailable, match="sha256"):
        load_tablets(2)


def test_missing_tablet_file_explains_how_to_get_it(tmp_path):
    with pytest.raises(DatasetUnavailable, match="nirstream data fetch"):
        load_tablets(1, path=tmp_path / "absent.mat")
    with pytest.raises(ValueError, match="instrument must be 1 or 2"):
        load_tablets(3)


def _tecator_frame(tecator) -> pd.DataFrame:
    frame = pd.DataFrame(tecator.X, columns=[f"{w:.4f}" for w in tecator.wavelengths])
    frame.insert(0, "fat", tecator.target("fat"))
    frame.insert(0, "sample", tecator.sample_names)
    frame.insert(1, "set", np.where(np.isin(np.arange(215), tecator.splits["test"]), "test", "train"))
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_loader_round_trip(tecator, tmp_path, suffix):
    path = tmp_path / f"plant{suffix}"
    frame = _tecator_frame(tecator)
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    loaded = load_table(path, split_column="set", id_column="sample", units={"fat": "%"})
    np.testing.assert_allclose(loaded.X, tecator.X)
    np.testing.assert_allclose(loaded.target("fat"), tecator.target("fat"))
    np.testing.assert_allclose(loaded.wavelengths, tecator.wavelengths, atol=1e-4)
    assert loaded.target_names == ("fat",) and loaded.units == ("%",)
    assert loaded.splits["test"].size == 43 and loaded.splits["train"].size == 172
    assert loaded.sample_names == tecator.sample_names
    assert open_dataset(str(path), split_column="set").n_samples == 215


def test_table_loader_rejects_bad_files(tecator, tmp_path):
    frame = _tecator_frame(tecator)
    with_nan = frame.copy()
    with_nan.iloc[5, 10] = np.nan
    with_nan.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(ValueError, match=r"missing \(NaN\) or infinite in row\(s\) 6 "):
        load_table(tmp_path / "nan.csv", split_column="set", id_column="sample")
    text = frame.astype({"900.5051": object})
    text.loc[3, "900.5051"] = "oops"
    text.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(ValueError, match=r"column '900.5051' is not numeric: 'oops' in row\(s\) 4$"):
        load_table(tmp_path / "text.csv", split_column="set", id_column="sample")
    with pytest.raises(ValueError, match=r"no column\(s\) \['sugar'\]"):
        load_table(tmp_path / "nan.csv", target_columns=["sugar"])
    frame[["sample", "fat"]].to_csv(tmp_path / "no_spectra.csv", index=False)
    with pytest.raises(ValueError, match="wavelength columns"):
        load_table(tmp_path / "no_spectra.csv")
    with pytest.raises(FileNotFoundError):
        load_table(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="unknown data set"):
        open_dataset("tablets3")
