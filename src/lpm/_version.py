"""The package version (its own module so any module can read it during import)."""

__version__ = "0.1.0"
