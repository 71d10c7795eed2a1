"""What every consumer transport (WebSocket, Send API) does the same way.

:class:`ConsumerConversations` builds the ``cm.ConsumerRequestConversation`` body once; each
transport sends it its own way (:meth:`ConsumerConversations._request_conversation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lpm.client.transport.bodies import conversation_request

if TYPE_CHECKING:
    from lpm.client.model.conversation import Conversation
    from lpm.protocol.requests import ConsumerRequestConversationBody

__all__ = ["ConsumerConversations"]


class ConsumerConversations:
    """Mixin of the consumer connections: ``create_conversation``."""

    __slots__ = ()

    account_id: str

    def _conversation_client_properties(self) -> dict[str, Any] | None:
        """Client properties put in the conversation context (None: none)."""
        return None

    async def _request_conversation(self, body: ConsumerRequestConversationBody) -> Conversation:
        """Send the request and return the new conversation (the transport's part)."""
        raise NotImplementedError

    async def create_conversation(
        self,
        skill_id: str | None = None,
        context: dict[str, Any] | None = None,
        campaign_info: dict[str, Any] | None = None,
        *,
        ttr_def_name: str = "NORMAL",
    ) -> Conversation:
        """Open a conversation on ``skill_id`` (any skill when None; one open conversation per
        consumer per brand) and return the :class:`~lpm.client.model.conversation.Conversation`.

        ``context`` is the ``conversationContext`` (default: a ``CustomContext``),
        ``campaign_info`` the ``campaignInfo`` (``campaignId``, ``engagementId``) and
        ``ttr_def_name`` the urgency (``NORMAL``, ``URGENT``, ``PRIORITIZED``).  Over a WebSocket
        the connection then subscribes to the conversation's messages; over the Send API its
        messages and changes come by webhooks.
        """
        body = conversation_request(
            self.account_id,
            skill_id,
            context,
            campaign_info,
            ttr_def_name=ttr_def_name,
            client_properties=self._conversation_client_properties(),
        )
        return await self._request_conversation(body)
