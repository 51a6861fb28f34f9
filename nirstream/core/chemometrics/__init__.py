"""Chemometrics: preprocessing steps, augmentation, applicability domain, linear models, figures of merit."""
