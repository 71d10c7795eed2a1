"""Connector webhooks: world changes POSTed to the endpoints of app installs (protocol §5.3).

App installs (their client credentials and webhook registrations) come from the world file or
from the App Installation API, :mod:`lpm.emulator.http_app_install`.  Event keys:
``cqm.ExConversationChangeNotification`` and
``ms.MessagingEventNotification.{ContentEvent,RichContentEvent,AcceptStatusEvent,ChatStateEvent}``.

Delivery: each notification is POSTed as LivePerson's webhooks pages show it (Connector API,
"Webhooks Examples" and "Events"), the notification itself: ``{"kind": "notification", "body":
B, "type": T}``, in the public v3 shapes of the brand's view (:mod:`lpm.emulator.render`), so an
application reads ``body.changes[0]`` of the POST body.  (The Node SDK's
``processWebhooksNotification`` reads a ``{"wsNotificationMsg": ...}`` wrapper instead; this
SDK's intake and :func:`lpm.webhooks.create_app` take both.)  The published frames these bodies
are held to are ``tests/fixtures/frames/published/webhook_*.json``.

* ``ms.MessagingEventNotification``: ``{"changes": [<one event change>]}`` (the change names its
  dialog and conversation).  Private (AGENTS_AND_MANAGERS) messages are delivered too: the
  endpoint is the brand's own server.
* ``cqm.ExConversationChangeNotification``: ``{"changes": [{"type": "UPSERT", "result":
  <complete conversation>}]}``.

The body is rendered when the change happens (the state of that moment) and POSTed with
``Content-Type: application/json``, ``x-liveperson-account-id``, ``x-liveperson-client-id`` and
``x-liveperson-signature: sha1=<base64 HMAC-SHA1(raw body, client_secret)>``, after the
endpoint's own headers (which cannot override these).  Any 2xx is success.  Connection errors,
timeouts (``settings.webhook_timeout``) and other statuses are retried with exponential back-off
(``webhook_retry_base`` doubling up to ``webhook_retry_max``) until ``retention_time`` seconds
after the notification was created; then it is dropped (warning logged, ``dropped`` counted) and
the next one is sent.  Notifications of one (install, conversation) pair go out strictly in order
from one queue; different conversations are delivered in parallel.  An install removed (or an
endpoint unregistered) while notifications wait drops them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from lpm.emulator import entities as m
from lpm.emulator import render
from lpm.protocol.frames import encode
from lpm.protocol.types import Notif

if TYPE_CHECKING:
    from lpm.emulator.context import Context

log = logging.getLogger(__name__)

CONVERSATION_KEY = "cqm.ExConversationChangeNotification"
MESSAGING_PREFIX = "ms.MessagingEventNotification."
EVENT_KEYS = frozenset(
    {CONVERSATION_KEY}
    | {
        MESSAGING_PREFIX + t
        for t in ("ContentEvent", "RichContentEvent", "AcceptStatusEvent", "ChatStateEvent")
    }
)


def signature(body: bytes, client_secret: str) -> str:
    """``x-liveperson-signature``: ``sha1=`` + base64 of HMAC-SHA1 over the raw body."""
    digest = hmac.new(client_secret.encode(), body, hashlib.sha1).digest()
    return "sha1=" + base64.b64encode(digest).decode()


def _safe_url(endpoint: str) -> str:
    """The endpoint for logs, without query or credentials (they may carry secrets)."""
    try:
        url = URL(endpoint)
    except ValueError:
        return "<invalid url>"
    return str(url.with_query(None).with_fragment(None).with_user(None))


def header_items(headers: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(name, value) pairs of an endpoint's headers: ``{"header_name", "header_value"}`` entries or
    ``{name: value}`` objects."""
    out = []
    for entry in headers:
        if "header_name" in entry:
            out.append((str(entry["header_name"]), str(entry.get("header_value", ""))))
        else:
            out.extend((str(k), str(v)) for k, v in entry.items())
    return out


# ---------------------------------------------------------------- delivery


@dataclass(slots=True)
class _Notification:
    key: str
    body: bytes
    #: ``loop.time()`` when it was created: the start of its retention window.
    created: float


