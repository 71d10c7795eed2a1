"""Brand (agent, bot, manager) connection over the UMS WebSocket API v2.1.

The agentVep bearer travels in the socket URL (as LivePerson's own clients send it); a
:class:`~lpm.client.auth.tokens.TokenMaintainer` logs in, refreshes the session every 4 minutes and
regenerates the token on a 401 at the upgrade and on 4401/4407 closes; its events
(``token-invalid``, ``token-regenerated``, ``refresh-token``, ``generate-token-wait``,
``getAgentToken#request`` / ``#response``) are re-emitted by the connection, and its failures
are reported on the connection's ``"error"``.

After every (re)connect the session is restored before queued requests run: conversation
subscriptions are recreated with their original queries (their snapshots reconcile the cached
conversations), routing-task subscriptions are recreated, the last agent state set with
:meth:`set_agent_state` is sent again, this agent's own state is subscribed to (``agent-state``
events; :attr:`BrandWebsocketConnection.agent_state` follows what the platform reports, so a change
made by another session of the same agent is seen), and -- since UMS does not replay what a brand
socket missed -- the history of every open dialog this user takes part in is fetched from the last
sequence seen, so messages sent while the socket was down arrive as ordinary ``message`` events, in
order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from lpm.client.auth.brand_identity import BrandIdentity
from lpm.client.auth.tokens import StaticTokenMaintainer, TokenMaintainer, brand_token_maintainer
from lpm.client.options import ConnectionOptions
from lpm.client.shift_status import ShiftStatusPoller
from lpm.client.subscriptions.routing import RoutingTaskSubscription
from lpm.client.transport.base import MessagesQuery
from lpm.client.transport.tracking import tracking_query
from lpm.client.transport.websocket import WebsocketConnection
from lpm.enums import AgentState, ParticipantState, parse_enum
from lpm.errors import AuthenticationError, LpmError, RequestError
from lpm.protocol.notifications import AgentStateInfo, MessagingEventInfo, decode_query_messages
from lpm.protocol.requests import (
    GetUserProfileBody,
    RingAnswer,
    SetAgentStateBody,
    SubscribeAgentsStateBody,
    SubscribeRoutingTasksBody,
    UpdateRingStateBody,
)
from lpm.protocol.types import Dialect, Req

if TYPE_CHECKING:
    from lpm.client.model.dialog import Dialog

log = logging.getLogger("lpm.client.transport.brand")

#: Token maintainer events the connection re-emits under the same name (Node SDK §2.3).
MAINTAINER_EVENTS = (
    "token-invalid",
    "refresh-token",
    "token-regenerated",
    "generate-token-wait",
    "getAgentToken#request",
    "getAgentToken#response",
)
#: Safety stop for the history pages fetched per dialog after a reconnect.
MAX_CATCH_UP_PAGES = 1000
#: Dialogs caught up at the same time after a reconnect: one query at a time would cost a round
#: trip per open dialog (10,000 conversations: seconds); this many share the socket instead.
#: 128 rather than 32: with 32 the client and the server took turns (a burst of answers read,
#: a burst of queries written), with more in flight each works while the other does (and more
#: frames share a TLS record and a system call); 10,000 dialogs were caught up in about 0.4 s
#: instead of 0.6-0.8 s.  (benchmarks/node/peer_bench.js mirrors it for the peer's catch-up.)
CATCH_UP_CONCURRENCY = 128


class BrandWebsocketConnection(BrandIdentity, WebsocketConnection):
    """A brand user's WebSocket connection (``user_type=UserType.BRAND``)."""

    dialect = Dialect.BRAND_V2

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options)
        self.token_maintainer: Any = options.token_maintainer or brand_token_maintainer(options, self.http)
        #: This agent's state (``ONLINE``...): the last one set with :meth:`set_agent_state`, or
        #: reported by the platform since (another session of the same agent, a manager); None
        #: until either.  Sent again after every reconnect.
        self.agent_state: str | None = None
        self._agent_state_description: str | None = None
        #: The application set a state: it is sent again after every reconnect.
        self._agent_state_set = False
        self._token: str | None = None
        self._last_maintainer_error: BaseException | None = None
        self._forward_maintainer_events()
        #: The skill shift-status poller (``poll_shift_status=True``; lpm.client.shift_status).
        self.shift_status_poller = ShiftStatusPoller(self) if options.poll_shift_status else None

    def _forward_maintainer_events(self) -> None:
        maintainer = self.token_maintainer
        if not callable(getattr(maintainer, "on", None)):
            return  # a minimal user-supplied maintainer without events
        for name in MAINTAINER_EVENTS:
            maintainer.on(name, self._forwarder(name))
        # Login failures the maintainer retries on its own are background errors of the connection.
        maintainer.on("error", self._maintainer_error)

    def _maintainer_error(self, error: BaseException) -> None:
        self._last_maintainer_error = error
        self.report_error(error)

    def _forwarder(self, name: str) -> Callable[..., None]:
        def forward(*args: Any) -> None:
            self.emit(name, *args)

        return forward

    # ---------------------------------------------------------------- identity

    async def _prepare_identity(self) -> None:
        await self.token_maintainer.start()
        self._token = await self.token_maintainer.get_token()

    async def _socket_target(self) -> tuple[str, dict[str, str]]:
        host = await self.lookup_service("facadeMsg")
        token = quote(self._token or "", safe="")
        query = tracking_query(self.options.app_id, self.options.app_version)
        url = (
            f"{self.http.ws_url(host)}/ws_api/account/{self.account_id}/messaging/brand/{token}?v=2.1&{query}"
        )
        return url, {}

    async def _verify(self) -> None:
        await self.request(Req.GET_USER_PROFILE, GetUserProfileBody(userId=self.user_id or None))

    async def _on_upgrade_unauthorized(self) -> None:
        if not await self._invalidate("Websocket-open"):
            # Nothing can replace the refused bearer (the caller's token): fail the attempt with
            # the typed authentication error, as a consumer's refused token does.
            raise AuthenticationError(
                "the server refused the bearer at the WebSocket upgrade (401) and it cannot be renewed",
                status=401,
            )

    async def _on_auth_close(self, code: int) -> bool:
        return await self._invalidate("Websocket-close")

    async def _invalidate(self, source: str) -> bool:
        """Have the maintainer replace the refused token; False (and maintenance stops) when it
        cannot (a caller-supplied bearer, a session without credentials)."""
        maintainer = self.token_maintainer
        try:
            if isinstance(maintainer, TokenMaintainer | StaticTokenMaintainer):
                # Naming the refused token makes a report that arrives after a regeneration a
                # no-op instead of a second login.
                await maintainer.on_token_invalid(source, token=self._token)
            else:
                await maintainer.on_token_invalid(source)
        except LpmError as exc:
            if exc is not self._last_maintainer_error:  # not reported twice
                self.report_error(exc)
            self._auth_failed_for_good = True
            return False
        except Exception as exc:
            # Not a refusal (a bug, a malformed answer): reported; the next attempt logs in again.
            self.report_error(exc)
        return True

    async def _restore(self, first: bool) -> None:
        if self.shift_status_poller is not None:
            self.shift_status_poller.start()  # the first status is asked before the subscriptions
        if first:
            await self._restore_subscriptions(first)
            await self._restore_agent_state()
            return
        # The catch-up of the dialogs known before the loss starts at once, beside the
        # resubscription: the new snapshot takes the server a while to build and send (10,000
        # conversations: more than half a second), and waiting for it before the first history
        # query made a reconnect cost both one after the other.  The events it fetches are held
        # until the session is restored, like those of the catch-up after the snapshot, so
        # nothing changes in when they are applied (nor in their order).  Once the
        # subscriptions are back, the dialogs the snapshot brought (new conversations, joined
        # ones) are caught up too; each dialog is fetched once.  (A dialog the snapshot shows
        # this user left meanwhile is fetched as well: UMS refuses the query, 403/404, skipped,
        # or it brings what was sent while the user still took part.)
        catch_up = _CatchUp(self._catch_up_dialog)
        try:
            catch_up.add(self._dialogs_to_catch_up())
            await self._restore_subscriptions(first)
            await self._restore_agent_state()
            catch_up.add(self._dialogs_to_catch_up())
            await catch_up.wait()
        finally:
            await catch_up.cancel()

    async def _restore_agent_state(self) -> None:
        if self._agent_state_set and self.agent_state is not None:
            await self._send_agent_state(self.agent_state, self._agent_state_description)
        await self._follow_agent_state()

    async def _follow_agent_state(self) -> None:
        """Subscribe to this agent's own state (after the state above is set again, so the
        subscription's first notification is that state, or whatever changed it since)."""
        if not self.agent_id:
            return
        body = SubscribeAgentsStateBody(brandId=self.account_id, agentId=self.agent_id, agentAvailability="")
        await self.request(Req.SUBSCRIBE_AGENTS_STATE, body)

    def _on_agent_state(self, state: AgentStateInfo) -> None:
        """Follow the platform's word on this agent's state (set by this connection, another
        session of the same agent or a manager), then emit ``agent-state``."""
        if state.agent_id is not None and state.agent_id in (self.agent_id, self.user_id):
            self.agent_state = str(state.availability)
            self._agent_state_description = state.description or None
        super()._on_agent_state(state)

    def _dialogs_to_catch_up(self) -> list[tuple[str, Dialog]]:
        """What a catch-up fetches: every open dialog this user takes part in (UMS sends, and
        shows, a dialog's events only to its participants), with its conversation's id.  The
        events are held with the live ones received meanwhile and applied like them
        (``message``, ``message-delivery-event``) once the session is restored, in sequence
        order; the dialogs drop what they have already seen."""
        todo: list[tuple[str, Dialog]] = []
        for conversation in self.conversations.all():
            for dialog in conversation.dialogs:
                if not dialog.is_open:
                    continue
                me = dialog.get_self_participant()
                if me is None or me.state != ParticipantState.ACTIVE:
                    continue
                todo.append((conversation.conversation_id, dialog))
        return todo

    async def _catch_up_dialog(self, conversation_id: str, dialog: Dialog) -> None:
        cursor: int = dialog.last_contiguous_sequence  # newerThanSequence is exclusive
        for _ in range(MAX_CATCH_UP_PAGES):
            try:
                events = await self.query_messages(conversation_id, dialog.dialog_id, newer_than=cursor)
            except RequestError as exc:
                if exc.code in (403, 404):
                    # Left the conversation (or it is gone) while disconnected: nothing to fetch.
                    # str(exc), not exc: a handler that keeps log records (pytest's capture, a MemoryHandler)
                    # would keep the exception, its traceback's frames and the conversations they held.
                    log.debug("catch-up of dialog %s skipped: %s", dialog.dialog_id, str(exc))
                    return
                raise
            self._hold_events(events)
            top = max((e.sequence for e in events if e.sequence is not None), default=None)
            if top is None or top <= cursor:
                return
            cursor = top

    async def _shutdown_extras(self) -> None:
        if self.shift_status_poller is not None:
            await self.shift_status_poller.stop()
        await self.token_maintainer.stop()

    # ---------------------------------------------------------------- agent state and routing

    async def set_agent_state(
        self, agent_state: str, *, agent_id: str | None = None, description: str | None = None
    ) -> None:
        """``SetAgentState`` (ONLINE, OCCUPIED, AWAY, BACK_SOON, OFFLINE); remembered and re-sent
        after every reconnect.  Rings arrive only while ONLINE (OCCUPIED: transfers only).

        The platform's word wins afterwards: when another session of this agent or a manager
        changes the state, :attr:`agent_state` follows it (an ``agent-state`` event says so), and
        that is the state sent again after a reconnect."""
        state = str(parse_enum(AgentState, agent_state, "agent_state"))
        if agent_id is not None and agent_id != self.agent_id:
            body = SetAgentStateBody(
                availability=state,
                agentUserId=agent_id,
                channels=["MESSAGING"],
                description=description or None,
            )
            await self.request(Req.SET_AGENT_STATE, body)
            return
        self.agent_state = state
        self._agent_state_description = description
        self._agent_state_set = True
        await self._send_agent_state(state, description)

    async def _send_agent_state(self, state: str, description: str | None) -> None:
        body = SetAgentStateBody(
            availability=state,
            agentUserId=self.agent_id or None,
            channels=["MESSAGING"],
            description=description or None,
        )
        await self.request(Req.SET_AGENT_STATE, body)

    async def create_routing_task_subscription(
        self, query: dict[str, Any] | None = None
    ) -> RoutingTaskSubscription:
        """Subscribe to this agent's rings; ``ring`` events then fire on it and the connection."""
        subscription = RoutingTaskSubscription(self, query or {})
        await subscription.init()
        return subscription

    async def subscribe_routing_tasks(self, query: dict[str, Any]) -> str:
        """``SubscribeRoutingTasks`` of a wire query (this agent's MESSAGING tasks unless it says
        otherwise); returns the subscription id."""
        fields: dict[str, Any] = {"channelType": "MESSAGING", "brandId": self.account_id}
        if self.agent_id:
            fields["agentId"] = self.agent_id
        fields.update(query)
        result = await self.request(Req.SUBSCRIBE_ROUTING_TASKS, SubscribeRoutingTasksBody(**fields))
        return str(result["subscriptionId"])

    async def unsubscribe_routing_tasks(self, subscription_id: str) -> None:
        """UMS has no request to end a routing-task subscription: stop routing its notifications
        (the server's subscription ends with the socket)."""
        self.router.unregister_routing_subscription(subscription_id)

    async def update_ring_state(self, ring_id: str, ring_state: str) -> None:
        """Answer a ring (``routing.UpdateRingState``): ``ring_state`` is ``ACCEPTED`` or
        ``REJECTED``.  ``ring.accept()`` and ``ring.reject()`` call it for you."""
        # The server refuses any other answer than ACCEPTED / REJECTED.
        body = UpdateRingStateBody(ringId=ring_id, ringState=cast(RingAnswer, str(ring_state)))
        await self.request(Req.UPDATE_RING_STATE, body)

    # ---------------------------------------------------------------- messages

    async def _query_messages(self, query: MessagesQuery) -> list[MessagingEventInfo]:
        """``ms.QueryMessages``.  A dict: QueryMessagesBody's decode default (``maxQuantity`` 100)
        would drop an explicit 100 from the wire, and UMS's own default is not known to be 100."""
        body: dict[str, Any] = {"dialogId": query.dialog_id, "conversationId": query.conversation_id}
        bounds = (
            ("maxQuantity", query.max_quantity),
            ("newerThanSequence", query.newer_than),
            ("olderThanSequence", query.older_than),
        )
        body.update((name, value) for name, value in bounds if value is not None)
        # The page's JSON is decoded straight into the events (no dicts in between).
        result = await self.request(Req.QUERY_MESSAGES, body, raw_answer=True)
        return decode_query_messages(result, brand=True)

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        """Brands receive live events of their conversations without subscribing: nothing to do."""


