"""SNV and Savitzky–Golay derivatives in the one preprocessing chain, on real spectra (tecator), and the corn set
that is fetched with the tablets."""

import numpy as np
import pytest

from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from tests.conftest import requires_tablets


def _fitted(tecator, **pretreatment):
    return SpectralPreprocessor(tecator.wavelengths, emsc_order=None, **pretreatment).fit(tecator.X)


def test_snv_gives_every_spectrum_the_same_mean_and_spread(tecator):
    features = _fitted(tecator, snv=True, centring="global").transform(tecator.X)  # one mean: SNV's rows stay visible
    np.testing.assert_allclose(features.std(axis=1), features.std(axis=1)[0], rtol=1e-9)
    np.testing.assert_allclose(features.mean(axis=1), features.mean(axis=1)[0], atol=1e-9)
    raw = _fitted(tecator, centring="global").transform(tecator.X)
    assert raw.std(axis=1).std() > 0.01  # without SNV they differ: the assertion above can fail


def test_first_derivative_removes_offsets_and_second_removes_linear_baselines(tecator, rng):
    offsets = rng.uniform(-0.3, 0.3, (tecator.n_samples, 1))
    slopes = rng.uniform(-1e-3, 1e-3, (tecator.n_samples, 1)) * (tecator.wavelengths - tecator.wavelengths.mean())
    first, second = _fitted(tecator, derivative=1), _fitted(tecator, derivative=2)
    np.testing.assert_allclose(first.transform(tecator.X + offsets), first.transform(tecator.X), atol=1e-9)
    # (the 2nd derivative is ~1e-5 of the absorbance: cancellation leaves ~1e-6 of its scaled size)
    np.testing.assert_allclose(second.transform(tecator.X + offsets + slopes), second.transform(tecator.X), atol=1e-5)
    assert not np.allclose(first.transform(tecator.X + offsets + slopes), first.transform(tecator.X), atol=1e-3)


@pytest.mark.parametrize("pretreatment", [{"snv": True}, {"derivative": 1}, {"derivative": 2, "snv": True}])
def test_a_pretreatment_survives_the_bundle_state_exactly(tecator, pretreatment):
    fitted = _fitted(tecator, **pretreatment)
    rebuilt = SpectralPreprocessor.from_state(*fitted.state())
    np.testing.assert_array_equal(rebuilt.transform(tecator.X), fitted.transform(tecator.X))
    np.testing.assert_array_equal(rebuilt.screen_transform(tecator.X).features, fitted.transform(tecator.X))


def test_spectra_with_nothing_left_after_the_pretreatment_are_screened_not_predicted(tecator):
    hostile = tecator.X[:4].copy()
    hostile[0] = np.linspace(2.0, 3.0, tecator.n_channels)  # a straight line: no 2nd derivative
    hostile[1] = 3.0  # constant
    hostile[2] = np.linspace(2.0, 3.0, tecator.n_channels) ** 2  # a parabola: constant 2nd derivative
    screened = _fitted(tecator, derivative=2, snv=True).screen_transform(hostile)
    assert screened.degenerate.tolist() == [True, True, True, False]
    assert "no band structure" in screened.details[0] and "nearly constant" in screened.details[1]
    assert np.isfinite(screened.features).all()


def test_a_window_too_short_for_the_derivative_is_refused_by_name(tecator):
    with pytest.raises(ValueError, match="Savitzky–Golay derivative needs at least"):
        SpectralPreprocessor(tecator.wavelengths[:2], emsc_order=None, derivative=1).fit(tecator.X[:, :2])


@requires_tablets
@pytest.mark.tablets
def test_the_corn_set_comes_with_the_tablets_three_instruments_one_set_of_lab_values():
    from nirstream.core.datasets.corn import load_corn

    m5, mp6 = load_corn("m5"), load_corn("mp6")
    assert m5.X.shape == (80, 700) and m5.target_names == ("moisture", "oil", "protein", "starch")
    np.testing.assert_array_equal(m5.y, mp6.y)
    assert m5.sample_names == mp6.sample_names and not np.allclose(m5.X, mp6.X)


def test_spectrum_centring_puts_the_differences_between_samples_at_unit_size(tecator):
    """The paper's global mean leaves the between-sample differences small next to the spectrum's own shape (after
    EMSC, 6 % of the scaled size on tecator); centring on the mean spectrum makes them the whole signal."""
    corrected = {c: SpectralPreprocessor(tecator.wavelengths, centring=c).fit(tecator.X).transform(tecator.X)
                 for c in ("global", "spectrum")}
    assert corrected["global"].std(axis=0).mean() < 0.2
    assert corrected["spectrum"].std() == pytest.approx(1.0) and corrected["spectrum"].mean(axis=0) == pytest.approx(0.0, abs=1e-9)
    # the same spectra, the same differences: one is an affine map of the other
    offset = corrected["spectrum"] - corrected["global"] * (corrected["spectrum"].std(axis=0).mean() / corrected["global"].std(axis=0).mean())
    np.testing.assert_allclose(offset - offset[0], 0.0, atol=1e-9)
