"""Connector webhooks: world changes POSTed to the endpoints of app installs (protocol §5.3).

Registration (App Installation API shape), with an agentVep bearer of the account in
``Authorization: Bearer <bearer>``, under ``/api/account/{acc}/configuration/app-install``.
Installs hold client secrets (which buy AppJWTs), so managers see and manage every install, other
agents only those they created:

* ``POST /installations`` with ::

      {"client_name": "my-bot",
       "capabilities": {"webhooks": {
           "ms.MessagingEventNotification.ContentEvent": {"endpoint": "https://...",
                                                          "headers": [{"header_name": "X-A",
                                                                       "header_value": "1"}]},
           "cqm.ExConversationChangeNotification": {"endpoint": "https://..."},
           "retry": {"retention_time": 60}}}}

  → 201 with the install: ``{"id", "client_id", "client_secret", "client_name", "grant_types",
  "scope", "enabled", "capabilities": {"webhooks": {...same form..., "retry": {...}}}}``.  The
  client id and secret are generated; they also work with sentinel for an AppJWT.
* ``GET /installations`` → the list of installs; ``GET /installations/{client_id}`` → one.
* ``PUT /installations/{client_id}`` (same body) → 200: replaces the webhooks (and the name when
  given; the retention time when ``retry`` is given).
* ``DELETE /installations/{client_id}`` → 204.

Event keys: ``cqm.ExConversationChangeNotification`` and
``ms.MessagingEventNotification.{ContentEvent,RichContentEvent,AcceptStatusEvent,ChatStateEvent}``.
Endpoints must be ``http://`` or ``https://`` URLs (https is verified against the system trust
store).  ``retention_time`` is 2 s to 3 days (default 60 s).  Header entries are
``{"header_name", "header_value"}`` (a ``{name: value}`` object is accepted too).  Errors are
JSON ``{"code": <HTTP status>, "message": ...}``: 400 invalid body, 401 missing/invalid bearer,
403 another agent's install (for an agent who is no manager), 404 unknown install or account.
Installs configured in the world (TOML, default world) are active as well (managed by managers).

Delivery: each notification is POSTed as LivePerson's webhooks pages show it (Connector API,
"Webhooks Examples" and "Events"), the notification itself: ``{"kind": "notification", "body":
B, "type": T}``, in the public v3 shapes of the brand's view (:mod:`lpm.emulator.render`).  (The
Node SDK's ``processWebhooksNotification`` reads a ``{"wsNotificationMsg": ...}`` wrapper instead;
this SDK's intake and :func:`lpm.webhooks.create_app` take both.)

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
from one queue; different conversations are delivered in parallel.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from yarl import URL

from lpm.emulator import render
from lpm.emulator.entities import (
    AgentState,
    AppInstall,
    Consumer,
    Conversation,
    EventRecord,
    RoutingTask,
    User,
)
from lpm.emulator.entities import WebhookEndpoint as Endpoint
from lpm.emulator.http_common import decode_body, json_response
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound, Unauthorized, WorldError
from lpm.protocol.frames import FrameError, encode
from lpm.protocol.types import Notif

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.entities import Account
    from lpm.emulator.extensions import Route

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
#: Bounds of ``retry.retention_time`` (protocol §5.3: 2 s to 3 days).
MIN_RETENTION = 2.0
MAX_RETENTION = 3 * 24 * 3600.0
DEFAULT_RETENTION = 60.0

Handler = Callable[["Context", web.Request], Awaitable[web.StreamResponse]]


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


def _header_items(headers: list[dict[str, str]]) -> list[tuple[str, str]]:
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

    def conversation_changed(self, conv: Conversation) -> None:
        """Queue a ``cqm.ExConversationChangeNotification`` UPSERT for each subscribed install."""
        installs = self._installs(conv.account_id, CONVERSATION_KEY)
        if not installs:
            return
        result = render.conversation_result(self.ctx.world, conv, public=True)
        body = {"changes": [{"type": "UPSERT", "result": result}]}
        for install in installs:
            self._enqueue(install, conv, CONVERSATION_KEY, Notif.EX_CONVERSATION_CHANGE, body)

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        """Queue a ``ms.MessagingEventNotification`` for installs subscribed to its event type."""
        key = MESSAGING_PREFIX + str(record.event.get("type"))
        installs = self._installs(conv.account_id, key)
        if not installs:
            return
        acc = self.ctx.world.accounts[conv.account_id]
        body = render.messaging_body(acc, [record], public=True)
        for install in installs:
            self._enqueue(install, conv, key, Notif.MESSAGING_EVENT, body)

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None:
        """Routing is not a webhook event."""

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None:
        """Agent state is not a webhook event."""

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None:
        """Consumer identities are not a webhook event."""

    # ---------------------------------------------------------------- queues

    def _installs(self, account_id: str, key: str) -> list[AppInstall]:
        acc = self.ctx.world.accounts.get(account_id)
        if acc is None or self._closed:
            return []
        return [i for i in acc.app_installs.values() if key in i.webhooks]

    def _enqueue(self, install: AppInstall, conv: Conversation, key: str, notif: Notif, body: Any) -> None:
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
        self, account_id: str, install: AppInstall, endpoint: Endpoint, body: bytes
    ) -> str | None:
        """One POST; ``None`` on success, else a short description of the failure."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = dict(_header_items(endpoint.headers))
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


