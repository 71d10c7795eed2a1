"""The object model's actions (:class:`~lpm.client.actions.ConnectionActions`) as UMS requests.

:class:`UmsActions` is the part of a WebSocket connection that turns what a conversation, a
dialog or a subscription asks for into one request of the connection's dialect; the dialects add
their own (brand history and rings, consumer messaging subscriptions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from lpm.client.actions import Publish
from lpm.client.transport.base import sequence_of
from lpm.client.transport.bodies import publish_request
from lpm.errors import ProtocolError
from lpm.protocol.requests import (
    GenerateDownloadURLBody,
    GetUserProfileBody,
    SubscribeExConversationsBody,
    UnsubscribeBody,
    UpdateConversationFieldRequest,
)
from lpm.protocol.types import Req

if TYPE_CHECKING:
    from lpm.client.dispatch import SubscriptionRouter
    from lpm.client.subscriptions.conversations import ConversationSubscription
    from lpm.client.subscriptions.routing import RoutingTaskSubscription

__all__ = ["UmsActions"]


class _Requester(Protocol):
    router: SubscriptionRouter

    async def request(
        self, req: Req, body: Any = None, *, metadata: Any = None, headers: Any = None
    ) -> Any: ...


class UmsActions:
    """ConnectionActions over ``self.request()`` and ``self.router`` (a mixin of the WebSocket
    connection)."""

    __slots__ = ()

    def register_conversation_subscription(
        self: _Requester, subscription: ConversationSubscription, old_id: str | None = None
    ) -> None:
        """Route notifications of ``subscription.subscription_id`` to it (re-keyed on resubscribe)."""
        self.router.register_conversation_subscription(subscription, old_id)

    def unregister_conversation_subscription(self: _Requester, subscription_id: str) -> None:
        """Stop routing notifications of ``subscription_id`` (the subscription ended)."""
        self.router.unregister_conversation_subscription(subscription_id)

    def register_routing_subscription(
        self: _Requester, subscription: RoutingTaskSubscription, old_id: str | None = None
    ) -> None:
        """Route ring notifications of ``subscription.subscription_id`` to it (re-keyed on
        resubscribe)."""
        self.router.register_routing_subscription(subscription, old_id)

    async def _publish(self: _Requester, publish: Publish) -> int:
        """``ms.PublishEvent`` (:meth:`~lpm.client.actions.ConnectionActions.publish_event`);
        returns the event's sequence (0 for chat states)."""
        body = publish_request(publish.conversation_id, publish.dialog_id, publish.event, publish.audience)
        result = await self.request(Req.PUBLISH_EVENT, body, metadata=publish.metadata or None)
        return sequence_of(result) or 0

    async def update_conversation_field(
        self: _Requester,
        conversation_id: str,
        fields: list[dict[str, Any]],
        *,
        metadata: list[Any] | None = None,
    ) -> Any:
        """Change a conversation (``cm.UpdateConversationField``) and return the response body.

        ``fields`` are the wire ``conversationField`` objects, applied together (for example
        ``{"field": "ConversationStateField", "conversationState": "CLOSE"}`` closes the
        conversation); the object model's methods (``conversation.close()``, ``transfer()``,
        ``join()``...) build them for you."""
        # The fields stay the object model's dicts (UpdateConversationFieldRequest is generic over them).
        body = UpdateConversationFieldRequest(conversationId=conversation_id, conversationField=fields)
        return await self.request(Req.UPDATE_CONVERSATION_FIELD, body, metadata=metadata or None)

    async def subscribe_conversations(self: _Requester, query: dict[str, Any]) -> str:
        """Subscribe to conversations (``cqm.SubscribeExConversations``) with a wire query
        (``{"convState": ["OPEN"], "agentIds": [...]}``); returns the subscription id.  Its
        notifications arrive raw on ``conversationNotification``;
        ``create_conversation_subscription()`` gives a subscription object with events."""
        result = await self.request(Req.SUBSCRIBE_EX_CONVERSATIONS, SubscribeExConversationsBody(**query))
        sub_id = result.get("subscriptionId") if isinstance(result, dict) else None
        if not isinstance(sub_id, str):
            raise ProtocolError("SubscribeExConversations response has no subscriptionId", frame=result)
        return sub_id

    async def unsubscribe_conversations(self: _Requester, subscription_id: str) -> None:
        """``cqm.UnsubscribeExConversations`` (its late notifications are then expected)."""
        self.router.unregister_conversation_subscription(subscription_id)
        await self.request(Req.UNSUBSCRIBE_EX_CONVERSATIONS, UnsubscribeBody(subscriptionId=subscription_id))

    async def get_user_profile(self: _Requester, user_id: str | None) -> Any:
        """A user's profile (``userprofile.GetUserProfile``) as UMS returns it; this connection's
        own user when ``user_id`` is None."""
        return await self.request(Req.GET_USER_PROFILE, GetUserProfileBody(userId=user_id or None))

    async def generate_upload_url(self: _Requester, file_size: int, file_type: str) -> dict[str, Any]:
        """A temporary upload location for a file to share (``ms.GenerateURLForUploadFile``):
        ``{"relativePath", "queryParams"}``.  ``conversation.upload_file()`` does the whole
        upload."""
        # A dict: the schema's fileSize is a string, which GenerateUploadURLBody decodes as an int.
        body = {"fileSize": str(file_size), "fileType": file_type}
        return dict(await self.request(Req.GENERATE_UPLOAD_URL, body))

    async def generate_download_url(self: _Requester, relative_path: str) -> dict[str, Any]:
        """A temporary download location for a shared file (``ms.GenerateURLForDownloadFile``):
        ``{"relativePath", "queryParams"}``.  ``conversation.download_file()`` does the whole
        download."""
        body = GenerateDownloadURLBody(relativePath=relative_path)
        return dict(await self.request(Req.GENERATE_DOWNLOAD_URL, body))

    async def get_clock(self: _Requester) -> int:
        """The server's clock (``GetClock``), in epoch milliseconds.  Not needed as a keep-alive:
        the connection sends its own."""
        result = await self.request(Req.GET_CLOCK, {})
        return int(result["currentTime"])
