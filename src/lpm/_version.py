"""The package version (its own module so any module can read it during import)."""

#: The version of lp-messaging-sdk (PEP 440), the same as the distribution's.
__version__ = "0.1.0"
