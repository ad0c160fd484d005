"""Training: config, subject-level splits, feature cache, loop, cross-validation."""
