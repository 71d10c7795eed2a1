"""``lpm run module:bot``: run an :class:`lpm.bot.Bot` until SIGTERM / SIGINT.

``TARGET`` is ``module:attribute`` (``my_bots.faq:bot``) or ``path/to/file.py:attribute``; the
attribute is a ``Bot`` or a function returning one.  The current directory is importable, as with
``python -m``.  Options override the bot's own settings, which override the environment
(``LPM_ACCOUNT_ID``, ``LPM_USERNAME``, ``LPM_PASSWORD``, ``LPM_CSDS_DOMAIN``, ``LPM_BOT_*``: see
docs/bots.md).  Logs go to stderr, as text or JSON (``--log-format json``: one object a line).

Exit codes (:mod:`lpm.cli.common`): 0 after a signal stopped the bot, 2 for a target that cannot
be loaded, 3 for bad settings, 4 for a refused login, 5 when the platform cannot be reached.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lpm.cli import common

if TYPE_CHECKING:
    from lpm.bot import Bot


def load_bot(target: str) -> Bot:
    """The bot ``module:attribute`` or ``file.py:attribute`` names (a Bot, or a factory of one)."""
    from lpm.bot import Bot

    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(f"{target!r} is not module:attribute (e.g. my_bot:bot)", param_hint="TARGET")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = Path(module_name).resolve()
            if not path.is_file():
                raise click.BadParameter(f"no file {module_name}", param_hint="TARGET")
            sys.path.insert(0, str(path.parent))
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise click.BadParameter(f"cannot load {module_name}", param_hint="TARGET")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name}: {exc}", param_hint="TARGET") from None
    try:
        found: Any = getattr(module, attribute)
    except AttributeError:
        raise click.BadParameter(
            f"{module_name} has no attribute {attribute!r}", param_hint="TARGET"
        ) from None
    if not isinstance(found, Bot) and callable(found):
        found = found()
    if not isinstance(found, Bot):
        raise click.BadParameter(
            f"{target} is not an lpm.bot.Bot (got {type(found).__name__})", param_hint="TARGET"
        )
    return found


@click.command("run")
@click.argument("target")
@click.option("--account-id", help="Account (site) id.  [env: LPM_ACCOUNT_ID]")
@click.option("--username", help="The bot user's login name.  [env: LPM_USERNAME]")
@click.option(
    "--csds-domain", help="CSDS host; http://127.0.0.1:8443 for `lpm emulator`.  [env: LPM_CSDS_DOMAIN]"
)
@click.option(
    "--ca-file", type=click.Path(exists=True, dir_okay=False), help="CA file to trust.  [env: LPM_CA_FILE]"
)
@click.option(
    "--store", help="State store: memory://, file:///dir or redis://host:port/db.  [env: LPM_BOT_STORE]"
)
@click.option("--redis", "redis_url", help="Redis URL the replicas share.  [env: LPM_BOT_REDIS]")
@click.option("--replica-id", help="This replica's name.  [env: LPM_BOT_REPLICA_ID]")
@click.option(
    "--max-conversations", type=click.IntRange(1), help="Capacity.  [env: LPM_BOT_MAX_CONVERSATIONS]"
)
@click.option("--http-host", help="Health/metrics address [127.0.0.1].  [env: LPM_BOT_HTTP_HOST]")
@click.option(
    "--http-port", type=click.IntRange(0, 65535), help="Health/metrics port.  [env: LPM_BOT_HTTP_PORT]"
)
@click.option("--grace", "grace_period", type=float, help="Seconds for handlers in flight at stop [30].")
@click.option("--lease", type=float, help="Replicas: seconds before a silent replica's work moves [10].")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="Log format [text].  [env: LPM_BOT_LOG_FORMAT]"
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Log level.",
)
def run(target: str, log_level: str, **options: Any) -> None:
    """Run the bot TARGET (module:attribute or file.py:attribute) until SIGTERM or Ctrl-C."""
    from lpm.bot.logs import configure_logging

    bot = load_bot(target)
    bot.configure(**{k: v for k, v in options.items() if v is not None})
    fmt = bot.settings.log_format or os.environ.get("LPM_BOT_LOG_FORMAT") or "text"
    configure_logging("json" if fmt.lower() == "json" else "text", getattr(logging, log_level.upper()))
    common.run(bot.serve())
