"""Spectral augmentation: seeded, within documented ranges, undone by EMSC."""

import numpy as np
import pytest

from nirstream.core.chemometrics.augmentation import SpectralAugmenter
from nirstream.core.chemometrics.steps.emsc import EMSC


def test_same_seed_gives_same_spectra(tecator_spectra):
    first = SpectralAugmenter(random_state=7).fit(tecator_spectra).transform(tecator_spectra)
    second = SpectralAugmenter(random_state=7).fit(tecator_spectra).transform(tecator_spectra)
    other = SpectralAugmenter(random_state=8).fit(tecator_spectra).transform(tecator_spectra)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_parameters_stay_in_documented_ranges():
    X = np.random.default_rng(0).normal(size=(10, 50))
    augmenter = SpectralAugmenter(offset=0.1, slope=0.05, scale=0.1, random_state=0).fit(X)
    drawn = augmenter.draw_parameters(20_000)
    for name, low, high in [("offset", -0.1, 0.1), ("slope", 0.95, 1.05), ("scale", 0.9, 1.1)]:
        values = drawn[name]
        assert values.shape == (20_000, 1)
        assert values.min() >= low and values.max() <= high
        # uniform over the whole range, not a sliver of it
        assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low)


def test_output_follows_the_documented_formula(tecator_spectra):
    augmenter = SpectralAugmenter(random_state=3).fit(tecator_spectra)
    expected_params = SpectralAugmenter(random_state=3).fit(tecator_spectra).draw_parameters(len(tecator_spectra))
    augmented = augmenter.transform(tecator_spectra)
    axis = np.linspace(0, 1, tecator_spectra.shape[1])
    baseline = augmenter.std_ * (expected_params["offset"] + (expected_params["slope"] - 1) * (axis - 0.5))
    np.testing.assert_allclose(augmented, expected_params["scale"] * tecator_spectra + baseline, rtol=1e-12)
    assert augmenter.std_ == pytest.approx(tecator_spectra.std())


def test_emsc_undoes_augmentation_on_real_spectra(tecator_spectra):
    # Augmentation is offset + slope + scale, exactly what first-order EMSC models:
    # the reason "augment, then EMSC" trains on realistic variation yet feeds the CNN clean spectra.
    emsc = EMSC(order=1).fit(tecator_spectra)
    augmented = SpectralAugmenter(random_state=1).fit(tecator_spectra).transform(tecator_spectra)
    np.testing.assert_allclose(emsc.transform(augmented), emsc.transform(tecator_spectra), atol=1e-8)


def test_fit_resample_repeats_targets(tecator):
    augmenter = SpectralAugmenter(n_copies=5, random_state=0)
    X_aug, y_aug = augmenter.fit_resample(tecator.X, tecator.target("fat"))
    assert X_aug.shape == (6 * tecator.n_samples, tecator.n_channels)
    np.testing.assert_array_equal(X_aug[: tecator.n_samples], tecator.X)
    np.testing.assert_array_equal(y_aug, np.tile(tecator.target("fat"), 6))
    X_only, _ = SpectralAugmenter(n_copies=2, include_original=False, random_state=0).fit_resample(
        tecator.X, tecator.target("fat")
    )
    assert X_only.shape[0] == 2 * tecator.n_samples
    with pytest.raises(ValueError, match="spectra but y has"):
        augmenter.fit_resample(tecator.X, tecator.target("fat")[:-1])


def test_noise_has_requested_size(tecator_spectra):
    quiet = SpectralAugmenter(offset=0, slope=0, scale=0, noise=0.01, random_state=0).fit(tecator_spectra)
    noise = quiet.transform(tecator_spectra) - tecator_spectra
    assert noise.std() == pytest.approx(0.01 * tecator_spectra.std(), rel=0.05)


def test_bad_settings_and_input_raise(tecator_spectra):
    with pytest.raises(ValueError, match="'offset' parameter"):
        SpectralAugmenter(offset=-1).fit(tecator_spectra)
    with pytest.raises(ValueError, match="'scale' parameter"):
        SpectralAugmenter(scale=1.5).fit(tecator_spectra)
    augmenter = SpectralAugmenter().fit(tecator_spectra)
    with pytest.raises(ValueError, match="NaN"):
        augmenter.transform(np.full((1, 100), np.nan))
    with pytest.raises(ValueError, match="expecting 100 features"):
        augmenter.transform(tecator_spectra[:, :50])


def test_the_same_seeds_draw_the_same_copies_as_before_augmentation_was_one_design(tecator):
    """Copies saved from the separate SpectralAugmenter and ShapeAugmenter at f381ebe
    (tests/data/make_preprocessing_before_steps.py)."""
    from pathlib import Path

    from nirstream.core.chemometrics.shape_augmentation import (AxisWarp, BandWidth, ChannelGain, InstrumentDifference,
                                                                ShapeAugmenter, SmoothBaseline)

    with np.load(Path(__file__).parent / "data" / "preprocessing_before_steps.npz", allow_pickle=False) as npz:
        before = {key: npz[key] for key in ("spectral_augmenter", "shape_augmenter")}
    train = tecator.split("train").X
    X, y = train[:5], np.arange(5.0)
    augmented, _ = SpectralAugmenter(noise=0.01, n_copies=3, random_state=7).fit_resample(X, y)
    np.testing.assert_array_equal(augmented, before["spectral_augmenter"])
    steps = [AxisWarp(), BandWidth(), SmoothBaseline(), ChannelGain(), InstrumentDifference(train[5:8] - train[8:11]),
             SpectralAugmenter()]
    augmented, _ = ShapeAugmenter(steps, n_copies=3, random_state=11).fit_resample(X, y)
    np.testing.assert_array_equal(augmented, before["shape_augmenter"])
