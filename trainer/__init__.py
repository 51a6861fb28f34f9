"""The trainer: CNN and PLS training, evaluation reports, versioned model bundles."""
