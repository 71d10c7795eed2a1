"""Conversation stores: where a bot keeps per-conversation text outside its handlers — a stateless
bot's ``Conversation.serialize()`` output between webhooks, an :mod:`lpm.bot` bot's conversation
state between handlers and across restarts — so any of several bot processes can serve the next
event.

* :class:`MemoryConversationStore` — a dict in the process (tests, a single bot that may forget
  its conversations when it restarts);
* :class:`FileConversationStore` — one JSON file per conversation in a directory (every process
  on one machine, or on a shared volume, sees the same state);
* :class:`RedisConversationStore` — one Redis string per conversation (``redis.asyncio`` from
  the ``redis`` package, installed with the ``lp-messaging-sdk[redis]`` extra);
* :func:`store_from_url` — ``memory://``, ``file:///path/to/dir`` or ``redis://host:port/db``.

A store holds opaque text: what a bot puts is what it gets back.  Stores do no locking between
processes — a bot serves one conversation's notifications one at a time (webhooks of a
conversation are sequential), and a write replaces the whole value atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from lpm.errors import ConfigurationError

__all__ = [
    "ConversationStore",
    "FileConversationStore",
    "MemoryConversationStore",
    "RedisConversationStore",
    "store_from_url",
]

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _check_id(conversation_id: str) -> str:
    if not isinstance(conversation_id, str) or not conversation_id:
        raise ConfigurationError("conversation_id must be a non-empty string")
    return conversation_id


@runtime_checkable
class ConversationStore(Protocol):
    """Where serialized conversations live between webhooks."""

    async def get(self, conversation_id: str) -> str | None:
        """The text last put for ``conversation_id``, or None."""
        ...

    async def put(self, conversation_id: str, serialized: str) -> None:
        """Store ``serialized`` for ``conversation_id`` (replacing any previous value)."""
        ...

    async def delete(self, conversation_id: str) -> None:
        """Forget ``conversation_id`` (nothing happens if it is unknown)."""
        ...

    async def close(self) -> None:
        """Release the store's resources (connections); idempotent."""
        ...


class MemoryConversationStore:
    """A dict in this process: nothing survives the process, nothing is shared with another.

    Values are kept as given (text is immutable), so a reader never sees a partial write.
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<MemoryConversationStore {len(self._values)} conversation(s)>"

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, conversation_id: str) -> str | None:
        """The text last put, or None."""
        return self._values.get(_check_id(conversation_id))

    async def put(self, conversation_id: str, serialized: str) -> None:
        """Replace the conversation's text."""
        if not isinstance(serialized, str):
            raise ConfigurationError("serialized must be a string")
        self._values[_check_id(conversation_id)] = serialized

    async def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        self._values.pop(_check_id(conversation_id), None)

    async def close(self) -> None:
        """Nothing to release (the values stay: closing is not forgetting)."""


class FileConversationStore:
    """One file per conversation in ``directory`` (created if missing).

    A write goes to a temporary file in the same directory, is flushed to disk and then renamed
    over the target with :func:`os.replace`, so a reader — in this process or another — sees the
    old value or the new one, never a partial file.  File names are the conversation id when it
    is a plain name, else a SHA-256 of it (ids never become paths).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<FileConversationStore {self.directory}>"

    def _path(self, conversation_id: str) -> Path:
        cid = _check_id(conversation_id)
        name = cid if _SAFE_NAME.fullmatch(cid) and not cid.startswith(".") else None
        if name is None:
            name = "sha256-" + hashlib.sha256(cid.encode("utf-8")).hexdigest()
        return self.directory / f"{name}.json"

    async def get(self, conversation_id: str) -> str | None:
        """The stored text, or None when there is no file."""
        try:
            return self._path(conversation_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    async def put(self, conversation_id: str, serialized: str) -> None:
        """Atomically replace the conversation's file with ``serialized``."""
        if not isinstance(serialized, str):
            raise ConfigurationError("serialized must be a string")
        target = self._path(conversation_id)
        fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(serialized)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    async def delete(self, conversation_id: str) -> None:
        """Remove the conversation's file, if any."""
        with contextlib.suppress(FileNotFoundError):
            self._path(conversation_id).unlink()

    async def close(self) -> None:
        """Nothing to release."""


class RedisConversationStore:
    """One Redis string per conversation, at ``prefix + conversation_id``.

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``, ``rediss://`` for TLS);
    ``ttl`` (seconds) makes every write expire, so abandoned conversations do not accumulate.
    The client is created lazily on first use; :meth:`close` closes it.  Needs the ``redis``
    package (``pip install 'lp-messaging-sdk[redis]'``): without it the constructor raises
    :class:`~lpm.errors.ConfigurationError`.
    """

    def __init__(self, url: str, *, prefix: str = "lpm:conversation:", ttl: float | None = None) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError("url must be a redis://, rediss:// or unix:// URL")
        if ttl is not None and (not isinstance(ttl, int | float) or ttl <= 0):
            raise ConfigurationError("ttl must be a positive number of seconds or None")
        try:
            self._module: Any = importlib.import_module("redis.asyncio")
        except ImportError:
            raise ConfigurationError(
                "RedisConversationStore needs the 'redis' package: pip install 'lp-messaging-sdk[redis]'"
            ) from None
        self._url = url
        self.prefix = prefix
        self.ttl = ttl
        self._client: Any = None

    def __repr__(self) -> str:
        parts = urlsplit(self._url)
        where = f"{parts.hostname or ''}:{parts.port or ''}{parts.path}"  # never the password
        return f"<RedisConversationStore {parts.scheme}://{where} prefix={self.prefix!r}>"

    def _redis(self) -> Any:
        if self._client is None:
            self._client = self._module.from_url(self._url, decode_responses=True)
        return self._client

    async def get(self, conversation_id: str) -> str | None:
        """``GET prefix+id``."""
        value = await self._redis().get(self.prefix + _check_id(conversation_id))
        return None if value is None else str(value)

    async def put(self, conversation_id: str, serialized: str) -> None:
        """``SET prefix+id`` (with ``PX`` when a ttl is set)."""
        if not isinstance(serialized, str):
            raise ConfigurationError("serialized must be a string")
        px = None if self.ttl is None else max(int(self.ttl * 1000), 1)
        await self._redis().set(self.prefix + _check_id(conversation_id), serialized, px=px)

    async def delete(self, conversation_id: str) -> None:
        """``DEL prefix+id``."""
        await self._redis().delete(self.prefix + _check_id(conversation_id))

    async def close(self) -> None:
        """Close the client's connections (a later call opens new ones)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def store_from_url(url: str, *, prefix: str | None = None, ttl: float | None = None) -> ConversationStore:
    """The store a URL names: ``memory://`` (:class:`MemoryConversationStore`), ``file:///abs/dir``
    (:class:`FileConversationStore`) or ``redis://host:port/db`` / ``rediss://...``
    (:class:`RedisConversationStore`, with ``prefix`` and ``ttl`` when given; the file and memory
    stores take neither: a directory is already a namespace, and memory is private)."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError("store URL must be a non-empty string")
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryConversationStore()
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigurationError("a file store URL is file:///absolute/directory")
        return FileConversationStore(unquote(parts.path))
    if parts.scheme in ("redis", "rediss"):
        if prefix is None:
            return RedisConversationStore(url, ttl=ttl)
        return RedisConversationStore(url, prefix=prefix, ttl=ttl)
    raise ConfigurationError(
        f"unsupported store URL scheme {parts.scheme!r} (memory://, file:// or redis://)"
    )
