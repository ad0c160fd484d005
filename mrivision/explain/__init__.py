"""Heatmaps: the Grad-CAM family (`cam`, torch) and occlusion (`occlusion`, on the prediction backend)."""
