"""Predicting: the Predictor, its backends, whole scans, the OOD check."""
