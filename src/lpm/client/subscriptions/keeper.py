"""A socket connection's subscriptions across its sockets.

UMS forgets every subscription with the socket that made it.  :class:`SubscriptionKeeper`
creates the connection's *default* conversation subscription once (``create_default_subscription``,
query ``default_subscription_query``), announces ``ready`` when it has loaded every existing
conversation, and after every reconnect recreates each live subscription (conversations and
routing tasks) the server forgot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from lpm.client.options import ConnectionOptions
from lpm.client.subscriptions.conversations import ConversationSubscription, SubscriptionHost
from lpm.enums import ConnectionEvent
from lpm.errors import ProtocolError

if TYPE_CHECKING:
    from lpm.client.dispatch import SubscriptionRouter

__all__ = ["WAIT_FOR_READY_DURATION", "SubscriptionKeeper"]

#: Seconds the ``ready`` event waits at most for the default subscription to load.
WAIT_FOR_READY_DURATION = 600.0


@dataclass(slots=True, eq=False, repr=False)
class SubscriptionKeeper:
    """Creates, recreates and announces a connection's conversation subscriptions."""

    host: SubscriptionHost
    options: ConnectionOptions
    router: SubscriptionRouter
    _: KW_ONLY
    emit: Callable[..., bool]
    report_error: Callable[[BaseException], None]
    #: The default subscription, once created (kept across reconnects).
    default: ConversationSubscription | None = field(default=None, init=False)
    _announced: bool = field(default=False, init=False)
    _ready_task: asyncio.Task[None] | None = field(default=None, init=False)

    def default_query(self, *, brand: bool) -> dict[str, Any]:
        """``default_subscription_query``, else open conversations (brand) or all of this
        consumer's (consumer)."""
        if self.options.default_subscription_query is not None:
            return dict(self.options.default_subscription_query)
        return {"stage": ["OPEN"]} if brand else {"stage": ["OPEN", "CLOSE"]}

    async def create(
        self, query: dict[str, Any] | None = None, *, wait_for_first_notification: bool = False
    ) -> ConversationSubscription:
        """A new conversation subscription (recreated after every reconnect until it ends)."""
        subscription = ConversationSubscription(
            self.host, query or {}, limit_break_enabled=self.options.limit_break_enabled
        )
        await subscription.init(wait_for_first_notification=wait_for_first_notification)
        return subscription

    async def restore(self, first: bool, *, brand: bool) -> None:
        """Create the default subscription once; recreate every subscription the server forgot."""
        options = self.options
        wait = options.wait_for_first_notification or options.wait_for_ready
        default = self.default
        if default is None and options.create_default_subscription:
            default = ConversationSubscription(
                self.host, self.default_query(brand=brand), limit_break_enabled=options.limit_break_enabled
            )
            # Kept before it is initialised: if the socket is lost meanwhile, the next restore
            # resubscribes this one instead of creating a second.
            self.default = default
            await default.init(wait_for_first_notification=wait)
            self._announce(default, wait)
        elif default is not None and default.needs_resubscribe:
            await default.resubscribe(wait_for_first_notification=wait and not self._announced)
            self._announce(default, wait)
        for sub in cast("list[Any]", self.router.conversation_subscriptions()):
            if sub is not default and sub.needs_resubscribe:
                await sub.resubscribe()
        for routing in cast("list[Any]", self.router.routing_subscriptions()):
            if routing.needs_resubscribe:
                await routing.resubscribe()

    def _announce(self, subscription: ConversationSubscription, waited: bool) -> None:
        """``ready`` once per connection: now if the first snapshot was awaited, else when it loads."""
        if self._announced:
            return
        self._announced = True
        if waited:
            self.emit(ConnectionEvent.READY)
        else:
            self._ready_task = asyncio.create_task(self._announce_when_loaded(subscription), name="lpm-ready")

    async def _announce_when_loaded(self, subscription: ConversationSubscription) -> None:
        try:
            await asyncio.wait_for(subscription.wait_loaded(), WAIT_FOR_READY_DURATION)
        except TimeoutError:
            self.report_error(ProtocolError("the default subscription did not load within the ready timeout"))
            return
        self.emit(ConnectionEvent.READY)

    async def close(self) -> None:
        """Stop waiting to announce ``ready`` (the connection is closing)."""
        task, self._ready_task = self._ready_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # its outcome no longer matters
                await task
