"""The served model: a bundle's prediction of a batch (padding, calibration transfers, flags)."""
