"""A plant's own files: every mistake refused clearly, JCAMP-DX read, automatic split, resampling, intervals, bootstrap."""

import numpy as np
import pandas as pd
import pytest

from nirstream.core.datasets.jcamp_files import load_jcamp
from nirstream.core.datasets.sample_split import kennard_stone_order, kennard_stone_split
from nirstream.core.datasets.tabular import DataFileError, load_table
from nirstream.core.chemometrics.figures_of_merit import paired_rmsep_difference, rmsep_interval
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.chemometrics.resampling import onto_model_grid, resample
from nirstream.trainer.intervals import calibrate_intervals, empirical_coverage
from tests.helpers import write_jcamp
from nirstream.trainer.data_splits import DataSource, protocol_from_data

TARGETS = ["water", "fat", "protein"]


def tecator_frame(tecator, split=True) -> pd.DataFrame:
    """Tecator as a plant would export it: sample id, split, three constituents, one column per wavelength."""
    frame = pd.DataFrame(tecator.X, columns=[f"{w:.4f}" for w in tecator.wavelengths])
    for target in reversed(TARGETS):
        frame.insert(0, target, tecator.target(target))
    if split:
        labels = np.empty(tecator.n_samples, dtype=object)
        for name, rows in tecator.splits.items():
            labels[rows] = {"monitor": "val"}.get(name, name)
        frame.insert(0, "set", labels)
    frame.insert(0, "sample", tecator.sample_names)
    return frame


def test_every_file_mistake_is_named_with_its_column_and_rows(tecator, tmp_path):
    frame = tecator_frame(tecator)
    cases = {
        "missing target": (frame, {"target_columns": ["sugar"]}, r"no column\(s\) \['sugar'\]; the non-wavelength columns are"),
        "nan spectrum": (frame.assign(**{"900.5051": frame["900.5051"].where(frame.index != 7)}), {},
                         r"spectra missing \(NaN\) or infinite in row\(s\) 8 \(column\(s\) 900.5051\)"),
        "text target": (frame.assign(fat=frame["fat"].astype(object).where(frame.index != 2, "<0.1")), {"target_columns": ["fat"]},
                        r"reference values column 'fat' is not numeric: '<0.1' in row\(s\) 3"),
        "nan target": (frame.assign(fat=frame["fat"].where(frame.index % 50 != 1)), {"target_columns": ["fat"]},
                       r"reference values missing \(NaN\) or infinite in row\(s\) 2, 52, 102, 152, 202"),
        "unsorted": (frame[["sample", "fat", "850.0000", "870.2020", "860.1010"]], {"target_columns": ["fat"]},
                     r"must increase from left to right; 870.202 nm is followed by 860.101 nm"),
        "duplicate": (frame[["sample", "fat", "850.0000", "860.1010"]].assign(**{"860.10100": frame["860.1010"]}),
                      {"target_columns": ["fat"]}, r"duplicate wavelength column\(s\) \[860.101\]"),
        "unit of no target": (frame, {"target_columns": ["fat"], "units": {"fatt": "%"}}, r"units given for \['fatt'\]"),
    }
    for case, (table, options, message) in cases.items():
        path = tmp_path / f"{case.replace(' ', '_')}.csv"
        table.to_csv(path, index=False)
        with pytest.raises(DataFileError, match=message):
            load_table(path, id_column="sample", split_column="set" if "set" in table else None, **options)


def test_a_split_the_file_lacks_or_too_small_is_refused(tecator, tmp_path):
    path = tmp_path / "plant.csv"
    tecator_frame(tecator).to_csv(path, index=False)
    with pytest.raises(DataFileError, match=r"has no \{'validation': 'validation'\} rows; its labels are \['test', 'train', 'val'\]"):
        protocol_from_data(DataSource(path=path, targets=["fat"], split_column="set"))
    small = tmp_path / "small.csv"  # below the small-set rule's 10 training spectra (issue 28: 10 to 49 train)
    tecator_frame(tecator, split=False).head(9).to_csv(small, index=False)
    with pytest.raises(DataFileError, match="the train split has 9 spectra; at least 10 needed"):
        protocol_from_data(DataSource(path=small, targets=["fat"]))


