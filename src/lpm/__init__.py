"""lp-messaging-sdk for Python: talk to LivePerson's messaging platform, or to its local emulator."""

__version__ = "0.1.0"

__all__ = ["__version__"]
