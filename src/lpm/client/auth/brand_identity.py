"""The identity side of every brand connection (WebSocket and REST): ids and the bearer, all
read from the connection's token maintainer."""

from __future__ import annotations

from typing import Any


class BrandIdentity:
    """Mixin for brand connections; the class sets ``token_maintainer``."""

    #: The agent's login and token keeper (a :class:`~lpm.client.auth.tokens.TokenMaintainer`, a
    #: :class:`~lpm.client.auth.tokens.StaticTokenMaintainer`, or the ``token_maintainer`` option).
    token_maintainer: Any

    @property
    def is_brand(self) -> bool:
        """Always True: an agent, bot or manager."""
        return True

    @property
    def agent_id(self) -> str | None:
        """The agent's old-style id ``{account}.{userId}``."""
        value = getattr(self.token_maintainer, "agent_id", None)
        return str(value) if value else None

    @property
    def user_id(self) -> str | None:
        """The agent's PID (login ``config.userPid``)."""
        value = getattr(self.token_maintainer, "user_pid", None)
        return str(value) if value else None

    async def get_token(self) -> str:
        """The current bearer (waits while a regeneration is in progress)."""
        token: str = await self.token_maintainer.get_token()
        return token
