"""Heatmaps: the Grad-CAM family."""
