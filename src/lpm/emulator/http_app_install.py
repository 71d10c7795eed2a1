"""The App Installation API (account configuration, ``accountConfigReadWrite``): app installs
with their client credentials and webhook registrations, under revisions.

With an agentVep bearer of the account in ``Authorization: Bearer <bearer>``, under
``/api/account/{acc}/configuration/app-install``.  Installs hold client secrets (which buy
AppJWTs), so managers see and manage every install, other agents only those they created:

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
* ``DELETE /installations/{client_id}`` → 204; notifications still queued for it are dropped.

**Revisions.**  LivePerson's account-configuration APIs version each object type's collection:
every answer carries ``ac-revision``, "account config object type collection revision" (the
Skills, Users, Workdays and Special Occasions API pages of the developer center, e.g.
``administration-delete-skills.html``), and a write names the revision it was based on in
``If-Match`` ("data revision as known by the client ... concurrent modification backend
verification"); applications read the header of a ``GET .../installations`` and send it back
(the published connector apps do exactly that before editing their install).  Here the
installations of an account are one collection with one revision, a number that grows by one
with every create, edit and removal (persisted with the world's database):

* every answer of this API, errors after authentication included, carries ``ac-revision``;
* ``PUT`` and ``DELETE`` need ``If-Match`` with the current revision: missing → 428, another
  revision → 412 (``"123"`` and ``123`` are the same revision);
* ``POST`` checks an ``If-Match`` it is given (412 when stale) and accepts none.

Errors are JSON ``{"code": <HTTP status>, "message": ...}``, checked in this order: 401
missing/invalid bearer, 404 unknown account or install, 403 another agent's install (for an agent
who is no manager), 400 invalid body, then 428/412.  Endpoints must be ``http://`` or
``https://`` URLs (https is verified against the system trust store); ``retention_time`` is 2 s to
3 days (default 60 s); header entries are ``{"header_name", "header_value"}`` (a ``{name:
value}`` object is accepted too); event keys are those of :mod:`lpm.emulator.webhook_delivery`.
Installs configured in the world (TOML, default world) are part of the collection (managed by
managers).
"""

from __future__ import annotations

import functools
import logging
import secrets
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from yarl import URL

from lpm.emulator.entities import AppInstall, User
from lpm.emulator.entities import WebhookEndpoint as Endpoint
from lpm.emulator.http_common import decode_body, json_response
from lpm.emulator.webhook_delivery import EVENT_KEYS, header_items
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound, Unauthorized, WorldError
from lpm.protocol.frames import FrameError

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.entities import Account
    from lpm.emulator.extensions import Route
    from lpm.emulator.world import World

log = logging.getLogger(__name__)

#: Bounds of ``retry.retention_time`` (protocol §5.3: 2 s to 3 days).
MIN_RETENTION = 2.0
MAX_RETENTION = 3 * 24 * 3600.0
DEFAULT_RETENTION = 60.0
#: The response header naming the collection's revision.
REVISION_HEADER = "ac-revision"

Handler = Callable[["Context", web.Request], Awaitable[web.StreamResponse]]


class PreconditionFailed(WorldError):
    """``If-Match`` names another revision of the installations."""

    status = 412


class PreconditionRequired(WorldError):
    """A ``PUT`` or ``DELETE`` came without ``If-Match``."""

    status = 428


# ---------------------------------------------------------------- revisions

#: Per world, the current revision of each account's installations.
_REVISIONS: weakref.WeakKeyDictionary[World, dict[str, int]] = weakref.WeakKeyDictionary()


def _meta_key(account_id: str) -> str:
    return f"app-install-revision:{account_id}"


def revision(world: World, account_id: str) -> int:
    """The current revision of ``account_id``'s installations (1 for a new world)."""
    known = _REVISIONS.setdefault(world, {})
    value = known.get(account_id)
    if value is None:
        get_meta = getattr(world.store, "get_meta", None)
        stored = get_meta(_meta_key(account_id)) if get_meta is not None else None
        value = int(stored) if stored and stored.isdigit() else 1
        known[account_id] = value
    return value


