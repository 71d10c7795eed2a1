"""``lpm emulator``: run the local Conversational Cloud in the foreground.

The world comes from ``--config`` (a TOML file, see :mod:`lpm.emulator.config`) or is the default
world; flags override the file's ``[settings]``.  Once listening, the command prints where to
connect and the default credentials: a rich summary for people, or with ``--json`` exactly one
JSON line (``Emulator.describe()``) as the first line of stdout, for scripts and test harnesses.
It then serves until SIGINT/SIGTERM and exits 0.  With ``--ui`` it also serves the web UI
(:mod:`lpm.emulator.ui`) and prints its URL (``ui_url`` in the JSON line).

The command owns its process, so it raises the soft open-file limit (``RLIMIT_NOFILE``) to the
hard limit before it starts (an embedded :class:`~lpm.emulator.Emulator` leaves its host's limit
alone; see :func:`lpm.emulator.listener.raise_open_file_limit`), and it installs an event-loop
exception handler that never raises: when descriptors run out, a logging handler that needs one
(to import, or to open a file) must not take the event loop down with it.

Exit codes (the table in :mod:`lpm.cli.common`): 0 after a clean stop, 1 when the address cannot
be bound (port in use), 2 for a bad option, 3 (as for a ``ConfigurationError``) for an invalid
configuration (a missing or bad ``--config`` file, bad settings, an unusable ``--db``).

The printed passwords and app keys are the emulator's fixed demo credentials, shown so people
can log in; login bearers and JWTs are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from lpm.cli import common
from lpm.errors import ConfigurationError

if TYPE_CHECKING:
    from lpm.emulator.app import Emulator
    from lpm.emulator.config import Settings, WorldSpec

log = logging.getLogger("lpm.cli.emulator")

DEFAULT_PORT = 8443
#: Exit codes (see lpm.cli.common).
EXIT_BIND = common.EXIT_FAILED
EXIT_CONFIG = common.exit_code_for(ConfigurationError("invalid configuration"))

_seconds = click.FloatRange(min=0, min_open=True)


class _StartError(Exception):
    """The emulator could not start; ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"lpm emulator: error: {message}", err=True)
    raise SystemExit(code)


def _check_settings(settings: Settings) -> None:
    """Refuse settings of the wrong type (a TOML file can hold anything) before they break the
    server in an obscure place."""
    from lpm.emulator.config import ConfigError, Settings

    defaults = Settings()
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        expected = type(getattr(defaults, f.name))
        if expected is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise ConfigError(f"setting {f.name} must be of type {expected.__name__}, not {value!r}")
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"setting port must be between 0 and 65535, not {settings.port}")
    for name in ("header_timeout", "keepalive_timeout"):
        value = getattr(settings, name)
        if not 0 < value < float("inf"):
            raise ConfigError(f"setting {name} must be a positive number of seconds, not {value!r}")
    if settings.max_connections < 0:
        raise ConfigError(
            "setting max_connections must be 0 (from the open-file limit) or more, "
            f"not {settings.max_connections}"
        )


def _apply_overrides(settings: Settings, overrides: dict[str, Any]) -> None:
    """Flags given on the command line win over the file; ``None`` means "not given"."""
    port = overrides.pop("port")
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    # The Settings default (0, a free port) suits tests; people expect a stable port.
    settings.port = port if port is not None else (settings.port or DEFAULT_PORT)


