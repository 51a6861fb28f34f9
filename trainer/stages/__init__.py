"""``nirstream train`` in stages, each a function with a small typed result, run in this order by
``training_run.run_training``:

0. ``screening.screen_protocol``     -> ``ScreenedData``      (the worker's screen on every split, before any fit)
   ``region.choose_region``          -> ``RegionChoice``      (the spectral region, by PLS cross-validation on training)
1. ``fitting.fit_candidates``        -> ``FittedCandidates``  (the CNN and PLS families, the PLS baseline)
2. ``family.choose_family``          -> ``FamilyChoice``      (the family to deploy, on the validation split or, for a
                                                                small set, out-of-fold predictions of the training split)
3. ``calibration.calibrate_deployed``-> ``IntervalCalibration`` (its prediction intervals)
4. ``evaluation.evaluate_on_tests``  -> ``HeldOutFigures``    (figures on the test splits: reported only)
5. ``publishing.publish_and_gate``   -> ``GateOutcome``       (the bundle in the registry, promoted or rejected)
   ``domain.check_domain``           -> ``DomainShares``      (the bundle's own flags per split; extrapolation warning)
6. ``reporting.write_training_report`` -> the summary dict   (HTML/JSON report with plots)

A failure after stage 1 writes the fitted model to a recovery registry (``recovery.keep_fitted_model``).
"""
