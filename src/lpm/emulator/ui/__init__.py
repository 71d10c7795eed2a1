"""The emulator's web UI: chat as a consumer, watch every conversation and frame, take the agent's
seat, break things on purpose.  ``Emulator(ui=True)`` / ``lpm emulator --ui`` serve it at
``/_emulator/ui/`` on the emulator's own port; see docs/emulator.md ("The web UI")."""

from lpm.emulator.ui.server import WebUI

__all__ = ["WebUI"]
