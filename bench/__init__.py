"""`make bench`: how fast relay delivers, and what it costs the writers, in ratios.

Every figure is measured together with its baseline in the same run, so that a
busy or slow machine moves both and the ratio stays meaningful. ``python -m
bench`` runs them all; see the "Benchmark" section of the README.
"""
