"""Datasets, transforms and label utilities."""
