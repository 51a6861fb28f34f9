"""Artifacts on disk: model bundles, calibration transfers, manifests, the registry and its audit trail."""
