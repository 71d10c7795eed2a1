"""Persistence of the emulator's world in a SQLite file (``lpm emulator --db FILE``).

The world is the source of truth and lives in memory; this store only keeps a copy on disk so a
restarted emulator comes back with the same conversations, events, consumers, agent states, login
sessions and signing keys.  What comes from the configuration (accounts, users, skills, connectors)
is *not* stored: it is rebuilt from the config before :meth:`SqliteStore.load_into` runs.

Write path.  :class:`~lpm.emulator.world.World` calls the store synchronously after every committed
change, on the event loop, so those calls must be cheap (a benchmark pushes ~20k events/s).  The
store therefore only *buffers*: events are encoded at once (they never change after publishing),
while conversations, consumers, agent states, app installs and sessions are kept as "dirty"
objects keyed by id and encoded at flush time, so fifty changes to one conversation between two
flushes cost one row write.  Because one flush writes a consistent snapshot in one transaction,
what is on disk is always a state the world really was in.

Durability: group commit.  **An acknowledged write is on disk before it is acknowledged**, and so
is every change anyone was told about (a fanned-out event, a webhook, an HTTP answer): the faces
await :meth:`SqliteStore.durable` before anything leaves the process.  The first write after a
commit schedules the next commit for the next turn of the event loop (``loop.call_soon``), so
every write made meanwhile -- all the requests the loop handled in one turn, from every socket --
shares one transaction; ``durable()`` returns once the commit holding the caller's writes is done.
Committing each request on its own would cost one transaction per message (on the benchmark
machine ~30 us of SQLite time per event, against 8-14 us when tens of events share one); waiting
for a timer instead would add its period to every acknowledgement.  A crash (``kill -9``)
therefore loses only writes nobody was told about, and since every sequence anyone saw was
committed first, a restarted emulator never hands out a sequence twice (no high-water mark is
needed: a sequence lost in a crash was never shown to anyone).  Buffers are also committed when
``batch_size`` writes are pending and whenever :meth:`SqliteStore.flush` is called (the emulator
also calls it every 0.2 s and on shutdown).  A failed commit (disk full, file removed) keeps the
writes and retries every ``retry_delay`` seconds; meanwhile acknowledgements wait -- the
emulator never confirms what it could not write.

The journal is WAL with ``synchronous=NORMAL`` by default: a commit is in the operating system's
hands before ``durable()`` returns, which survives the emulator process dying in any way; only an
operating-system crash or a power loss may drop the last commits.  ``synchronous="FULL"`` adds an
fsync to every group commit to survive those too.

The store is not thread-safe: use it from the thread that runs the world (the event loop).
About 600 lines in one piece on purpose: the table layout, the write buffers, group commit and
loading all work on the same rows and connection; split, each part would need the others' state.

Secrets (bearers, csrf tokens, key PEMs) are stored, since restoring them is the point, but they
are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, TypeVar

import msgspec

from lpm.emulator import entities as m
from lpm.emulator.sinks import NullStore
from lpm.emulator.world import World

__all__ = ["SCHEMA_VERSION", "SqliteStore", "StoreError"]

log = logging.getLogger(__name__)

#: Version of the table layout below; a file with another version is refused, not guessed at.
SCHEMA_VERSION: Final = 1
_VERSION_KEY: Final = "schema_version"
#: Seconds between two attempts at a commit that failed (acknowledgements wait meanwhile).
RETRY_DELAY: Final = 0.2

_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS conversations ("
    "account_id TEXT NOT NULL, conv_id TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events ("
    "account_id TEXT NOT NULL, dialog_id TEXT NOT NULL, sequence INTEGER NOT NULL, json TEXT NOT NULL, "
    "PRIMARY KEY (dialog_id, sequence))",
    "CREATE TABLE IF NOT EXISTS consumers ("
    "account_id TEXT NOT NULL, consumer_id TEXT NOT NULL, json TEXT NOT NULL, "
    "PRIMARY KEY (account_id, consumer_id))",
    "CREATE TABLE IF NOT EXISTS agent_states ("
    "account_id TEXT NOT NULL, user_id TEXT NOT NULL, json TEXT NOT NULL, "
    "PRIMARY KEY (account_id, user_id))",
    "CREATE TABLE IF NOT EXISTS sessions (bearer TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS app_installs ("
    "account_id TEXT NOT NULL, client_id TEXT NOT NULL, json TEXT NOT NULL, "
    "PRIMARY KEY (account_id, client_id))",
)

_UPSERT_CONVERSATION: Final = (
    "INSERT INTO conversations (account_id, conv_id, json) VALUES (?, ?, ?) "
    "ON CONFLICT (conv_id) DO UPDATE SET account_id = excluded.account_id, json = excluded.json"
)
_UPSERT_EVENT: Final = (
    "INSERT INTO events (account_id, dialog_id, sequence, json) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (dialog_id, sequence) DO UPDATE SET account_id = excluded.account_id, json = excluded.json"
)
_UPSERT_CONSUMER: Final = (
    "INSERT INTO consumers (account_id, consumer_id, json) VALUES (?, ?, ?) "
    "ON CONFLICT (account_id, consumer_id) DO UPDATE SET json = excluded.json"
)
_UPSERT_AGENT_STATE: Final = (
    "INSERT INTO agent_states (account_id, user_id, json) VALUES (?, ?, ?) "
    "ON CONFLICT (account_id, user_id) DO UPDATE SET json = excluded.json"
)
_UPSERT_SESSION: Final = (
    "INSERT INTO sessions (bearer, json) VALUES (?, ?) "
    "ON CONFLICT (bearer) DO UPDATE SET json = excluded.json"
)
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE bearer = ?"
_DELETE_APP_INSTALL: Final = "DELETE FROM app_installs WHERE account_id = ? AND client_id = ?"
_UPSERT_APP_INSTALL: Final = (
    "INSERT INTO app_installs (account_id, client_id, json) VALUES (?, ?, ?) "
    "ON CONFLICT (account_id, client_id) DO UPDATE SET json = excluded.json"
)
_UPSERT_META: Final = (
    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

_encoder: Final = msgspec.json.Encoder()
_T = TypeVar("_T")


def _encode(obj: msgspec.Struct) -> str:
    # TEXT rather than BLOB so the file stays inspectable with sqlite3's json_extract().
    return _encoder.encode(obj).decode()


def _decode(raw: str | bytes, kind: type[_T], where: str) -> _T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise StoreError(f"corrupt row in {where}: {exc}") from None


class StoreError(Exception):
    """The store file cannot be used: not SQLite, not an emulator store, another schema version,
    or a row that does not decode."""


class SqliteStore(NullStore):
    """The world's store backed by one SQLite file (WAL journal, group commit).

    Attach it with ``world.store = store`` *after* :meth:`load_into`, so loading does not write
    everything back.  Await :meth:`durable` before telling anyone about a change; call
    :meth:`close` on shutdown.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 500,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        """Open (or create) the store at ``path``; raises :class:`StoreError` if it is unusable.

        ``batch_size``: buffered writes that trigger a commit at once; ``synchronous``: SQLite's
        setting (``"NORMAL"`` survives a crash of the process, ``"FULL"`` also a power loss);
        ``retry_delay``: seconds between attempts at a failed commit.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        self.path = path if str(path) == ":memory:" else Path(path)
        self.batch_size = batch_size
        self.retry_delay = retry_delay
        self._conn: sqlite3.Connection | None = self._open(self.path, synchronous)
        # Write buffers, emptied by flush().  Latest object wins for everything but events.
        self._conversations: dict[str, m.Conversation] = {}
        self._events: list[tuple[str, str, int, str]] = []
        self._consumers: dict[tuple[str, str], m.Consumer] = {}
        self._agent_states: dict[tuple[str, str], m.AgentState] = {}
        self._app_installs: dict[tuple[str, str], m.AppInstall | None] = {}  # None: delete
        self._sessions: dict[str, m.AgentSession | None] = {}  # bearer -> None: delete
        self._pending = 0
        #: Callers of durable() waiting for the next successful commit.
        self._waiters: list[asyncio.Future[None]] = []
        #: The scheduled group commit (None: nothing scheduled).
        self._commit_handle: asyncio.Handle | None = None

    # ---------------------------------------------------------------- opening

    @staticmethod
    def _open(path: str | Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; flush() issues BEGIN/COMMIT itself.
        try:
            conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from None
        try:
            # The first statement touches the file header: a non-SQLite file fails here.
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit is written to the WAL (the process may die right after)
            # without an fsync; a power loss may drop the last commits but never corrupts the
            # file, which is the right default for an emulator.  FULL adds the fsync.
            conn.execute(f"PRAGMA synchronous={synchronous}")
            SqliteStore._migrate(conn, path)
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{path} is not a usable emulator store: {exc}") from None
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection, path: str | Path) -> None:
        # IMMEDIATE: two emulators creating the same new file must not both write a schema.
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version: str | None = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,)).fetchone()
                version = None if row is None else str(row[0])
            if version is None and tables:
                # Some other application's database: refuse rather than add tables to it.
                raise StoreError(
                    f"{path} is a SQLite database but not an emulator store "
                    f"(tables: {', '.join(sorted(tables))})"
                )
            if version is not None and version != str(SCHEMA_VERSION):
                raise StoreError(
                    f"{path} has store schema version {version!r}; this emulator reads version "
                    f"{SCHEMA_VERSION} (use another --db file)"
                )
            # Also on a known file: CREATE IF NOT EXISTS repairs a dropped table for free.
            for ddl in _TABLES:
                conn.execute(ddl)
            if version is None:
                conn.execute(_UPSERT_META, (_VERSION_KEY, str(SCHEMA_VERSION)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    # ---------------------------------------------------------------- world callbacks (hot path)

    def _wrote(self) -> None:
        self._pending += 1
        if self._pending >= self.batch_size:
            # Failure is logged and the buffers kept: a world operation already succeeded in
            # memory and must not fail because the disk did.
            self.flush()
        elif self._commit_handle is None:
            self._schedule_commit(0.0)

    def conversation_changed(self, conv: m.Conversation) -> None:
        """Buffer the conversation (encoded at flush time, so only its latest state is written)."""
        self._conversations[conv.conv_id] = conv
        self._wrote()

    def messaging_event(self, conv: m.Conversation, record: m.EventRecord) -> None:
        """Buffer one stored event; chat-state records (sequence None) are not persisted."""
        if record.sequence is None:
            return
        self._events.append((conv.account_id, record.dialog_id, record.sequence, _encode(record)))
        # The dialog's next_seq just moved, but World.publish announces the conversation only for
        # content events (not e.g. AcceptStatusEvent): write it with the event to keep them in step.
        self._conversations[conv.conv_id] = conv
        self._wrote()

    def agent_state_changed(self, account_id: str, user_id: str, state: m.AgentState) -> None:
        """Buffer an agent's state."""
        self._agent_states[account_id, user_id] = state
        self._wrote()

    def consumer_changed(self, account_id: str, consumer: m.Consumer) -> None:
        """Buffer a consumer identity and profile."""
        self._consumers[account_id, consumer.consumer_id] = consumer
        self._wrote()

    def session_changed(self, session: m.AgentSession | None, bearer: str) -> None:
        """Buffer an agent login session, or its deletion when ``session`` is None."""
        self._sessions[bearer] = session
        self._wrote()

    def app_install_changed(self, account_id: str, install: m.AppInstall) -> None:
        """Buffer an app install (it overrides the configured one of the same client id on load)."""
        self._app_installs[account_id, install.client_id] = install
        self._wrote()

    def app_install_removed(self, account_id: str, client_id: str) -> None:
        """Buffer the removal of an app install (its row is deleted at the next flush)."""
        self._app_installs[account_id, client_id] = None
        self._wrote()

    # ---------------------------------------------------------------- group commit

    @property
    def pending(self) -> int:
        """Writes buffered since the last successful flush (not yet durable)."""
        return self._pending

    async def durable(self) -> None:
        """Return once every write made before the call is committed.

        Waits for the group commit of the current batch (scheduled by the first write after the
        previous commit); while commits fail it keeps waiting (they are retried).  Raises
        :class:`StoreError` if the store is closed with those writes unwritten.  Cancelling the
        caller does not disturb the commit or the other waiters.
        """
        if self._pending == 0:
            return
        if self._conn is None:
            raise StoreError(f"the store is closed; {self._pending} writes were not written")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._commit_handle is None:
            # Writes made where no loop ran (setup code): nothing scheduled their commit yet.
            self._schedule_commit(0.0)
        await waiter

    def _schedule_commit(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (a script, a unit test): flush() and close() commit
        if delay > 0:
            self._commit_handle = loop.call_later(delay, self._group_commit)
        else:
            # call_soon: the commit runs after every callback already ready in this turn of the
            # loop, so the requests read meanwhile join the same transaction.
            self._commit_handle = loop.call_soon(self._group_commit)

    def _group_commit(self) -> None:
        self._commit_handle = None
        if not self.flush() and self._conn is not None:
            self._schedule_commit(self.retry_delay)

    def _release(self, error: BaseException | None = None) -> None:
        """Wake every durable() waiter: their writes are committed (or, with ``error``, lost)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue  # its caller was cancelled
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    # ---------------------------------------------------------------- flushing

    def flush(self) -> bool:
        """Write every buffered change in one transaction (and wake the :meth:`durable` waiters).

        Returns True when nothing is left buffered.  On a SQLite error (disk full, file removed)
        the transaction is rolled back, the error logged, the buffers kept for the next attempt,
        and False returned: a periodic caller never dies of a transient disk problem.
        """
        if self._pending == 0:
            self._release()
            return True
        if self._conn is None:
            log.error("store is closed: %d buffered writes are lost", self._pending)
            return False
        conn = self._conn
        try:
            conn.execute("BEGIN")
            if self._conversations:
                conn.executemany(
                    _UPSERT_CONVERSATION,
                    [(c.account_id, c.conv_id, _encode(c)) for c in self._conversations.values()],
                )
            if self._events:
                conn.executemany(_UPSERT_EVENT, self._events)
            if self._consumers:
                conn.executemany(
                    _UPSERT_CONSUMER, [(a, cid, _encode(c)) for (a, cid), c in self._consumers.items()]
                )
            if self._agent_states:
                conn.executemany(
                    _UPSERT_AGENT_STATE, [(a, uid, _encode(s)) for (a, uid), s in self._agent_states.items()]
                )
            if self._app_installs:
                conn.executemany(
                    _DELETE_APP_INSTALL, [(a, cid) for (a, cid), i in self._app_installs.items() if i is None]
                )
                conn.executemany(
                    _UPSERT_APP_INSTALL,
                    [(a, cid, _encode(i)) for (a, cid), i in self._app_installs.items() if i is not None],
                )
            if self._sessions:
                conn.executemany(
                    _DELETE_SESSION, [(bearer,) for bearer, s in self._sessions.items() if s is None]
                )
                conn.executemany(
                    _UPSERT_SESSION,
                    [(bearer, _encode(s)) for bearer, s in self._sessions.items() if s is not None],
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # sqlite messages name tables and constraints, never bound values: safe to log.
            log.error("store flush failed, %d writes kept for retry: %s", self._pending, str(exc))
            return False
        self._conversations.clear()
        self._events.clear()
        self._consumers.clear()
        self._agent_states.clear()
        self._app_installs.clear()
        self._sessions.clear()
        self._pending = 0
        self._release()
        return True

    def close(self) -> None:
        """Flush and close the file; idempotent.  A failed final flush is logged (data lost), and
        whoever still awaits :meth:`durable` gets a :class:`StoreError`."""
        if self._conn is None:
            return
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        self.flush()
        self._conn.close()
        self._conn = None
        if self._waiters:
            self._release(StoreError(f"the store closed with {self._pending} writes unwritten"))

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- meta

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table (e.g. the IdP signing key PEM), or None."""
        row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a meta value and commit at once (rare, and a lost signing key voids every token)."""
        if key == _VERSION_KEY:
            raise ValueError(f"{_VERSION_KEY!r} is reserved for the store itself")
        # Autocommit mode: the single statement is its own transaction.
        self._connection().execute(_UPSERT_META, (key, value))

    # ---------------------------------------------------------------- loading

    def load_into(self, world: World) -> None:
        """Restore the stored state into the accounts already present in ``world``.

        Conversations, per-dialog events (in sequence order), consumers, agent states (of known
        users), app installs (overriding configured ones of the same client id) and unexpired
        sessions (into ``world.sessions``) come back; the indexes ``dialog_index`` and
        ``open_conversation`` are rebuilt.  Rows of accounts absent from the world are skipped
        with a warning.  Routing is transient: open conversations come back without a routing
        task.  Call once, on a world freshly built from the config, before attaching the store
        to it (``world.store = store``), so loading does not write everything back.
        """
        self.flush()
        conn = self._connection()
        skipped: Counter[tuple[str, str]] = Counter()

        def account_of(account_id: str, what: str) -> m.Account | None:
            acc = world.accounts.get(account_id)
            if acc is None:
                skipped[account_id, what] += 1
            return acc

        for account_id, conv_id, raw in conn.execute("SELECT account_id, conv_id, json FROM conversations"):
            acc = account_of(account_id, "conversations")
            if acc is None:
                continue
            conv = _decode(raw, m.Conversation, f"conversations ({conv_id})")
            acc.conversations[conv.conv_id] = conv
            for dialog in conv.dialogs:
                acc.dialog_index[dialog.dialog_id] = conv.conv_id
                # Assigned, not setdefault: a second load must not append every event twice.
                acc.events[dialog.dialog_id] = []
            if conv.stage == m.OPEN:
                previous = acc.open_conversation.get(conv.consumer_id)
                if previous is not None and previous != conv.conv_id:
                    log.warning(
                        "account %s: consumer has two open conversations (%s, %s); keeping the later",
                        account_id,
                        previous,
                        conv.conv_id,
                    )
                    if acc.conversations[previous].start_ts > conv.start_ts:
                        continue
                acc.open_conversation[conv.consumer_id] = conv.conv_id

        orphans: Counter[str] = Counter()
        rows = conn.execute(
            "SELECT account_id, dialog_id, sequence, json FROM events ORDER BY dialog_id, sequence"
        )
        for account_id, dialog_id, sequence, raw in rows:
            acc = account_of(account_id, "events")
            if acc is None:
                continue
            if dialog_id not in acc.dialog_index:
                orphans[account_id] += 1
                continue
            record = _decode(raw, m.EventRecord, f"events ({dialog_id}, {sequence})")
            if record.sequence != sequence or record.dialog_id != dialog_id:
                raise StoreError(f"corrupt row in events ({dialog_id}, {sequence}): key and json disagree")
            acc.events[dialog_id].append(record)
        for account_id, count in orphans.items():
            log.warning("account %s: skipped %d stored events of unknown dialogs", account_id, count)

        for acc in world.accounts.values():
            self._repair_dialogs(acc.account_id, acc.conversations, acc.events)

        for account_id, consumer_id, raw in conn.execute(
            "SELECT account_id, consumer_id, json FROM consumers"
        ):
            acc = account_of(account_id, "consumers")
            if acc is not None:
                acc.consumers[consumer_id] = _decode(raw, m.Consumer, f"consumers ({consumer_id})")

        for account_id, user_id, raw in conn.execute("SELECT account_id, user_id, json FROM agent_states"):
            acc = account_of(account_id, "agent states")
            if acc is None:
                continue
            if user_id not in acc.users:
                # The user was removed from the config; a state for nobody would only confuse.
                log.info("account %s: dropping stored state of unknown user %s", account_id, user_id)
                continue
            acc.agent_states[user_id] = _decode(raw, m.AgentState, f"agent_states ({user_id})")

        for account_id, client_id, raw in conn.execute(
            "SELECT account_id, client_id, json FROM app_installs"
        ):
            acc = account_of(account_id, "app installs")
            if acc is not None:
                acc.app_installs[client_id] = _decode(raw, m.AppInstall, f"app_installs ({client_id})")

        self._load_sessions(world, conn)

        for (account_id, what), count in sorted(skipped.items()):
            log.warning(
                "ignoring %d stored %s of account %s, which is not configured", count, what, account_id
            )

    @staticmethod
    def _repair_dialogs(
        account_id: str, conversations: dict[str, m.Conversation], events: dict[str, list[m.EventRecord]]
    ) -> None:
        for conv in conversations.values():
            for dialog in conv.dialogs:
                records = events.get(dialog.dialog_id, [])
                if records:
                    # A batch flushed between an event and its conversation row leaves next_seq
                    # behind; a reused sequence would be refused by the events primary key.
                    dialog.next_seq = max(dialog.next_seq, (records[-1].sequence or 0) + 1)
                    if records[-1].sequence != len(records) - 1:
                        # World.events() slices the list by sequence: a gap shifts every read.
                        log.warning(
                            "account %s: dialog %s has gaps in its stored sequences (%d events, last %s)",
                            account_id,
                            dialog.dialog_id,
                            len(records),
                            records[-1].sequence,
                        )
            last = conv.last_content_event
            if last is not None and last.sequence is not None:
                # Share the object with the events list, as before the restart, instead of a copy.
                records = events.get(last.dialog_id, [])
                if last.sequence < len(records) and records[last.sequence].sequence == last.sequence:
                    conv.last_content_event = records[last.sequence]

    @staticmethod
    def _load_sessions(world: World, conn: sqlite3.Connection) -> None:
        now = world.clock()
        expired: list[tuple[str]] = []
        kept = 0
        for bearer, raw in conn.execute("SELECT bearer, json FROM sessions"):
            # The bearer is a credential: errors name the table only.
            session = _decode(raw, m.AgentSession, "sessions")
            if session.expires_at <= now:
                expired.append((bearer,))
                continue
            acc = world.accounts.get(session.account_id)
            if acc is None or session.user_id not in acc.users:
                continue
            world.sessions[session.bearer] = session
            kept += 1
        if expired:
            # Nobody can use them any more; drop them so the file does not grow forever.
            conn.execute("BEGIN")
            conn.executemany(_DELETE_SESSION, expired)
            conn.execute("COMMIT")
        log.debug("restored %d agent sessions, dropped %d expired", kept, len(expired))
