"""The preprocessing steps, one scikit-learn transformer a module, that ``SpectralPreprocessor`` chains in a
``Pipeline``: ``window`` (wavelength region), ``derivative`` (Savitzky–Golay), ``snv``, ``emsc``, ``scaling``;
``msc`` stands alone (EMSC of order 0 is the same correction)."""
