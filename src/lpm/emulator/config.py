"""Emulator settings and the description of the world it starts with.

``Settings`` are the knobs of the running server (timeouts in seconds).  ``WorldSpec`` describes
accounts, users, skills, connectors and app installs; :func:`default_world` is what ``lpm emulator``
serves without a config file, and :func:`load_toml` reads any other world from a TOML file::

    [settings]
    ring_expiry = 72
    idle_timeout = 60

    [[accounts]]
    id = "12345678"

    [[accounts.users]]
    user_id = "1001"
    login_name = "agent"
    password = "agent-password"
    skills = ["sales"]

    [[accounts.skills]]
    skill_id = "11"
    name = "sales"
    survey = true

    [[accounts.connectors]]
    connector_id = "2001"
    name = "web"
    kind = "unauthenticated"

    [[accounts.app_installs]]
    client_id = "my-app"
    client_secret = "my-secret"
    [accounts.app_installs.webhooks]
    "ms.MessagingEventNotification.ContentEvent" = { endpoint = "http://127.0.0.1:9000/hook" }
"""

from __future__ import annotations

import dataclasses
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from lpm.emulator.entities import AppInstall, Connector, Skill, User

if TYPE_CHECKING:
    from lpm.emulator.world import World

DEFAULT_ACCOUNT = "12345678"


@dataclass(slots=True)
class Settings:
    """Runtime knobs; every time is in seconds."""

    host: str = "127.0.0.1"
    port: int = 0
    tls: bool = False
    #: Ring lifetime before it becomes EXPIRED and the next agent is rung.
    ring_expiry: float = 72.0
    #: A socket with no inbound frame (pings included) for this long is closed (1000, "idle").
    idle_timeout: float = 60.0
    #: A consumer socket opened without an Authorization header must send InitConnection within this.
    init_connection_timeout: float = 10.0
    #: A connection must deliver each complete request head (request line and headers; for a
    #: WebSocket, its upgrade request) within this: counted from the accept for the first request
    #: (a TLS handshake included), from its first byte for the next ones of a kept-alive
    #: connection.  Otherwise it is answered 408 and closed (slow clients, slowloris), after a
    #: 0.5 s grace in which a head the server was too busy to look at yet is still dispatched.
    header_timeout: float = 10.0
    #: An HTTP connection kept alive with no request in progress is closed after this.
    keepalive_timeout: float = 75.0
    #: Connections served at once; beyond it new ones are answered 503 and closed at once.  0:
    #: derived from the open-file limit (the soft ``RLIMIT_NOFILE`` minus max(32, limit / 8)
    #: descriptors kept for the database, logs and webhooks; 1,024 → 896).
    max_connections: int = 0
    #: agentVep session lifetime (``sessionTTl``), extended by every refresh.
    session_ttl: float = 8 * 3600.0
    #: Lifetime of LP consumer JWTs (authenticated and unauthenticated).
    consumer_token_ttl: float = 24 * 3600.0
    #: Lifetime of the external token from ``anonymous/authorize``.
    anonymous_token_ttl: float = 600.0
    #: Lifetime of sentinel AppJWTs.
    app_jwt_ttl: float = 3600.0
    #: Lifetime of file-sharing temp URLs.
    file_url_ttl: float = 60.0
    max_file_size: int = 3 * 1024 * 1024
    #: First webhook retry delay; doubles up to ``webhook_retry_max``.
    webhook_retry_base: float = 2.0
    webhook_retry_max: float = 300.0
    webhook_timeout: float = 5.0
    #: Serve the fault-injection control API under ``/_emulator``.
    faults: bool = False
    #: Log every frame in and out (debug level, secrets redacted).
    log_frames: bool = False
    #: Cap of the first SubscribeExConversations snapshot.
    snapshot_limit: int = 1000
    #: Accept what the platform refuses (skill names for ids, PIDs for agent user ids, other
    #: ``?v=`` on the WebSocket paths, odd ``fileSize`` values, hosted files never uploaded);
    #: off: refused as LivePerson does (docs/emulator.md "Strictness").
    lenient: bool = False


@dataclass(slots=True)
class AccountSpec:
    account_id: str
    users: list[User] = field(default_factory=list)
    skills: list[Skill] = field(default_factory=list)
    connectors: list[Connector] = field(default_factory=list)
    app_installs: list[AppInstall] = field(default_factory=list)


@dataclass(slots=True)
class WorldSpec:
    """A whole world: its accounts (each with its users, skills and connectors) and the runtime
    :class:`Settings` (``lpm emulator --config FILE`` reads one from TOML)."""

    accounts: list[AccountSpec]
    settings: Settings = field(default_factory=Settings)


