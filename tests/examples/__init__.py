"""Smoke tests of the runnable examples in ``examples/``."""
