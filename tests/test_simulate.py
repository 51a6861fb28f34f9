"""The analyzer simulator on real spectra: effects, faults, lab values, spec parsing."""

import numpy as np
import pytest

from nirstream.core.messages.codec import decode_spectrum
from nirstream.core.errors import SpectrumRejected
from nirstream.core.chemometrics.steps.emsc import EMSC
from nirstream.devtools.simulate import SATURATION_CEILING, Analyzer, ProcessEffects


def test_spec_parsing(tecator):
    analyzer = Analyzer.from_spec("line-2=tecator:test,drift=0.5,faults=0.1,step_at=30,start=7")
    assert analyzer.analyzer_id == "line-2" and analyzer.dataset.n_samples == 43 and analyzer.start_row == 7
    assert analyzer.effects == ProcessEffects(drift=0.5, faults=0.1, step_at=30.0)
    with pytest.raises(ValueError, match="unknown effect"):
        Analyzer.from_spec("x=tecator,colour=1")
    with pytest.raises(ValueError, match="bad analyzer spec"):
        Analyzer.from_spec("tecator")


def test_replays_every_spectrum_once_per_cycle_in_a_seeded_order(tecator):
    analyzer = Analyzer("a", tecator.split("test"), seed=3)
    rows = [analyzer.row(i, 0.0) for i in range(43)]
    assert sorted(rows) == list(range(43)) and rows != list(range(43))
    assert rows == [Analyzer("a", tecator.split("test"), seed=3).row(i, 0.0) for i in range(43)]


def test_drift_is_a_band_that_emsc_does_not_remove(tecator):
    data = tecator.split("test")
    analyzer = Analyzer("a", data, effects=ProcessEffects(drift=1.0))
    clean, drifted = analyzer.spectrum(0, 0.0), analyzer.spectrum(0, 120.0)
    np.testing.assert_array_equal(clean, data.X[0])
    emsc = EMSC(order=2).fit(tecator.X)
    residual = emsc.transform(drifted[None]) - emsc.transform(clean[None])
    assert np.abs(residual).max() > 0.1 * data.X.std()


def test_drift_levels_off_below_its_ceiling_however_long_the_run(tecator):
    """A demo that runs long (a slow machine) must not drift its valid spectra into the detector's ceiling."""
    data = tecator.split("test")
    ceiling = float(data.X.max()) + 1.0
    capped = Analyzer("a", data, effects=ProcessEffects(drift=1.0, drift_ceiling=ceiling))
    free = Analyzer("a", data, effects=ProcessEffects(drift=1.0))
    hours = [capped.spectrum(row, 3600.0 * h) for h in (1, 10) for row in range(data.n_samples)]
    assert max(float(x.max()) for x in hours) <= ceiling + 1e-9
    assert max(float(x.max()) for x in hours) > ceiling - 1e-6  # it does reach the ceiling (no earlier cap)
    np.testing.assert_array_equal(capped.spectrum(0, 6.0), free.spectrum(0, 6.0))  # unchanged until it levels off
    assert free.spectrum(0, 3600.0).max() > ceiling


def test_ageing_and_noise_grow_with_time(tecator):
    data = tecator.split("test")
    aged = Analyzer("a", data, effects=ProcessEffects(ageing=0.1)).spectrum(0, 60.0)
    np.testing.assert_allclose(aged, 0.9 * data.X[0])
    noisy = Analyzer("a", data, effects=ProcessEffects(noise=0.1)).spectrum(0, 60.0) - data.X[0]
    assert noisy.std() == pytest.approx(0.1 * data.X.std(), rel=0.3)


def test_step_change_switches_to_high_content_samples(tecator):
    analyzer = Analyzer.from_spec("a=tecator:test,step_at=10,target=fat")
    fat = analyzer.dataset.target("fat")
    after = [fat[analyzer.row(i, 11.0)] for i in range(20)]
    assert min(after) >= np.quantile(fat, 0.75)


def test_every_fault_kind_is_rejected_by_the_decoder_or_the_worker_checks(tecator):
    analyzer = Analyzer("a", tecator.split("test"), effects=ProcessEffects(faults=1.0), seed=5)
    seen = set()
    for sequence in range(40):
        raw, kind = analyzer.message(sequence, 0.0)
        seen.add(kind)
        if kind in ("nan_burst", "garbage"):
            with pytest.raises(SpectrumRejected):
                decode_spectrum(raw)
        elif kind == "saturated":
            assert decode_spectrum(raw).values.min() == SATURATION_CEILING
        else:
            with pytest.raises(SpectrumRejected, match="wrong_grid"):
                decode_spectrum(raw).header.grid.require_match(analyzer.grid)
    assert seen == {"nan_burst", "saturated", "wrong_grid", "garbage"}
    assert sum(analyzer.faults_sent.values()) == 40


def test_lab_values_match_the_replayed_sample(tecator):
    analyzer = Analyzer("a", tecator.split("test"), seed=2)
    raw, _ = analyzer.message(5, 0.0)
    spectrum = decode_spectrum(raw)
    reference = analyzer.reference_message(5)
    assert reference.sample_id == spectrum.header.sample_id
    row = analyzer.rows[5]
    assert reference.values["fat"] == pytest.approx(analyzer.dataset.target("fat")[row])
    np.testing.assert_allclose(spectrum.values, analyzer.dataset.X[row], rtol=1e-6)
