"""Models: specs, cards, the registry and zoo, networks and heads, weights on disk.

Importing this package loads no torch: `zoo` (and `network`, `backbones`) do.
"""
