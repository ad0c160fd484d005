"""The one metrics protocol, calibration, robustness, faithfulness, probes."""