class _CatchUp:
    """The dialogs of a catch-up, fetched by up to :data:`CATCH_UP_CONCURRENCY` workers from one
    queue: dialogs are independent (the held events are sorted per dialog on release), so several
    are fetched at once.  Each dialog is fetched once, however often it is added.  The first
    failure is raised by :meth:`wait` (the other workers are cancelled by :meth:`cancel`)."""

    __slots__ = ("_fetch", "_seen", "_todo", "_workers")

    def __init__(self, fetch: Callable[[str, Dialog], Any]) -> None:
        self._fetch = fetch
        self._todo: deque[tuple[str, Dialog]] = deque()
        #: By identity (held: an id is not reused while its dialog is here).
        self._seen: dict[int, Dialog] = {}
        self._workers: list[asyncio.Future[None]] = []

    def add(self, targets: list[tuple[str, Dialog]]) -> None:
        """Queue the dialogs not queued before, and start workers for them."""
        seen, todo = self._seen, self._todo
        for conversation_id, dialog in targets:
            if id(dialog) not in seen:
                seen[id(dialog)] = dialog
                todo.append((conversation_id, dialog))
        running = sum(1 for w in self._workers if not w.done())
        for _ in range(min(CATCH_UP_CONCURRENCY - running, len(todo))):
            self._workers.append(asyncio.ensure_future(self._work()))

    async def _work(self) -> None:
        todo = self._todo
        while todo:
            await self._fetch(*todo.popleft())

    async def wait(self) -> None:
        """Until every queued dialog is fetched; raises the first failure."""
        await asyncio.gather(*self._workers)

    async def cancel(self) -> None:
        """Stop the workers still running and wait for them (their outcome no longer matters)."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
