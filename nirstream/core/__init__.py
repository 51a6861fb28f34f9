"""Code shared by the stream worker and the trainer, so both preprocess identically.

Modules: ``messages`` (one schema module per topic), ``codec`` (JSON and binary encodings),
``validation`` (spectrum checks), ``chemometrics.steps`` (window, derivative, SNV, EMSC, scaler),
``augmentation`` (random offset/slope/scale), ``datasets`` (tecator, tablets, CSV/Parquet).
"""