def test_kennard_stone_split_spans_the_data_keeps_replicates_together_and_is_deterministic(tecator):
    replicates = [f"s{i // 2}" for i in range(tecator.n_samples)]  # pairs of spectra of one sample
    split = kennard_stone_split(tecator.X, replicates)
    again = kennard_stone_split(tecator.X, replicates)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    rows = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(rows), np.arange(tecator.n_samples))  # every spectrum in exactly one split
    for name, index in split.items():
        assert len({replicates[i] for i in index} & {replicates[i] for s, other in split.items() if s != name for i in other}) == 0
    sizes = {name: index.size / tecator.n_samples for name, index in split.items()}
    assert sizes == pytest.approx({"train": 0.6, "validation": 0.2, "test": 0.2}, abs=0.02)
    fat = tecator.target("fat")  # each split spans the data (not only the training set's extremes)
    for index in split.values():
        assert np.ptp(fat[index]) > 0.8 * np.ptp(fat)


def test_kennard_stone_order_starts_with_distant_points_and_covers_all():
    points = np.array([[0.0, 0], [10, 0], [5, 0.1], [0.1, 0], [9.9, 0]])
    order = kennard_stone_order(points)
    assert set(order[:2]) == {0, 1} and order[2] == 2 and sorted(order) == list(range(5))


def test_jcamp_folder_or_zip_with_references_in_nanometres_or_wavenumbers(tecator, tmp_path):
    import zipfile

    rows = np.arange(30)
    folder = tmp_path / "nm"
    folder.mkdir()
    for i in rows:
        write_jcamp(folder / f"{tecator.sample_names[i]}.jdx", tecator.sample_names[i], tecator.wavelengths, tecator.X[i])
    references = tmp_path / "lab.csv"
    tecator_frame(tecator, split=False).iloc[rows][["sample", *TARGETS]].to_csv(references, index=False)
    loaded = load_jcamp(folder, references, units={"fat": "%"})
    order = [tecator.sample_names.index(name) for name in loaded.sample_names]
    np.testing.assert_allclose(loaded.X, tecator.X[order], rtol=1e-12)
    np.testing.assert_allclose(loaded.target("fat"), tecator.target("fat")[order])
    assert loaded.target_names == tuple(TARGETS) and loaded.unit("fat") == "%"

    zipped = tmp_path / "cm.zip"
    with zipfile.ZipFile(zipped, "w") as archive:  # the same spectra on a wavenumber axis, zipped
        for i in rows:
            write_jcamp(tmp_path / "one.dx", "x", tecator.wavelengths, tecator.X[i], wavenumbers=True)
            archive.write(tmp_path / "one.dx", f"spectra/{tecator.sample_names[i]}.dx")
    in_wavenumbers = load_jcamp(zipped, references)
    np.testing.assert_allclose(in_wavenumbers.wavelengths, tecator.wavelengths, rtol=1e-9)
    np.testing.assert_allclose(in_wavenumbers.X, loaded.X, rtol=1e-12)

    (folder / f"{tecator.sample_names[0]}.jdx").write_text("##TITLE=broken\n##XYPOINTS=(XY..XY)\nnot numbers\n")
    with pytest.raises(DataFileError, match=f"{tecator.sample_names[0]}.jdx"):
        load_jcamp(folder, references)
    tecator_frame(tecator, split=False).iloc[rows[1:]][["sample", *TARGETS]].to_csv(references, index=False)
    write_jcamp(folder / f"{tecator.sample_names[0]}.jdx", "ok", tecator.wavelengths, tecator.X[0])
    with pytest.raises(DataFileError, match=r"no reference values for 1 spectrum file\(s\)"):
        load_jcamp(folder, references)


def test_resampling_onto_the_models_grid(tecator):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    assert onto_model_grid(tecator.X, tecator.wavelengths, grid) is not None
    np.testing.assert_array_equal(onto_model_grid(tecator.X, tecator.wavelengths, grid), tecator.X)
    finer = np.linspace(840, 1060, 441)  # a finer grid that covers the model's: interpolation back is close
    on_finer = resample(tecator.X, tecator.wavelengths, finer)
    back = onto_model_grid(on_finer, finer, grid)
    assert np.max(np.abs(back - tecator.X)) < 0.01 * np.ptp(tecator.X)
    with pytest.raises(ValueError, match="do not cover the model's window 870.202-1050 nm"):
        onto_model_grid(on_finer[:, 100:], finer[100:], grid, (870.0, None))
    narrower = onto_model_grid(on_finer[:, 100:], finer[100:], grid, (900.0, 1000.0))  # covers the window: fine
    assert narrower.shape == tecator.X.shape


def test_split_conformal_intervals_reach_their_coverage_on_new_data(rng):
    def draw(n):
        y = rng.normal(size=(n, 2)) * [1.0, 10.0]
        return y, y + rng.normal(size=(n, 2)) * [0.5, 3.0]

    intervals, note = calibrate_intervals(*draw(200), ("a", "b"), coverage=0.9)
    assert intervals.half_width["a"] == pytest.approx(1.645 * 0.5, rel=0.2)
    assert intervals.half_width["b"] == pytest.approx(1.645 * 3.0, rel=0.2) and "200 validation spectra" in note
    coverage = empirical_coverage(*draw(5000), intervals, ("a", "b"))
    assert all(0.86 <= c["coverage"] <= 0.94 for c in coverage.values())
    too_few, reason = calibrate_intervals(*draw(6), ("a", "b"), coverage=0.9)
    assert too_few is None and "too few" in reason


