"""Synthetic try-on data with known garment-to-body correspondence (see `generator`)."""

from .generator import PATTERNS, SHAPES, Sample, render_pair

__all__ = ["PATTERNS", "SHAPES", "Sample", "render_pair"]
