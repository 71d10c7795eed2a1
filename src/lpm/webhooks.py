"""A ready-made webhooks receiver: an aiohttp application that feeds a connection.

::

    conn = lpm.create_connection(account_id=..., user_type=lpm.UserType.BRAND,
                                 connection_type=lpm.ConnectionType.NULL)
    app = lpm.webhooks.create_app(conn, client_secret=install["client_secret"])
    web.run_app(app, port=8080)          # or an AppRunner inside your own service

What the receiver does with each ``POST`` to ``path``:

1. verifies ``x-liveperson-signature`` (``sha1=`` + base64 of HMAC-SHA1 over the raw body, keyed
   with the app install's client secret) in constant time, and answers **401** when it is missing
   or wrong — nothing of such a request is processed;
2. answers **400** to a body that is not a JSON object (malformed, not UTF-8, nested too deeply);
3. otherwise answers **200 at once** — LivePerson retries webhooks that are slow to answer, so
   processing never delays the answer — and queues the notification;
4. processes queued notifications as
   :meth:`~lpm.Connection.process_webhooks_notification` does, **strictly in order per
   conversation**: each conversation id has its own queue and task; different conversations are
   processed concurrently.  Errors are reported on the connection's ``error`` event.

Both payload forms are accepted: the notification itself, ``{"kind": "notification", "type",
"body"}`` (what LivePerson's webhooks POST, and the emulator), and the Node SDK's
``{"wsNotificationMsg": <notification>}``.  :func:`notification_of` gives the notification of a
payload in either form, for code that looks into payloads itself (a load balancer, a filter).

The queue tasks belong to the application: its cleanup (``AppRunner.cleanup()``, the end of
``web.run_app``) cancels them.  :func:`receiver_of` gives the :class:`WebhooksReceiver` of an
application (counters, and :meth:`WebhooksReceiver.drain` to wait until everything received so
far has been processed).  :func:`verify_signature` is there for receivers built on another
framework.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from lpm.client.connection import Connection
from lpm.client.events import cancel_and_wait
from lpm.client.subscriptions.webhook_intake import process_webhooks_notification, webhook_notification
from lpm.errors import ConfigurationError
from lpm.protocol.types import Notif, canonical_notification

__all__ = [
    "SIGNATURE_HEADER",
    "WebhooksReceiver",
    "create_app",
    "notification_of",
    "receiver_of",
    "signature",
    "verify_signature",
]

log = logging.getLogger("lpm.webhooks")

#: The header carrying the payload's signature.
SIGNATURE_HEADER = "x-liveperson-signature"
_PREFIX = "sha1="


def signature(body: bytes, secret: str) -> str:
    """The ``x-liveperson-signature`` value of ``body``: ``sha1=`` + base64(HMAC-SHA1(body, secret))."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha1).digest()
    return _PREFIX + base64.b64encode(digest).decode("ascii")


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the signature of the raw ``body`` with ``secret`` (constant time).

    False for a missing or malformed header; the comparison takes the same time wherever the
    header first differs, so it reveals nothing about the expected value.
    """
    if not isinstance(header, str) or not isinstance(body, bytes | bytearray) or not secret:
        return False
    value = header.strip()
    if value[: len(_PREFIX)].lower() != _PREFIX:
        return False
    expected = signature(bytes(body), secret)[len(_PREFIX) :].encode("ascii")
    return hmac.compare_digest(value[len(_PREFIX) :].encode("utf-8"), expected)


def notification_of(payload: Any) -> Mapping[str, Any] | None:
    """The notification ``{"kind", "type", "body"}`` of a webhook payload (a dict or its JSON
    text) in either form -- as LivePerson POSTs it, or wrapped in ``wsNotificationMsg`` -- or
    None when it is neither."""
    try:
        return webhook_notification(payload)
    except ConfigurationError:
        return None


def _conversation_key(connection: Connection, message: Mapping[str, Any]) -> str:
    """The conversation a notification is about (its ordering key); "" when it names none."""
    body = message.get("body")
    changes = body.get("changes") if isinstance(body, Mapping) else None
    first = changes[0] if isinstance(changes, list) and changes and isinstance(changes[0], Mapping) else {}
    if canonical_notification(str(message.get("type"))) is Notif.EX_CONVERSATION_CHANGE:
        result = first.get("result")
        cid = result.get("convId") if isinstance(result, Mapping) else None
        return str(cid) if cid else ""
    cid = first.get("conversationId")
    if cid:
        return str(cid)
    # No conversation id: the dialog's conversation if known (a POST_SURVEY dialog's id is not
    # its conversation's), else the dialog id itself.
    did = first.get("dialogId") or (body.get("dialogId") if isinstance(body, Mapping) else None)
    if not did:
        return ""
    known = connection.conversations.find_by_dialog(str(did))
    return known.conversation_id if known is not None else str(did)


class WebhooksReceiver:
    """The state behind :func:`create_app`: signature checking and per-conversation queues.

    ``received`` counts notifications accepted (200), ``rejected`` the requests refused (401/400),
    ``processed`` the notifications applied to the connection (successfully or not).
    """

    def __init__(self, connection: Connection, client_secret: str) -> None:
        #: The connection the notifications are applied to.
        self.connection = connection
        self._secret = client_secret
        #: Notifications accepted (answered 200).
        self.received = 0
        #: Requests refused (401 bad signature, 400 bad body).
        self.rejected = 0
        #: Notifications applied to the connection (successfully or not).
        self.processed = 0
        self._queues: dict[str, deque[Mapping[str, Any]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<WebhooksReceiver received={self.received} processed={self.processed} pending={self.pending}>"
        )

    @property
    def pending(self) -> int:
        """Notifications received and not yet processed."""
        return sum(len(q) for q in self._queues.values())

    async def handle(self, request: web.Request) -> web.Response:
        """The POST handler (see the module docstring)."""
        raw = await request.read()
        if not verify_signature(raw, request.headers.get(SIGNATURE_HEADER), self._secret):
            self.rejected += 1
            log.warning("webhook refused: missing or invalid %s", SIGNATURE_HEADER)
            return web.json_response({"code": 401, "message": "invalid signature"}, status=401)
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            # ValueError covers bytes that are not UTF-8; RecursionError a body nested deeper
            # than the parser goes: both are a bad body (400), never an error of the server.
            payload = None
        if not isinstance(payload, Mapping) or self._closed:
            self.rejected += 1
            status = 503 if self._closed else 400
            message = "shutting down" if self._closed else "the body must be a JSON object"
            return web.json_response({"code": status, "message": message}, status=status)
        message_part = notification_of(payload)
        key = _conversation_key(self.connection, message_part) if message_part is not None else ""
        self.received += 1
        self._submit(key, payload)
        return web.Response(status=200)

    def _submit(self, key: str, payload: Mapping[str, Any]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(payload)
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(
                self._drain_queue(key, queue), name=f"lpm-webhooks-{key or 'unkeyed'}"
            )

    async def _drain_queue(self, key: str, queue: deque[Mapping[str, Any]]) -> None:
        try:
            while queue:
                payload = queue[0]
                try:
                    await process_webhooks_notification(self.connection, payload)
                except Exception as exc:  # one bad notification must not stall the conversation
                    self.connection.report_error(exc)
                self.processed += 1
                queue.popleft()
        finally:
            # No await between the empty check and this removal: a notification that arrives
            # later finds no task and starts a new one, so nothing is left unprocessed.
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
                if self._queues.get(key) is queue and not queue:
                    del self._queues[key]

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every notification received so far has been processed;
        :class:`TimeoutError` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(list(self._tasks.values()))

    async def close(self) -> None:
        """Stop: cancel the queue tasks (what they had not processed is dropped)."""
        self._closed = True
        await cancel_and_wait(self._tasks.values(), swallow_errors=False)
        self._tasks.clear()
        dropped = self.pending
        self._queues.clear()
        if dropped:
            log.info("webhooks receiver closed with %d notification(s) unprocessed", dropped)


RECEIVER_KEY = web.AppKey("lpm_webhooks_receiver", WebhooksReceiver)


def create_app(connection: Connection, *, client_secret: str, path: str = "/webhooks") -> web.Application:
    """An aiohttp application receiving webhooks at ``POST path`` for ``connection``.

    ``client_secret`` is the app install's secret (it signs every webhook).  Raises
    :class:`~lpm.errors.ConfigurationError` for a missing secret or a path not starting with ``/``.
    """
    if not isinstance(connection, Connection):
        raise ConfigurationError("connection must be an lpm connection")
    if not isinstance(client_secret, str) or not client_secret:
        raise ConfigurationError("client_secret must be the app install's non-empty client secret")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"path must start with '/', got {path!r}")
    receiver = WebhooksReceiver(connection, client_secret)
    app = web.Application()
    app[RECEIVER_KEY] = receiver
    app.router.add_post(path, receiver.handle)

    async def cleanup(_: web.Application) -> None:
        await receiver.close()

    app.on_cleanup.append(cleanup)
    return app


def receiver_of(app: web.Application) -> WebhooksReceiver:
    """The :class:`WebhooksReceiver` of an application made by :func:`create_app`."""
    try:
        return app[RECEIVER_KEY]
    except KeyError:
        raise ConfigurationError("this application was not made by lpm.webhooks.create_app") from None
