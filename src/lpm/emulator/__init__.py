"""A local, faithful LivePerson Conversational Cloud (see docs/emulator.md)."""

from lpm.emulator.app import Emulator
from lpm.emulator.config import Settings, WorldSpec, default_world, load_toml

__all__ = ["Emulator", "Settings", "WorldSpec", "default_world", "load_toml"]
