"""``lpm chat``: chat in the terminal as a consumer, against the emulator or LivePerson.

Targets:

* **embedded** (the default when neither ``--csds-domain`` nor ``--account`` is given, or with
  ``--embedded``): an emulator starts in this process (default world, plain HTTP, a free port)
  and the command prints how an agent joins it (``lpm agent --csds-domain ...``);
* **remote** (``--csds-domain D`` and/or ``--account A``): a running emulator or LivePerson
  (the CSDS domain defaults to LivePerson's ``adminlogin.liveperson.net``).  ``--ca-file`` trusts
  a CA file (the emulator's ``--tls`` CA), ``--insecure`` skips certificate checks.

The consumer identity is chosen with ``--auth``: ``anonymous`` (IdP signup, the default),
``unauthenticated`` (an unauthenticated connector), ``jwt`` (an authenticated connector with a
brand-signed id_token: claims signed with ``--signing-key``, or a ready token in the environment
variable ``LPM_ID_TOKEN``) or ``mock`` (mock authentication, test accounts).  On the embedded
emulator the connectors and the signing key of the default world are filled in.

Once connected the command resumes the consumer's open conversation or opens one (``--skill``),
then reads lines from stdin: plain text is sent, a number picks one of the last quick replies,
and ``/close``, ``/csat N``, ``/file PATH [CAPTION]``, ``/help``, ``/quit`` are commands
(``//text`` sends ``/text``).  Agent messages (text, quick replies, structured content, files),
typing indicators, participants joining and leaving, the conversation closing and the
connection dropping and coming back are printed as readable lines; agent messages get a READ
receipt.  With ``--json`` every event is one JSON object per line on stdout instead.

Exit codes (:mod:`lpm.cli.common`): 0 after ``/quit`` or the end of stdin; the SDK error's code
when the connection cannot be opened, the conversation cannot be started, or the connection is
closed for good (a refused identity: 4); 2 for bad options; 130 after Ctrl-C.  A command that
fails in the chat (a bad ``/csat`` value, a missing file, a refused request) is reported and the
chat goes on.  Tokens and JWTs are never printed.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import click

from lpm.cli import common
from lpm.cli.chat_session import ChatSession, Fatal, Output
from lpm.cli.console import LineReader

#: The default world's connectors (see ``docs/emulator.md``).
EMBEDDED_UNAUTH_CONNECTOR = "3001"
EMBEDDED_AUTH_CONNECTOR = "3002"
AUTH_KINDS = ("anonymous", "unauthenticated", "jwt", "mock")
#: Lifetime of the id_token claims the command signs (the SDK re-signs them when they expire).
CLAIMS_TTL = 3600
ID_TOKEN_ENV = "LPM_ID_TOKEN"
#: ClientProperties features the chat declares (lpm.Features values).
CLIENT_FEATURES = ("PHOTO_SHARING", "QUICK_REPLIES", "RICH_CONTENT", "MULTI_DIALOG", "AUTO_MESSAGES")


@dataclass(frozen=True, slots=True)
class ConsumerIdentity:
    """Who the chat connects as: ``--auth`` and the options that go with it."""

    auth: str = "anonymous"
    connector_id: str | None = None
    customer_id: str | None = None
    issuer: str | None = None
    signing_key: str | None = None


def connection_options(identity: ConsumerIdentity, embedded: Any = None) -> dict[str, Any]:
    """The SDK options of the chosen consumer identity (``embedded``: the emulator, whose world
    supplies connectors and keys that were not given)."""
    from lpm.errors import ConfigurationError

    auth, connector_id, customer_id = identity.auth, identity.connector_id, identity.customer_id
    issuer, signing_key = identity.issuer, identity.signing_key

    if auth == "anonymous":
        if connector_id is not None:
            raise ConfigurationError("--connector-id needs --auth unauthenticated or --auth jwt")
        return {}
    if auth == "mock":
        return {"auth_data": {"use_mock_auth": True, "customer_name": customer_id or "lpm-chat"}}
    if auth == "unauthenticated":
        connector = connector_id or (EMBEDDED_UNAUTH_CONNECTOR if embedded is not None else None)
        if connector is None:
            raise ConfigurationError("--auth unauthenticated needs --connector-id")
        return {"unauth_connector_id": connector}
    # jwt: an authenticated connector and a brand-signed id_token.
    connector = connector_id or (EMBEDDED_AUTH_CONNECTOR if embedded is not None else None)
    if connector is None:
        raise ConfigurationError("--auth jwt needs --connector-id")
    key = signing_key
    if embedded is not None and key is None and not os.environ.get(ID_TOKEN_ENV):
        spec = embedded.world.accounts[embedded.account_id].connectors.get(connector)
        key = str(spec.private_key_file) if spec is not None and spec.private_key_file else None
        issuer = issuer or (spec.issuer if spec is not None else None)
    if key is not None:
        if not issuer:
            raise ConfigurationError("--auth jwt with --signing-key needs --issuer (the connector's issuer)")
        now = int(time.time())
        claims = {"sub": customer_id or "lpm-chat", "iss": issuer, "iat": now, "exp": now + CLAIMS_TTL}
        return {"auth_connector_id": connector, "jwt_claims_set": claims, "jwt_signing_key": key}
    token = os.environ.get(ID_TOKEN_ENV)
    if not token:
        raise ConfigurationError(f"--auth jwt needs --signing-key (with --issuer) or ${ID_TOKEN_ENV}")
    return {"auth_connector_id": connector, "id_token": token}


async def chat_main(
    *,
    account: str | None,
    csds_domain: str | None,
    embedded: bool,
    ssl: Any,
    embedded_port: int = 0,
    skill: str | None,
    identity: ConsumerIdentity,
    connect_timeout: float,
    as_json: bool,
    stdin: int | None = None,
) -> int:
    """The whole ``lpm chat`` run; returns the exit code (SDK errors propagate)."""
    import lpm
    from lpm.errors import ConfigurationError

    out = Output(as_json)
    async with contextlib.AsyncExitStack() as stack:
        emulator = None
        if embedded:
            from lpm.emulator.app import Emulator

            emulator = await stack.enter_async_context(Emulator(port=embedded_port))
            if account is not None and account != emulator.account_id:
                raise ConfigurationError(f"the embedded emulator serves account {emulator.account_id} only")
            account = emulator.account_id
            csds_domain = emulator.csds_domain
            # The emulator's fixed demo credentials, not secrets (``lpm emulator`` prints them too).
            hint = (
                f"LPM_PASSWORD=agent-password lpm agent --account {account} --csds-domain {csds_domain} "
                "--username agent"
            )
            out.status(
                "emulator",
                f"embedded emulator at {csds_domain} (account {account}); an agent joins with: {hint}",
                csds_domain=csds_domain,
                account_id=account,
                agent_command=hint,
            )
        assert account is not None
        options = connection_options(identity, embedded=emulator)
        if csds_domain is not None:
            options["csds_domain"] = csds_domain
        if ssl is not None:
            options["ssl"] = ssl
        conn = lpm.create_connection(
            account_id=account,
            user_type=lpm.UserType.CONSUMER,
            wait_for_first_notification=True,
            # What this client renders; MULTI_DIALOG lets it take part in post-conversation surveys.
            client_properties={"features": list(CLIENT_FEATURES)},
            **options,
        )
        assert isinstance(conn, lpm.ConsumerWebsocketConnection)
        session = ChatSession(conn, out, skill)
        reader = LineReader(stdin)
        try:
            await common.open_connection(conn, connect_timeout)
            await session.start_conversation()
            await session.run(reader)
        except Fatal as fatal:
            raise fatal.error from None
        finally:
            reader.close()
            session.quit()
            await session.drain()
            await conn.close()
    return common.EXIT_OK


@click.command("chat")
@click.option(
    "--account",
    envvar="LPM_ACCOUNT",
    show_envvar=True,
    metavar="ID",
    help="Account (site) id; 12345678 when embedded.",
)
@common.csds_domain_option
@click.option(
    "--embedded/--no-embedded",
    default=None,
    help="Start an emulator in this process (the default without --csds-domain and --account).",
)
@common.embedded_port_option
@common.ca_file_option
@common.insecure_option
@click.option("--skill", metavar="ID", help="Skill of a new conversation (default: any).")
@click.option(
    "--auth",
    type=click.Choice(AUTH_KINDS),
    default="anonymous",
    show_default=True,
    help="Consumer identity.",
)
@click.option("--connector-id", metavar="ID", help="Connector for --auth unauthenticated / jwt.")
@click.option("--customer-id", metavar="ID", help="--auth jwt: the id_token's sub; --auth mock: the name.")
@click.option("--issuer", metavar="ISS", help="--auth jwt: the connector's issuer.")
@click.option(
    "--signing-key",
    type=click.Path(exists=True, dir_okay=False),
    help=f"--auth jwt: key that signs the id_token (or a ready token in ${ID_TOKEN_ENV}).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the first connection.",
)
@common.json_option
def chat(
    account: str | None,
    csds_domain: str | None,
    embedded: bool | None,
    embedded_port: int,
    ca_file: str | None,
    insecure: bool,
    skill: str | None,
    auth: str,
    connector_id: str | None,
    customer_id: str | None,
    issuer: str | None,
    signing_key: str | None,
    connect_timeout: float,
    as_json: bool,
) -> None:
    """Chat as a consumer in the terminal (embedded emulator, a running one, or LivePerson).

    Type to send; /help lists the commands (/file, /close, /csat N, /quit).
    """
    if embedded is None:
        embedded = csds_domain is None and account is None
    if embedded and csds_domain is not None:
        raise click.UsageError("--embedded starts its own emulator: drop --csds-domain")
    ssl = common.ssl_setting(ca_file, insecure)
    if not embedded and account is None:
        raise click.UsageError("--account is required with --csds-domain")
    code = common.run(
        chat_main(
            account=account,
            csds_domain=csds_domain,
            embedded=embedded,
            embedded_port=embedded_port,
            ssl=ssl,
            skill=skill,
            identity=ConsumerIdentity(auth, connector_id, customer_id, issuer, signing_key),
            connect_timeout=connect_timeout,
            as_json=as_json,
        )
    )
    raise SystemExit(code)