@click.command("emulator")
@click.option("--host", default=None, help="Address to listen on.  [default: 127.0.0.1]")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"Port to listen on; 0 picks a free one.  [default: {DEFAULT_PORT}]",
)
@click.option(
    "--tls/--no-tls",
    default=None,
    help="Serve HTTPS/WSS with a generated CA written to a PEM file.  [default: plain HTTP/WS]",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the world in this SQLite file (created if missing).  [default: in memory]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="World description (TOML: settings, accounts, users, skills, connectors, app installs).",
)
@click.option("--faults", is_flag=True, default=False, help="Serve the fault-injection API under /_emulator.")
@click.option(
    "--ui",
    is_flag=True,
    default=False,
    help="Serve the web UI at /_emulator/ui/ (chat, overview, inspector, agent seat, faults); "
    "turns on the fault API, whose buttons it has.",
)
@click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print one JSON line describing the emulator."
)
@click.option("--ring-expiry", type=_seconds, default=None, metavar="S", help="Ring lifetime in seconds.")
@click.option(
    "--idle-timeout", type=_seconds, default=None, metavar="S", help="Close sockets idle this long."
)
@click.option(
    "--header-timeout",
    type=_seconds,
    default=None,
    metavar="S",
    help="Answer 408 and close a connection whose request head (or WebSocket upgrade request) is "
    "not complete within S seconds.  [default: 10]",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Serve at most N connections at once; refuse more (503, closed at once).  0: the open-file "
    "limit minus a reserve.  [default: 0]",
)
@click.option("--session-ttl", type=_seconds, default=None, metavar="S", help="Agent login session lifetime.")
@click.option(
    "--log-frames", is_flag=True, default=False, help="Log every WebSocket frame (secrets redacted)."
)
def emulator(
    host: str | None,
    port: int | None,
    tls: bool | None,
    db: Path | None,
    config_file: Path | None,
    faults: bool,
    ui: bool,
    as_json: bool,
    ring_expiry: float | None,
    idle_timeout: float | None,
    header_timeout: float | None,
    max_connections: int | None,
    session_ttl: float | None,
    log_frames: bool,
) -> None:
    """Run a local LivePerson Conversational Cloud until Ctrl-C."""
    from lpm.emulator.config import ConfigError, default_world, load_toml

    try:
        spec = load_toml(config_file) if config_file is not None else default_world()
        _apply_overrides(
            spec.settings,
            {
                "host": host,
                "port": port,
                "tls": tls,
                "ring_expiry": ring_expiry,
                "idle_timeout": idle_timeout,
                "header_timeout": header_timeout,
                "max_connections": max_connections,
                "session_ttl": session_ttl,
                # Flags only switch on: an absent flag leaves the file's choice alone.
                "faults": True if faults else None,
                "log_frames": True if log_frames else None,
            },
        )
        _check_settings(spec.settings)
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    if spec.settings.log_frames:
        # Frames are logged at debug level; show them without turning on every debug log.
        logging.getLogger("lpm.emulator.ws_session").setLevel(logging.DEBUG)
    _raise_open_file_limit()
    try:
        asyncio.run(_serve(spec, db, as_json, ui))
    except _StartError as exc:
        _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        # Ctrl-C before the signal handlers were installed (during imports): still a clean stop.
        pass


