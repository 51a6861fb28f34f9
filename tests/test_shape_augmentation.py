"""Augmentations EMSC does not undo, on real spectra: each survives EMSC (unlike offset/slope/scale), is seeded,
and has the size its parameters say."""

import numpy as np
import pytest

from nirstream.core.chemometrics.augmentation import SpectralAugmenter
from nirstream.core.chemometrics.steps.emsc import EMSC
from nirstream.core.chemometrics.shape_augmentation import (AxisWarp, BandWidth, ChannelGain, InstrumentDifference, ShapeAugmenter,
                                               SmoothBaseline)
from tests.conftest import requires_tablets

SHAPE_AUGMENTATIONS = [AxisWarp(shift=1.0, stretch=0.002), BandWidth(width=1.5), SmoothBaseline(amplitude=0.05),
                       ChannelGain(sigma=0.005)]


def _left_after_emsc(X: np.ndarray, augmented: np.ndarray) -> float:
    """What EMSC (order 2, as the trainer uses) leaves of an augmentation, relative to the corrected spectra's
    sample-to-sample spread."""
    emsc = EMSC(order=2).fit(X)
    corrected = emsc.transform(X)
    return float(np.abs(emsc.transform(augmented) - corrected).mean() / corrected.std(axis=0).mean())


@pytest.mark.parametrize("augmentation", SHAPE_AUGMENTATIONS, ids=lambda a: type(a).__name__)
def test_emsc_does_not_remove_it_on_real_spectra(tecator_spectra, augmentation):
    augmented = augmentation.set_params(random_state=0).fit(tecator_spectra).transform(tecator_spectra)
    assert _left_after_emsc(tecator_spectra, augmented) > 0.01
    # the contrast that makes the assertion meaningful: offset/slope/scale is removed to rounding error
    undone = SpectralAugmenter(random_state=0).fit(tecator_spectra).transform(tecator_spectra)
    assert _left_after_emsc(tecator_spectra, undone) < 1e-9


@pytest.mark.parametrize("augmentation", SHAPE_AUGMENTATIONS, ids=lambda a: type(a).__name__)
def test_the_same_seed_gives_the_same_spectra(tecator_spectra, augmentation):
    def draw(seed):
        return augmentation.set_params(random_state=seed).fit(tecator_spectra).transform(tecator_spectra)

    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.allclose(draw(3), draw(4))


def test_a_shift_of_one_channel_moves_the_spectrum_by_one_channel(tecator_spectra):
    warp = AxisWarp(shift=1.0, stretch=0.0, random_state=0).fit(tecator_spectra)
    warp._rng = np.random.RandomState(0)
    shifts = np.random.RandomState(0).uniform(-1.0, 1.0, (len(tecator_spectra), 1))
    warped = warp.transform(tecator_spectra)
    inner = slice(2, -2)
    expected = np.array([np.interp(np.arange(100) + d, np.arange(100), x) for x, d in zip(tecator_spectra, shifts[:, 0])])
    np.testing.assert_allclose(warped[:, inner], expected[:, inner], rtol=1e-12)


def test_band_width_broadens_and_narrows(tecator_spectra):
    roughness = np.abs(np.diff(tecator_spectra, 2, axis=1)).mean(axis=1)
    changed = BandWidth(width=2.0, random_state=1).fit(tecator_spectra).transform(tecator_spectra)
    ratio = np.abs(np.diff(changed, 2, axis=1)).mean(axis=1) / roughness
    assert (ratio < 0.9).any() and (ratio > 1.1).any()  # some copies smoother, some sharper


def test_smooth_baseline_has_no_part_emsc_models(tecator_spectra):
    baseline = SmoothBaseline(amplitude=0.05, above_order=2, random_state=0).fit(tecator_spectra)
    added = baseline.transform(tecator_spectra) - tecator_spectra
    low_order = np.vander(np.linspace(-1, 1, 100), 3)  # 1, a, a²
    projection = low_order @ np.linalg.lstsq(low_order, added.T, rcond=None)[0]
    assert np.abs(projection).max() < 1e-10 * np.abs(added).max() + 1e-12
    assert added.std() == pytest.approx(0.05 * tecator_spectra.std(), rel=0.5)


@requires_tablets
@pytest.mark.tablets
def test_instrument_difference_adds_what_a_second_instrument_changes():
    from nirstream.core.datasets import load_tablets

    one, two = load_tablets(1).split("calibrate"), load_tablets(2).split("calibrate")
    pairs = slice(0, 10)
    differences = two.X[pairs] - one.X[pairs]
    augmented = InstrumentDifference(differences, scale=1.0, random_state=0).fit(one.X).transform(one.X)
    # every change is a non-negative multiple (at most 1) of one measured difference
    change = augmented - one.X
    for row in change[:20]:
        c = np.array([np.dot(row, d) / np.dot(d, d) for d in differences])
        best = int(np.argmin([np.linalg.norm(row - ci * d) for ci, d in zip(c, differences)]))
        assert np.linalg.norm(row - c[best] * differences[best]) < 1e-9 * (1 + np.linalg.norm(row))
        assert -1e-12 <= c[best] <= 1 + 1e-12
    assert _left_after_emsc(one.X, augmented) > 0.01
    with pytest.raises(ValueError, match="channels"):
        InstrumentDifference(differences[:, :-1]).fit(one.X)


def test_shape_augmenter_chains_and_copies(tecator):
    chain = ShapeAugmenter([AxisWarp(), SmoothBaseline()], n_copies=3, random_state=5)
    X, y = chain.fit_resample(tecator.X, tecator.target("fat"))
    assert X.shape == (4 * tecator.n_samples, tecator.n_channels)
    np.testing.assert_array_equal(X[: tecator.n_samples], tecator.X)
    np.testing.assert_array_equal(y, np.tile(tecator.target("fat"), 4))
    again, _ = ShapeAugmenter([AxisWarp(), SmoothBaseline()], n_copies=3, random_state=5).fit_resample(tecator.X, tecator.target("fat"))
    np.testing.assert_array_equal(X, again)


def test_a_cnn_with_shape_augmentation_describes_itself_as_json(tecator):
    """Reports and bundles record the augmenter's settings: nested steps by class, the transfer differences by shape."""
    import json

    from nirstream.trainer.cnn import CNNRegressor
    from nirstream.trainer.variants import variant_steps

    preprocessor, augmenter = variant_steps("shape+emsc", n_copies=2, instrument_differences=tecator.X[:3] - tecator.X[3:6])
    described = json.loads(json.dumps(CNNRegressor(preprocessor, augmenter).settings()))
    steps = described["augmenter"]["steps"]
    assert [s["class"] for s in steps] == ["AxisWarp", "BandWidth", "SmoothBaseline", "ChannelGain", "InstrumentDifference"]
    assert steps[-1]["differences"] == "array of shape (3, 100)"