def _default_user(user_id: str, login_name: str, nickname: str, full_name: str, **extra: Any) -> User:
    """A user of the default world, whose credentials are all spelled after its login name
    (``agent``: password ``agent-password``, app key ``agent-app-key``...)."""
    return User(
        user_id=user_id,
        pid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"lpm-emulator/{login_name}")),
        login_name=login_name,
        password=f"{login_name}-password",
        app_key=f"{login_name}-app-key",
        secret=f"{login_name}-app-secret",
        access_token=f"{login_name}-access-token",
        access_token_secret=f"{login_name}-access-token-secret",
        nickname=nickname,
        full_name=full_name,
        **extra,
    )


def default_world() -> WorldSpec:
    """Account 12345678, where each user has one job:

    * ``agent`` (1001), a human agent and manager, on ``support`` (12);
    * ``bot`` (2001), a bot, on ``sales`` (11): consumers start there, and no human competes with
      it for those rings;
    * ``survey-bot`` (2002), the bot of support's post-conversation survey: the platform adds it
      to the POST_SURVEY dialog when a support conversation's MAIN dialog closes.  It belongs to
      support and takes no rings unless something sets it ONLINE with a routing subscription;

    skills ``sales`` (11) and ``support`` (12, with the survey), an unauthenticated and an
    authenticated connector (its RS256 key pair is generated when the emulator starts) and one
    app install for the Send API."""
    agent = _default_user("1001", "agent", "Alice", "Alice Agent", skills=["12"], is_manager=True)
    bot = _default_user("2001", "bot", "Botty", "Botty Bot", skills=["11"], is_bot=True)
    survey_bot = _default_user("2002", "survey-bot", "Sunny", "Sunny Survey", skills=["12"], is_bot=True)
    return WorldSpec(
        accounts=[
            AccountSpec(
                account_id=DEFAULT_ACCOUNT,
                users=[agent, bot, survey_bot],
                skills=[
                    Skill(skill_id="11", name="sales"),
                    Skill(skill_id="12", name="support", survey=True, survey_bot_user_id=survey_bot.user_id),
                ],
                connectors=[
                    Connector(connector_id="3001", name="web-unauthenticated", kind="unauthenticated"),
                    Connector(
                        connector_id="3002",
                        name="web-authenticated",
                        kind="authenticated",
                        jwt_alg="RS256",
                        issuer="https://brand.example.com",
                    ),
                ],
                app_installs=[
                    AppInstall(
                        client_id="lpm-emulator-app", client_secret="lpm-emulator-app-secret", name="app"
                    )
                ],
            )
        ]
    )


def populate(world: World, spec: WorldSpec) -> None:
    """Create the spec's accounts, users, skills, connectors and app installs in ``world``."""
    for account in spec.accounts:
        acc = world.add_account(account.account_id)
        for user in account.users:
            acc.add_user(user)
        for skill in account.skills:
            acc.skills[skill.skill_id] = skill
        for connector in account.connectors:
            acc.connectors[connector.connector_id] = connector
        for install in account.app_installs:
            acc.app_installs[install.client_id] = install


class ConfigError(ValueError):
    """The world file is not valid."""


def _convert(kind: type[Any], raw: Any, where: str) -> Any:
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_toml(path: str | Path) -> WorldSpec:
    """Read a world description (see the module docstring for the format)."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    known = {f.name for f in dataclasses.fields(Settings)}
    raw_settings = raw.get("settings") or {}
    for key in raw_settings:
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
    settings = _convert(Settings, raw_settings, "settings")
    accounts = []
    for i, acc in enumerate(raw.get("accounts") or []):
        if "id" not in acc:
            raise ConfigError(f"accounts[{i}] needs an id")
        account_id = str(acc["id"])
        users = []
        for j, u in enumerate(acc.get("users") or []):
            u = dict(u)
            u.setdefault("pid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"lpm/{account_id}/{u.get('user_id')}")))
            users.append(_convert(User, u, f"accounts[{i}].users[{j}]"))
        accounts.append(
            AccountSpec(
                account_id=account_id,
                users=users,
                skills=[
                    _convert(Skill, s, f"accounts[{i}].skills[{j}]")
                    for j, s in enumerate(acc.get("skills") or [])
                ],
                connectors=[
                    _convert(Connector, c, f"accounts[{i}].connectors[{j}]")
                    for j, c in enumerate(acc.get("connectors") or [])
                ],
                app_installs=[
                    _convert(AppInstall, a, f"accounts[{i}].app_installs[{j}]")
                    for j, a in enumerate(acc.get("app_installs") or [])
                ],
            )
        )
    if not accounts:
        raise ConfigError(f"{path} describes no account")
    return WorldSpec(accounts=accounts, settings=settings)