def _raise_open_file_limit() -> None:
    """Soft open-file limit up to the hard one: this process is the emulator's own."""
    from lpm.emulator.listener import raise_open_file_limit

    raised = raise_open_file_limit()
    if raised is not None and raised[0] != raised[1]:
        log.info("open-file limit raised from %d to %d", *raised)


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's default handler (it logs), made unable to raise.

    asyncio calls it for errors of callbacks and tasks; should logging fail there (a handler that
    imports or opens a file while the process is out of descriptors), the exception would escape
    ``run_forever`` and end the emulator.  It is reported on stderr's descriptor, which is open.
    """
    try:
        loop.default_exception_handler(context)
    except Exception as exc:
        with contextlib.suppress(Exception):
            what = f"{context.get('message', 'error')}: {context.get('exception')!r}"
            line = f"lpm emulator: {what} (logging failed: {exc!r})\n"
            os.write(2, line.encode(errors="replace"))


async def _serve(spec: WorldSpec, db: Path | None, as_json: bool, ui: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler)
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows' event loop: Ctrl-C then arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    emu = await _start(spec, db, ui)
    try:
        if as_json:
            # The first stdout line is the description and nothing else: harnesses read one line.
            sys.stdout.write(json.dumps(emu.describe()) + "\n")
            sys.stdout.flush()
        else:
            _print_summary(emu, db)
        await stop.wait()
        log.info("stopping")
    finally:
        await emu.stop()


async def _start(spec: WorldSpec, db: Path | None, ui: bool = False) -> Emulator:
    from lpm.emulator.app import Emulator
    from lpm.emulator.config import ConfigError
    from lpm.emulator.persistence import StoreError

    settings = spec.settings
    emu = Emulator(spec, settings=settings, db=db, ui=ui)
    try:
        await emu.start()
    except BaseException as exc:
        # Undo what start() got done (listening runner, store, state directory).
        with contextlib.suppress(Exception):
            await emu.stop()
        if isinstance(exc, ConfigError):
            raise _StartError(str(exc), EXIT_CONFIG) from None
        if isinstance(exc, StoreError | sqlite3.Error):
            raise _StartError(f"--db {db}: {exc}", EXIT_CONFIG) from None
        if isinstance(exc, OSError):
            where = f"{settings.host}:{settings.port}"
            if exc.errno == errno.EADDRINUSE:
                message = f"{where} is already in use; choose another --port (0 picks a free one)"
            else:
                message = f"cannot listen on {where}: {exc.strerror or exc}"
            raise _StartError(message, EXIT_BIND) from None
        raise
    return emu


def _roles(emu: Emulator) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """What the start-up table says of the described account: user id -> its skills (``12
    support``; ``every skill`` when it has none, as routing reads it), user id -> its role
    (``agent``, ``bot``, ``manager``, and which skills' surveys it runs), skill id -> the login
    of its survey bot."""
    account = emu.spec.accounts[0]
    names = {s.skill_id: s.name for s in account.skills}
    logins = {u.user_id: u.login_name for u in account.users}
    skill_of: dict[str, str] = {}
    role_of: dict[str, str] = {}
    for user in account.users:
        skill_of[user.user_id] = (
            ", ".join(f"{sid} {names.get(sid, '?')}" for sid in user.skills) if user.skills else "every skill"
        )
        roles = ["bot" if user.is_bot else "agent"] + (["manager"] if user.is_manager else [])
        surveys = [
            f"{s.skill_id} {s.name}"
            for s in account.skills
            if s.survey and s.survey_bot_user_id == user.user_id
        ]
        if surveys:
            roles.append("survey bot of " + ", ".join(surveys))
        role_of[user.user_id] = ", ".join(roles)
    survey_bot_of = {
        s.skill_id: logins.get(s.survey_bot_user_id, s.survey_bot_user_id)
        for s in account.skills
        if s.survey and s.survey_bot_user_id
    }
    return skill_of, role_of, survey_bot_of


def _print_summary(emu: Emulator, db: Path | None) -> None:
    """The human view of ``emu.describe()``."""
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

    info = emu.describe()
    # Values are shown as Text: a password like "[b]" must not be read as rich markup.
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    head.add_row("csds_domain", Text(info["csds_domain"], style="bold cyan"))
    head.add_row("account", Text(info["account_id"]))
    if info["ca_file"]:
        head.add_row("CA file", Text(info["ca_file"]))
        head.add_row("node", Text(f"NODE_EXTRA_CA_CERTS={info['ca_file']}"))
    head.add_row("storage", Text(str(db) if db else "in memory"))
    head.add_row(
        "fault API",
        Text(f"{emu.base_url}/_emulator" if emu.settings.faults else "off (--faults to enable)"),
    )
    head.add_row(
        "web UI", Text(emu.ui_url, style="bold cyan") if emu.ui_url else Text("off (--ui to enable)")
    )

    skill_of, role_of, survey_bot_of = _roles(emu)
    users = Table(title="users", title_justify="left", expand=False)
    for column in ("username", "password", "app keys", "user id", "skills", "role"):
        users.add_column(column, overflow="fold")
    for u in info["users"]:
        keys = "\n".join(
            f"{label}: {u[key]}"
            for label, key in (
                ("appKey", "app_key"),
                ("secret", "secret"),
                ("accessToken", "access_token"),
                ("accessTokenSecret", "access_token_secret"),
            )
            if u.get(key)
        )
        users.add_row(
            Text(u["username"]),
            Text(u["password"] or "-"),
            Text(keys or "-"),
            Text(u["user_id"]),
            Text(skill_of.get(u["user_id"], "-")),
            Text(role_of.get(u["user_id"], "bot" if u["is_bot"] else "agent")),
        )

    skills = Table(title="skills", title_justify="left")
    for column in ("id", "name", "post-conversation survey"):
        skills.add_column(column, overflow="fold")
    for s in info["skills"]:
        survey = f"yes, by {survey_bot_of.get(s['id']) or 'no bot'}" if s["survey"] else ""
        skills.add_row(Text(s["id"]), Text(s["name"]), Text(survey))

    connectors = Table(title="connectors", title_justify="left")
    for column in ("id", "name", "kind", "signing key file"):
        # Folded, never cut: people copy these paths.
        connectors.add_column(column, overflow="fold")
    for c in info["connectors"]:
        connectors.add_row(
            Text(c["id"]), Text(c["name"]), Text(c["kind"]), Text(c["signing_key_file"] or "-")
        )

    parts: list[Any] = [head, users, skills, connectors]
    if info["app_installs"]:
        installs = Table(title="app installs (Send API, webhooks)", title_justify="left")
        installs.add_column("client id", overflow="fold")
        installs.add_column("client secret", overflow="fold")
        for a in info["app_installs"]:
            installs.add_row(Text(a["client_id"]), Text(a["client_secret"] or "-"))
        parts.append(installs)
    parts.append(Text("Press Ctrl-C to stop.", style="dim"))
    # No frame around it all: paths and keys are meant to be copied from the terminal.
    Console().print(Group(Text("lpm emulator", style="bold"), *parts))
