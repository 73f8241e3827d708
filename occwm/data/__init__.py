"""Occupancy data: on-disk layout, builders, the synthetic generator and datasets."""
