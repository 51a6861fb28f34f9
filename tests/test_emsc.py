"""EMSC and MSC: hand-computed examples, exact recovery properties, batch = row by row."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from nirstream.core.chemometrics.steps.emsc import EMSC, scaled_axis
from nirstream.core.chemometrics.steps.msc import MSC
from nirstream.core.chemometrics.steps.scaling import GlobalScaler


def test_msc_hand_computed_example():
    # x = [1, 2, 4] on reference [0, 1, 2]: slope b = 3/2, intercept a = 5/6 (worked by hand),
    # so the corrected spectrum is (x - 5/6) / (3/2) = [1/9, 7/9, 19/9].
    reference = np.array([0.0, 1.0, 2.0])
    x = np.array([[1.0, 2.0, 4.0]])
    expected = np.array([[1 / 9, 7 / 9, 19 / 9]])
    np.testing.assert_allclose(MSC(reference=reference).fit(x).transform(x), expected, atol=1e-12)
    np.testing.assert_allclose(EMSC(order=0, reference=reference).fit(x).transform(x), expected, atol=1e-12)


def test_emsc_order1_hand_computed_example():
    # Four channels, axis [-1, -1/3, 1/3, 1]. The residual e = 0.01 * [8, -14, 4, 2] is orthogonal
    # to 1, the axis and the reference (checked by hand), so EMSC keeps it, divided by b = 2:
    # x = 2 r + 1 + 0.5 a + e  ->  r + e / 2.
    r = np.array([0.0, 1.0, 3.0, 1.0])
    a = np.array([-1.0, -1 / 3, 1 / 3, 1.0])
    e = 0.01 * np.array([8.0, -14.0, 4.0, 2.0])
    x = (2 * r + 1 + 0.5 * a + e)[None, :]
    corrected = EMSC(order=1, reference=r).fit(x).transform(x)
    np.testing.assert_allclose(corrected[0], [0.04, 0.93, 3.02, 1.01], atol=1e-12)
    coefficients = EMSC(order=1, reference=r).fit(x).coefficients(x)[0]
    np.testing.assert_allclose(coefficients, [2.0, 1.0, 0.5], atol=1e-12)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_offset_slope_scale_of_reference_is_corrected_back_on_real_spectra(tecator_spectra, order):
    emsc = EMSC(order=order).fit(tecator_spectra)
    reference = emsc.reference_
    axis = scaled_axis(reference.size)
    baseline = sum(c * axis**p for p, c in enumerate([0.3, -0.2, 0.05, 0.01][: order + 1]))
    distorted = np.vstack([1.7 * reference + baseline, 0.6 * reference - baseline])
    np.testing.assert_allclose(emsc.transform(distorted), np.vstack([reference, reference]), atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(n_channels=st.integers(5, 801).filter(lambda n: n % 2 == 1), order=st.integers(0, 3))
def test_exact_recovery_for_any_odd_channel_count(n_channels, order):
    rng = np.random.default_rng(n_channels)
    reference = np.cumsum(rng.normal(size=n_channels)) + 10.0
    axis = np.linspace(-1, 1, n_channels)
    offsets = rng.normal(size=(3, order + 1))
    scales = rng.uniform(0.5, 2.0, size=(3, 1))
    X = scales * reference + offsets @ np.vstack([axis**p for p in range(order + 1)])
    corrected = EMSC(order=order, reference=reference).fit(X).transform(X)
    np.testing.assert_allclose(corrected, np.broadcast_to(reference, X.shape), atol=1e-8)


def test_order_zero_equals_msc_on_real_spectra(tecator_spectra):
    msc = MSC().fit(tecator_spectra)
    emsc = EMSC(order=0).fit(tecator_spectra)
    np.testing.assert_allclose(emsc.transform(tecator_spectra), msc.transform(tecator_spectra), atol=1e-10)


def test_batch_equals_row_by_row(tecator_spectra):
    emsc = EMSC(order=2).fit(tecator_spectra[:100])
    batch = emsc.transform(tecator_spectra)
    rows = np.vstack([emsc.transform(row[None, :]) for row in tecator_spectra])
    np.testing.assert_allclose(batch, rows, rtol=0, atol=1e-12)


def test_reference_defaults_to_training_mean(tecator_spectra):
    emsc = EMSC().fit(tecator_spectra)
    np.testing.assert_allclose(emsc.reference_, tecator_spectra.mean(axis=0))
    assert emsc.design_.shape == (tecator_spectra.shape[1], 4)
    assert emsc.pseudo_inverse_.shape == (4, tecator_spectra.shape[1])


def test_interferent_is_removed(tecator_spectra):
    reference = tecator_spectra.mean(axis=0)
    interferent = np.sin(np.linspace(0, 3 * np.pi, reference.size))
    X = np.vstack([reference + 0.4 * interferent, 1.2 * reference - 0.1 * interferent + 0.05])
    emsc = EMSC(order=1, reference=reference, interferents=interferent).fit(X)
    np.testing.assert_allclose(emsc.transform(X), np.vstack([reference, reference]), atol=1e-8)


def test_wavelength_axis_is_scaled_to_unit_interval(tecator):
    axis = scaled_axis(tecator.n_channels, tecator.wavelengths)
    assert axis[0] == -1.0 and axis[-1] == 1.0
    with pytest.raises(ValueError, match="shape"):
        scaled_axis(5, np.arange(4.0))


def test_emsc_reduces_scatter_between_spectra(tecator_spectra):
    corrected = EMSC(order=2).fit_transform(tecator_spectra)
    assert corrected.std(axis=0).mean() < 0.5 * tecator_spectra.std(axis=0).mean()


def test_works_in_a_pipeline_and_clones(tecator_spectra):
    pipeline = make_pipeline(EMSC(order=2), GlobalScaler())
    out = pipeline.fit_transform(tecator_spectra)
    assert out.shape == tecator_spectra.shape
    assert abs(out.mean()) < 1e-10 and abs(out.std() - 1) < 1e-10
    assert clone(EMSC(order=3)).get_params()["order"] == 3
    np.testing.assert_allclose(pipeline[-1].inverse_transform(out), pipeline[0].transform(tecator_spectra))


@pytest.mark.parametrize("transformer", [EMSC(), MSC(), GlobalScaler()])
def test_bad_input_raises_clear_errors(tecator_spectra, transformer):
    transformer.fit(tecator_spectra)
    with_nan = tecator_spectra[:3].copy()
    with_nan[1, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        transformer.transform(with_nan)
    with_inf = tecator_spectra[:3].copy()
    with_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        transformer.transform(with_inf)
    with pytest.raises(ValueError, match="has 99 features, but .* is expecting 100 features"):
        transformer.transform(tecator_spectra[:3, :99])
    with pytest.raises(ValueError, match="could not convert"):
        transformer.transform(np.array([["a"] * 100]))


def test_emsc_refuses_bad_settings(tecator_spectra):
    with pytest.raises(ValueError, match=r"'order' parameter of EMSC must be an int in the range \[0, inf\)"):
        EMSC(order=-1).fit(tecator_spectra)  # sklearn's parameter validation
    with pytest.raises(ValueError, match="reference has shape"):
        EMSC(reference=np.ones(3)).fit(tecator_spectra)
    with pytest.raises(ValueError, match="rank deficient"):
        EMSC(order=1, interferents=np.ones(100)).fit(tecator_spectra)
    with pytest.raises(ValueError, match="not fitted"):
        EMSC().transform(tecator_spectra)