@dataclass(slots=True)
class _Queue:
    account_id: str
    client_id: str
    conv_id: str
    items: deque[_Notification] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class WebhookSink:
    """A :class:`~lpm.emulator.sinks.WorldSink` that delivers webhooks.

    ``delivered``, ``retried`` (failed attempts that were retried) and ``dropped`` count what
    happened so far; :meth:`drain` waits until every queue is empty.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.delivered = 0
        self.retried = 0
        self.dropped = 0
        self._queues: dict[tuple[str, str, str], _Queue] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # ---------------------------------------------------------------- WorldSink

    def conversation_changed(self, conv: m.Conversation) -> None:
        """Queue a ``cqm.ExConversationChangeNotification`` UPSERT for each subscribed install."""
        installs = self._installs(conv.account_id, CONVERSATION_KEY)
        if not installs:
            return
        result = render.conversation_result(self.ctx.world, conv, public=True)
        body = {"changes": [{"type": "UPSERT", "result": result}]}
        for install in installs:
            self._enqueue(install, conv, CONVERSATION_KEY, Notif.EX_CONVERSATION_CHANGE, body)

    def messaging_event(self, conv: m.Conversation, record: m.EventRecord) -> None:
        """Queue a ``ms.MessagingEventNotification`` for installs subscribed to its event type."""
        key = MESSAGING_PREFIX + str(record.event.get("type"))
        installs = self._installs(conv.account_id, key)
        if not installs:
            return
        acc = self.ctx.world.accounts[conv.account_id]
        body = render.messaging_body(acc, [record], public=True)
        for install in installs:
            self._enqueue(install, conv, key, Notif.MESSAGING_EVENT, body)

    def routing_task_changed(self, account_id: str, task: m.RoutingTask) -> None:
        """Routing is not a webhook event."""

    def agent_state_changed(self, account_id: str, user_id: str, state: m.AgentState) -> None:
        """Agent state is not a webhook event."""

    def consumer_changed(self, account_id: str, consumer: m.Consumer) -> None:
        """Consumer identities are not a webhook event."""

    # ---------------------------------------------------------------- queues

    def _installs(self, account_id: str, key: str) -> list[m.AppInstall]:
        acc = self.ctx.world.accounts.get(account_id)
        if acc is None or self._closed:
            return []
        return [i for i in acc.app_installs.values() if key in i.webhooks]

    def _enqueue(
        self, install: m.AppInstall, conv: m.Conversation, key: str, notif: Notif, body: Any
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # The world driven without a server (unit tests): there is nothing to deliver with.
            return
        payload = {"kind": "notification", "body": body, "type": notif.value}
        item = _Notification(key=key, body=encode(payload), created=loop.time())
        qkey = (conv.account_id, install.client_id, conv.conv_id)
        queue = self._queues.get(qkey)
        if queue is None:
            queue = self._queues[qkey] = _Queue(conv.account_id, install.client_id, conv.conv_id)
            queue.items.append(item)
            queue.task = loop.create_task(self._run(queue), name=f"lpm-webhooks-{conv.conv_id}")
        else:
            queue.items.append(item)

    async def _run(self, queue: _Queue) -> None:
        qkey = (queue.account_id, queue.client_id, queue.conv_id)
        try:
            while queue.items:
                try:
                    await self._deliver(queue, queue.items[0])
                except Exception:
                    # A bug here must not stall the conversation's queue forever.
                    self.dropped += 1
                    log.exception("webhook delivery failed unexpectedly; notification dropped")
                queue.items.popleft()
        finally:
            # No await between the empty check and this removal, so nothing enqueued is lost:
            # a later notification finds no queue and starts a new one.
            if self._queues.get(qkey) is queue:
                del self._queues[qkey]

    async def _deliver(self, queue: _Queue, item: _Notification) -> None:
        """Send ``item`` until it is accepted or its retention time is over."""
        loop = asyncio.get_running_loop()
        settings = self.ctx.settings
        delay = settings.webhook_retry_base
        # A notification leaves only once the change it shows is committed (persistence: group
        # commit), so a crash can never make an endpoint see a sequence handed out again.
        await self.ctx.world.store.durable()
        while True:
            # Looked up on every attempt: a PUT may have moved the endpoint, a DELETE removed it.
            acc = self.ctx.world.accounts.get(queue.account_id)
            install = acc.app_installs.get(queue.client_id) if acc is not None else None
            endpoint = install.webhooks.get(item.key) if install is not None else None
            if install is None or endpoint is None:
                self.dropped += 1
                log.info("webhook %s for app %s dropped: no longer registered", item.key, queue.client_id)
                return
            error = await self._attempt(queue.account_id, install, endpoint, item.body)
            if error is None:
                self.delivered += 1
                return
            now = loop.time()
            deadline = item.created + install.retention_time
            if now >= deadline:
                self.dropped += 1
                log.warning(
                    "webhook %s for app %s to %s dropped after %.1f s retention (last error: %s)",
                    item.key,
                    queue.client_id,
                    _safe_url(endpoint.endpoint),
                    install.retention_time,
                    str(error),
                )
                return
            self.retried += 1
            log.debug(
                "webhook %s to %s failed (%s), retry in %.2f s",
                item.key,
                _safe_url(endpoint.endpoint),
                str(error),
                delay,
            )
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, settings.webhook_retry_max)

    async def _attempt(
        self, account_id: str, install: m.AppInstall, endpoint: m.WebhookEndpoint, body: bytes
    ) -> str | None:
        """One POST; ``None`` on success, else a short description of the failure."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = dict(header_items(endpoint.headers))
        headers.update(
            {
                "Content-Type": "application/json",
                "x-liveperson-account-id": account_id,
                "x-liveperson-client-id": install.client_id,
                "x-liveperson-signature": signature(body, install.client_secret),
            }
        )
        timeout = aiohttp.ClientTimeout(total=self.ctx.settings.webhook_timeout)
        try:
            async with self._session.post(
                endpoint.endpoint, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                await resp.read()
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except TimeoutError:
            return "timeout"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return type(exc).__name__

    # ---------------------------------------------------------------- lifecycle

    @property
    def pending(self) -> int:
        """Notifications queued and not yet delivered or dropped."""
        return sum(len(q.items) for q in self._queues.values())

    # A timeout parameter rather than asyncio.timeout(): tests call ``drain(2)`` as one step.
    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queue is empty; :class:`TimeoutError` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queues:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.pending} webhook notification(s) still pending")
            tasks = [q.task for q in self._queues.values() if q.task is not None]
            await asyncio.wait(tasks, timeout=remaining)

    async def close(self) -> None:
        """Stop delivering: cancel every queue and close the HTTP client."""
        self._closed = True
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


def sink(ctx: Context) -> WebhookSink:
    """The webhook sink of this emulator (added to the world's sinks by the app)."""
    return WebhookSink(ctx)


def sink_of(ctx: Context) -> WebhookSink | None:
    """The running emulator's webhook sink (tests read its counters and :meth:`~WebhookSink.drain`)."""
    return next((s for s in ctx.world.sinks if isinstance(s, WebhookSink)), None)


async def shutdown(ctx: Context) -> None:
    """Cancel pending deliveries and close the HTTP client."""
    found = sink_of(ctx)
    if found is not None:
        await found.close()