def bump_revision(world: World, account_id: str) -> int:
    """A new revision after a change of ``account_id``'s installations (persisted when the world
    has a database)."""
    value = revision(world, account_id) + 1
    _REVISIONS[world][account_id] = value
    set_meta = getattr(world.store, "set_meta", None)
    if set_meta is not None:
        set_meta(_meta_key(account_id), str(value))
    return value


def check_if_match(request: web.Request, current: int, *, required: bool) -> None:
    """``If-Match`` against the current revision: :class:`PreconditionRequired` when it is missing
    (and ``required``), :class:`PreconditionFailed` when it names another revision."""
    raw = request.headers.get("If-Match")
    if raw is None or not raw.strip():
        if required:
            raise PreconditionRequired(
                f"If-Match with the installations' revision is required (ac-revision {current})"
            )
        return
    for candidate in (c.strip() for c in raw.split(",")):
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate.strip('"') == str(current):
            return
    raise PreconditionFailed(
        f"the installations have changed: If-Match names another revision than ac-revision {current}"
    )


# ---------------------------------------------------------------- handlers' helpers


def error_response(status: int, message: str) -> web.Response:
    """The installation API's error body."""
    return json_response({"code": status, "message": message}, status)


@dataclass(slots=True)
class _Call:
    """An authenticated call: its account and caller (set once authenticated, for the header)."""

    account: Account | None = None
    user: User | None = None


def _guard(fn: Callable[[Context, web.Request, _Call], Awaitable[web.StreamResponse]]) -> Handler:
    @functools.wraps(fn)
    async def handler(ctx: Context, request: web.Request) -> web.StreamResponse:
        call = _Call()
        try:
            response = await fn(ctx, request, call)
        except WorldError as exc:
            response = error_response(exc.status, exc.message)
        if call.account is not None:
            response.headers[REVISION_HEADER] = str(revision(ctx.world, call.account.account_id))
        return response

    return handler


def _authenticate(ctx: Context, request: web.Request, call: _Call) -> tuple[Account, User]:
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
    call.account, call.user = acc, user
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
    for name, value in header_items(headers):
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


# ---------------------------------------------------------------- handlers


async def create_install(ctx: Context, request: web.Request, call: _Call) -> web.StreamResponse:
    """``POST .../installations``: a new app install with generated credentials."""
    acc, user = _authenticate(ctx, request, call)
    spec = await _spec(request)
    check_if_match(request, revision(ctx.world, acc.account_id), required=False)
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
    bump_revision(ctx.world, acc.account_id)
    log.info("app install %s created on account %s", install.client_id, acc.account_id)
    return json_response(install_body(install), 201)


async def list_installs(ctx: Context, request: web.Request, call: _Call) -> web.StreamResponse:
    """``GET .../installations``."""
    acc, user = _authenticate(ctx, request, call)
    return json_response([install_body(i) for i in acc.app_installs.values() if _manages(user, i)])


async def get_install(ctx: Context, request: web.Request, call: _Call) -> web.StreamResponse:
    """``GET .../installations/{client_id}``."""
    acc, user = _authenticate(ctx, request, call)
    return json_response(install_body(_install(acc, user, request)))


async def update_install(ctx: Context, request: web.Request, call: _Call) -> web.StreamResponse:
    """``PUT .../installations/{client_id}``: replace the webhooks (``If-Match`` required)."""
    acc, user = _authenticate(ctx, request, call)
    install = _install(acc, user, request)
    spec = await _spec(request)
    check_if_match(request, revision(ctx.world, acc.account_id), required=True)
    install.webhooks = spec.webhooks
    if spec.name is not None:
        install.name = spec.name
    if spec.retention_time is not None:
        install.retention_time = spec.retention_time
    ctx.world.store.app_install_changed(acc.account_id, install)
    bump_revision(ctx.world, acc.account_id)
    return json_response(install_body(install))


async def delete_install(ctx: Context, request: web.Request, call: _Call) -> web.StreamResponse:
    """``DELETE .../installations/{client_id}`` (``If-Match`` required); queued notifications of
    it are dropped."""
    acc, user = _authenticate(ctx, request, call)
    install = _install(acc, user, request)
    check_if_match(request, revision(ctx.world, acc.account_id), required=True)
    del acc.app_installs[install.client_id]
    ctx.world.store.app_install_removed(acc.account_id, install.client_id)
    bump_revision(ctx.world, acc.account_id)
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