def test_bootstrap_intervals_contain_the_estimate_and_decide_only_when_clear(rng):
    y = rng.normal(size=60)
    good, poor = y + rng.normal(scale=0.5, size=60), y + rng.normal(scale=2.0, size=60)
    interval = rmsep_interval(y, good)
    assert interval["low"] < interval["rmsep"] < interval["high"]
    assert paired_rmsep_difference(y, good, poor)["verdict"] == "a better"
    same = paired_rmsep_difference(y, good, good + rng.normal(scale=0.01, size=60))
    assert same["low"] < 0 < same["high"] and same["verdict"] == "no difference shown"


def test_a_gate_split_named_by_the_user_decides_promotion_alone(tecator, tmp_path):
    frame = tecator_frame(tecator)
    frame.loc[frame.index[frame["set"] == "train"][:20], "set"] = "gate"
    frame.to_csv(tmp_path / "plant.csv", index=False)
    protocol = protocol_from_data(DataSource(path=tmp_path / "plant.csv", targets=["fat"], split_column="set",
                                             validation="val", gate="gate"))
    name, gate = protocol.gate_data
    assert name == "gate" and gate.n_samples == 20 and protocol.train.n_samples == 109
    assert "'gate' decides promotion" in protocol.split_description
    assert not set(gate.sample_names) & set(protocol.train.sample_names + protocol.validation.sample_names)
    without = protocol_from_data(DataSource(path=tmp_path / "plant.csv", targets=["fat"], split_column="set", validation="val"))
    assert without.gate_data[0] == "validation" and "['gate'] are not used" in without.split_description


def test_a_validation_split_narrower_than_training_is_flagged_for_the_intervals(rng):
    from nirstream.trainer.intervals import representativeness_warning

    wide, narrow = rng.normal(size=(200, 2)) * [22.0, 1.0], rng.normal(size=(40, 2)) * [2.4, 1.0]
    warning = representativeness_warning(wide, narrow, ("assay", "hardness"))
    assert "assay 11%" in warning and "hardness" not in warning  # the tablets' validate_1 vs calibrate_1
    assert representativeness_warning(wide, wide[:40], ("assay", "hardness")) is None


def test_cross_validated_predictions_hold_every_spectrum_out_once(rng):
    from sklearn.linear_model import LinearRegression

    from nirstream.trainer.intervals import cross_validated_predictions

    X = rng.normal(size=(60, 3))
    Y = X @ np.array([[1.0], [2.0], [-1.0]]) + rng.normal(scale=0.1, size=(60, 1))
    seen = []

    def refit(X_rest, Y_rest):
        seen.append(len(X_rest))
        model = LinearRegression().fit(X_rest, Y_rest)
        return model.predict

    y, predicted = cross_validated_predictions(refit, X, Y, folds=5, seed=1)
    assert seen == [48] * 5 and predicted.shape == (60, 1)
    assert np.sqrt(np.mean((predicted - y) ** 2)) == pytest.approx(0.1, rel=0.3)  # out-of-fold: honest, not zero


def test_a_written_spectra_table_reads_back_the_same(tecator, tmp_path):
    """write_spectra_table is load_table's inverse (tecator's 2.0202 nm step survives the column names)."""
    from nirstream.core.datasets import load_table
    from nirstream.core.datasets.tabular import write_spectra_table

    for suffix in (".csv", ".parquet"):
        back = load_table(write_spectra_table(tmp_path / f"t{suffix}", tecator), id_column="sample")
        np.testing.assert_allclose(back.X, tecator.X, rtol=1e-12)
        np.testing.assert_allclose(back.wavelengths, tecator.wavelengths, rtol=1e-9)
        assert back.target_names == tecator.target_names and back.sample_names == tecator.sample_names
    # with a split column, each row's split travels too
    back = load_table(write_spectra_table(tmp_path / "s.csv", tecator, split_column="set"), id_column="sample",
                      split_column="set")
    assert {name: list(rows) for name, rows in back.splits.items()} == {
        name: sorted(rows.tolist()) for name, rows in tecator.splits.items()}
    with pytest.raises(ValueError, match="in no split"):
        write_spectra_table(tmp_path / "n.csv", tecator.rows(np.arange(5)), split_column="set")
