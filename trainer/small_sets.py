"""The small-set rule: when a plant's calibration file is too small for hold-out validation, and what then chooses.

A hold-out split decides things by its RMSEP, whose own relative sampling error is about 1/sqrt(2n): 22 % for 10
spectra, 32 % for 5. Below ``MIN_VALIDATION`` spectra that noise is larger than the differences the split has to
decide (PLS pretreatments, families and champions differ by 5-20 %), and the spectra set aside are missed by the fit.
So, for ``nirstream train --data``:

* hold-out validation needs at least ``MIN_VALIDATION`` validation spectra. The automatic Kennard-Stone split is
  made only from ``MIN_FOR_AUTOMATIC_SPLIT`` samples up (its 20 % validation share then holds 10);
* below that (a split column whose validation rows are fewer, or absent; a file without a split column and fewer
  samples) every spectrum but the test rows trains, and repeated k-fold cross-validation on the training split
  chooses what validation chooses otherwise: latent variables and pretreatment (as always: repeated 10-fold), the
  family, the prediction intervals (cross-conformal: out-of-fold residuals) and the promotion gate (out-of-fold
  predictions of the candidate against the champion's predictions of the same spectra);
* training needs at least ``MIN_TRAINING`` spectra (10-fold cross-validation needs 10); test rows are optional
  (a user can evaluate later on another file), but when given at least ``MIN_TEST``.

The CNN is fitted only with a hold-out validation split (it stops early and schedules its learning rate on one;
refitting it per fold costs minutes each) and at least ``CNN_MIN_TRAINING`` training spectra: its ~10^4 weights
learn from augmented copies of the training spectra, and on the shipped sets it has matched PLS only from 129
(tecator) and 155 (tablets) training spectra up; below a few tens it sees the same handful of spectra over and over.
"""

from __future__ import annotations

MIN_VALIDATION = 10
MIN_FOR_AUTOMATIC_SPLIT = 50
MIN_TRAINING = 10
MIN_TEST = 5
CNN_MIN_TRAINING = 50


def small_set_reason(n_validation: int, n_samples: int, automatic: bool) -> str | None:
    """Why hold-out validation is not used (the rule, in words), or None when it is."""
    if automatic and n_samples < MIN_FOR_AUTOMATIC_SPLIT:
        return (f"{n_samples} samples and no split column: fewer than the {MIN_FOR_AUTOMATIC_SPLIT} an automatic "
                f"train/validation/test split needs (its validation share would hold fewer than {MIN_VALIDATION}), so "
                f"every spectrum trains and repeated k-fold cross-validation on them chooses")
    if n_validation < MIN_VALIDATION:
        return (f"{n_validation} validation spectra: fewer than the {MIN_VALIDATION} hold-out validation needs (an RMSEP "
                f"on so few spectra is uncertain by more than the differences it decides), so they join the training "
                f"split and repeated k-fold cross-validation on it chooses")
    return None


def cnn_refusal(n_train: int, cross_validated: bool) -> str | None:
    """Why the data cannot support the CNN (the rule, in words), or None when they can."""
    if cross_validated:
        return ("the CNN is not fitted: there is no hold-out validation split (small-set rule) to stop it early, and "
                "refitting it per cross-validation fold would cost minutes each")
    if n_train < CNN_MIN_TRAINING:
        return (f"the CNN is not fitted: {n_train} training spectra, fewer than the {CNN_MIN_TRAINING} its ~10^4 weights "
                "need (on the shipped sets it matched PLS only from 129 training spectra up)")
    return None