# ---------------------------------------------------------------- installation API


def error_response(status: int, message: str) -> web.Response:
    """The installation API's error body."""
    return json_response({"code": status, "message": message}, status)


def _guard(fn: Handler) -> Handler:
    async def handler(ctx: Context, request: web.Request) -> web.StreamResponse:
        try:
            return await fn(ctx, request)
        except WorldError as exc:
            return error_response(exc.status, exc.message)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def _account(ctx: Context, request: web.Request) -> tuple[Account, User]:
    """The path's account and the caller, who has an agentVep bearer of that account."""
    account_id = request.match_info["account"]
    auth = request.headers.get("Authorization", "").strip()
    if auth[:7].lower() == "bearer ":
        auth = auth[7:].strip()
    session = ctx.world.session(auth) if auth else None
    if session is None:
        raise Unauthorized("Authorization: Bearer <agent bearer> is required")
    acc = ctx.world.accounts.get(account_id)
    if acc is None:
        raise NotFound(f"unknown account {account_id}")
    if session.account_id != account_id:
        raise Unauthorized(f"the bearer token is not valid for account {account_id}")
    user = acc.users.get(session.user_id)
    if user is None:
        raise Unauthorized("the bearer's user no longer exists")
    return acc, user


def _manages(user: User, install: AppInstall) -> bool:
    """Managers manage every install, other agents those they created."""
    return user.is_manager or install.created_by == user.user_id


def _install(acc: Account, user: User, request: web.Request) -> AppInstall:
    client_id = request.match_info["client_id"]
    install = acc.app_installs.get(client_id)
    if install is None:
        raise NotFound(f"app install {client_id} not found")
    if not _manages(user, install):
        raise Forbidden(f"app install {client_id} belongs to someone else: only managers manage it")
    return install


def _endpoint(key: str, raw: Any) -> Endpoint:
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoint"), str):
        raise BadRequest(f"webhook {key} needs an endpoint URL")
    try:
        url = URL(raw["endpoint"])
    except ValueError:
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise BadRequest(f"webhook {key}: endpoint must be an http:// or https:// URL")
    headers = raw.get("headers") or []
    if not isinstance(headers, list) or not all(isinstance(h, dict) for h in headers):
        raise BadRequest(f"webhook {key}: headers must be a list of objects")
    normalized: list[dict[str, str]] = []
    for name, value in _header_items(headers):
        if not name or any(c in name + value for c in "\r\n"):
            raise BadRequest(f"webhook {key}: invalid header {name!r}")
        normalized.append({"header_name": name, "header_value": value})
    return Endpoint(endpoint=str(raw["endpoint"]), headers=normalized)


@dataclass(slots=True)
class _InstallSpec:
    name: str | None
    webhooks: dict[str, Endpoint]
    retention_time: float | None


