"""Structured logs: one line per record, plain text or JSON.

The bot logs under ``lpm.bot`` (``lpm.bot.replicas`` for coordination); records about a
conversation carry ``conversation_id``, handler records ``handler`` and ``kind``, and every record
of a bot ``bot`` and ``replica``.  :func:`configure_logging` (called by ``bot.run()`` and
``lpm run``) installs one stderr handler with :class:`JsonFormatter` (``json``: one JSON object a
line, for a log shipper) or a text format that appends those fields as ``key=value``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["FIELDS", "BotLogger", "JsonFormatter", "TextFormatter", "configure_logging"]

#: The structured fields a record may carry (``extra=``), in output order.
FIELDS = ("bot", "replica", "conversation_id", "kind", "handler", "ring_id", "seconds", "event")


class BotLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that adds fixed fields (bot, replica, conversation id) to each record."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra: dict[str, Any] = dict(self.extra or {})
        given = kwargs.get("extra")
        if isinstance(given, Mapping):
            extra.update(given)
        kwargs["extra"] = extra
        return msg, kwargs

    def bind(self, **fields: Any) -> BotLogger:
        """A logger with more fields."""
        return BotLogger(self.logger, {**(self.extra or {}), **fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", <fields>..., "error"}``, one object a line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``<time> <level> <logger>: <message> key=value...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items() if k not in ("bot",))
        if not extra:
            return text
        first, sep, rest = text.partition("\n")
        return f"{first} [{extra}]{sep}{rest}"


def configure_logging(fmt: str = "text", level: int | str = logging.INFO) -> None:
    """Log to stderr in ``fmt`` (``text`` or ``json``), replacing the root logger's handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The SDK's own debug chatter is not the bot's business unless asked for.
    if isinstance(level, int) and level > logging.DEBUG:
        logging.getLogger("lpm.client").setLevel(logging.WARNING)