async def _spec(request: web.Request) -> _InstallSpec:
    raw_bytes = await request.read()
    try:
        raw = decode_body(raw_bytes) if raw_bytes.strip() else {}
    except FrameError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest("the body must be a JSON object")
    name = raw.get("client_name")
    if name is not None and not isinstance(name, str):
        raise BadRequest("client_name must be a string")
    capabilities = raw.get("capabilities") or {}
    hooks = capabilities.get("webhooks") if isinstance(capabilities, dict) else None
    hooks = hooks or {}
    if not isinstance(hooks, dict):
        raise BadRequest("capabilities.webhooks must be an object")
    webhooks: dict[str, Endpoint] = {}
    retention: float | None = None
    for key, value in hooks.items():
        if key == "retry":
            value = value if isinstance(value, dict) else {}
            seconds = value.get("retention_time")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise BadRequest("retry.retention_time must be a number of seconds")
            if not MIN_RETENTION <= seconds <= MAX_RETENTION:
                raise BadRequest(
                    f"retry.retention_time must be between {MIN_RETENTION:g} and {MAX_RETENTION:g} seconds"
                )
            retention = float(seconds)
        elif key in EVENT_KEYS:
            webhooks[key] = _endpoint(key, value)
        else:
            raise BadRequest(f"unknown webhook event {key} (one of {', '.join(sorted(EVENT_KEYS))})")
    return _InstallSpec(name=name, webhooks=webhooks, retention_time=retention)


def install_body(install: AppInstall) -> dict[str, Any]:
    """An install as the installation API shows it."""
    hooks: dict[str, Any] = {
        key: {"endpoint": hook.endpoint, "headers": hook.headers} for key, hook in install.webhooks.items()
    }
    retention = install.retention_time
    hooks["retry"] = {"retention_time": int(retention) if retention == int(retention) else retention}
    return {
        "id": install.client_id,
        "client_id": install.client_id,
        "client_secret": install.client_secret,
        "client_name": install.name,
        "grant_types": ["client_credentials"],
        "scope": "msg.consumer",
        "enabled": True,
        "capabilities": {"webhooks": hooks},
    }


async def create_install(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``POST .../installations``: a new app install with generated credentials."""
    acc, user = _account(ctx, request)
    spec = await _spec(request)
    install = AppInstall(
        client_id=str(uuid.uuid4()),
        client_secret=secrets.token_urlsafe(32),
        name=spec.name or "app",
        webhooks=spec.webhooks,
        retention_time=spec.retention_time if spec.retention_time is not None else DEFAULT_RETENTION,
        created_by=user.user_id,
    )
    acc.app_installs[install.client_id] = install
    ctx.world.store.app_install_changed(acc.account_id, install)
    log.info("app install %s created on account %s", install.client_id, acc.account_id)
    return json_response(install_body(install), 201)


async def list_installs(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``GET .../installations``."""
    acc, user = _account(ctx, request)
    return json_response([install_body(i) for i in acc.app_installs.values() if _manages(user, i)])


async def get_install(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``GET .../installations/{client_id}``."""
    acc, user = _account(ctx, request)
    return json_response(install_body(_install(acc, user, request)))


async def update_install(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``PUT .../installations/{client_id}``: replace the webhooks."""
    acc, user = _account(ctx, request)
    install = _install(acc, user, request)
    spec = await _spec(request)
    install.webhooks = spec.webhooks
    if spec.name is not None:
        install.name = spec.name
    if spec.retention_time is not None:
        install.retention_time = spec.retention_time
    ctx.world.store.app_install_changed(acc.account_id, install)
    return json_response(install_body(install))


async def delete_install(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``DELETE .../installations/{client_id}``; queued notifications of it are dropped."""
    acc, user = _account(ctx, request)
    install = _install(acc, user, request)
    del acc.app_installs[install.client_id]
    ctx.world.store.app_install_removed(acc.account_id, install.client_id)
    return web.Response(status=204)


def routes(ctx: Context) -> list[Route]:
    """The installation API routes."""
    base = "/api/account/{account}/configuration/app-install/installations"
    return [
        ("POST", base, _guard(create_install)),
        ("GET", base, _guard(list_installs)),
        ("GET", base + "/{client_id}", _guard(get_install)),
        ("PUT", base + "/{client_id}", _guard(update_install)),
        ("DELETE", base + "/{client_id}", _guard(delete_install)),
    ]
