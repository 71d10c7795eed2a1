"""The conversation engine: one worker per conversation, handlers run in order, state saved after
each, every consumer message handled once.

A worker is woken (``kick``) by anything that may give it work: the conversation's announcement,
a message, the bot joining, a survey dialog opening, the conversation closing, a failover.  It
does not take events one by one; it looks at the conversation as it is and handles what is not
handled yet, in sequence order:

1. the conversation must be open, and this bot user an active participant of its open dialog;
2. the coordinator must grant it (always, in one process; with replicas, to one of them);
3. the conversation's record is loaded from the store (once; again after a takeover), and the
   dialog's history is read once so messages sent before the bot joined, or while no replica was
   serving the conversation, are seen;
4. ``@bot.conversation_started`` runs once per conversation (``@bot.survey`` once per survey
   dialog), then each consumer message after the record's ``done`` sequence goes to its handler,
   and the record (state + sequence) is saved after each.

A conversation the bot sees for the first time has no record: the consumer messages after the
last message of an agent are its pending ones (all of them in a new conversation).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import lpm
from lpm.bot.context import ConversationContext, MessageContext, State, SurveyContext
from lpm.bot.coordination import Claim, Coordinator
from lpm.bot.handlers import Registration, Registry
from lpm.bot.logs import BotLogger
from lpm.bot.metrics import BotMetrics
from lpm.bot.records import Record
from lpm.bot.tracing import Tracer

if TYPE_CHECKING:
    from lpm.stores import ConversationStore

__all__ = ["MARKER_TYPE", "Engine", "OwnershipLost", "marker_of"]

#: The metadata type of a handler's idempotency key (a UMS metadata type: an external id).
MARKER_TYPE = "ExternalId"
MARKER_PREFIX = "lpm-bot/"
#: Roles whose messages count as an answer when a conversation's pending messages are computed.
AGENT_ROLES = frozenset(
    {lpm.ParticipantRole.ASSIGNED_AGENT, lpm.ParticipantRole.AGENT, lpm.ParticipantRole.MANAGER}
)
#: Seconds before a worker that failed (store down, request refused) tries again, at most.
RETRY_MAX = 30.0


class OwnershipLost(Exception):
    """This process may no longer act on the conversation (another replica owns it now)."""


class Host(Protocol):
    """What the engine needs of the bot besides its parts."""

    @property
    def connection(self) -> lpm.BrandWebsocketConnection: ...


def marker_of(message: lpm.Message) -> str | None:
    """The bot's idempotency key in a message's metadata, if any."""
    for item in message.metadata or ():
        if isinstance(item, dict) and item.get("type") == MARKER_TYPE:
            value = item.get("id")
            if isinstance(value, str) and value.startswith(MARKER_PREFIX):
                return value
    return None


def from_consumer(message: lpm.Message) -> bool:
    role = message.originator_role or message.participant.role
    return role == lpm.ParticipantRole.CONSUMER


def _serving_dialog(conversation: lpm.Conversation) -> lpm.Dialog | None:
    """The open dialog when this connection's user takes part in it, else None."""
    if conversation.stage != lpm.ConversationState.OPEN:
        return None
    dialog = conversation.open_dialog
    if dialog is None:
        return None
    me = dialog.get_self_participant()
    return dialog if me is not None and me.is_active else None


@dataclass(slots=True, kw_only=True, eq=False, repr=False)
class Engine:
    """Runs the handlers of one bot's conversations (see the module docstring)."""

    host: Host
    store: ConversationStore
    coordinator: Coordinator
    registry: Registry
    metrics: BotMetrics
    tracer: Tracer
    logger: BotLogger
    #: New handler runs may start (False once a stop was asked for).
    accepting: bool = field(default=True, init=False)
    _workers: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _dirty: set[str] = field(default_factory=set, init=False)
    _records: dict[str, Record] = field(default_factory=dict, init=False)
    _history_read: set[str] = field(default_factory=set, init=False)
    _closed_done: set[str] = field(default_factory=set, init=False)
    _retry: dict[str, float] = field(default_factory=dict, init=False)
    _timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict, init=False)
    #: Handler runs in progress and finished (for shutdown reports and tests).
    in_flight: int = field(default=0, init=False)
    started_runs: int = field(default=0, init=False)
    finished_runs: int = field(default=0, init=False)

    @property
    def conn(self) -> lpm.BrandWebsocketConnection:
        return self.host.connection

    # ---------------------------------------------------------------- wake-ups

    def kick(self, conversation_id: str) -> None:
        """Have the conversation's worker look at it (now, or after its current step)."""
        if not self.accepting:
            return
        self._dirty.add(conversation_id)
        worker = self._workers.get(conversation_id)
        if worker is None or worker.done():
            self._workers[conversation_id] = asyncio.create_task(
                self._work(conversation_id), name=f"lpm-bot-{conversation_id}"
            )

    def kick_all(self) -> None:
        for conversation in self.conn.get_all_known_conversations():
            self.kick(conversation.conversation_id)

    def serving(self) -> list[str]:
        """Open conversations whose open dialog this bot user takes part in."""
        return [
            c.conversation_id
            for c in self.conn.get_all_known_conversations()
            if _serving_dialog(c) is not None
        ]

    def open_conversations(self) -> int:
        """Conversations this process holds (owns and serves)."""
        owned = self.coordinator.owned()
        return sum(1 for cid in self.serving() if cid in owned)

    async def _work(self, cid: str) -> None:
        try:
            while cid in self._dirty and self.accepting:
                self._dirty.discard(cid)
                await self._step(cid)
            self._retry.pop(cid, None)
        except OwnershipLost:
            self._records.pop(cid, None)
            self.logger.info("conversation moved to another replica", extra={"conversation_id": cid})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A store or a request failed: the record in memory may be ahead of the stored one.
            self._records.pop(cid, None)
            delay = min(self._retry.get(cid, 0.5) * 2, RETRY_MAX)
            self._retry[cid] = delay
            self.logger.warning(
                "conversation step failed (%s: %s); again in %.1f s",
                type(exc).__name__,
                str(exc),
                delay,
                extra={"conversation_id": cid},
            )
            self._schedule(cid, delay)
        finally:
            if self._workers.get(cid) is asyncio.current_task():
                del self._workers[cid]

    def _schedule(self, cid: str, delay: float) -> None:
        old = self._timers.pop(cid, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(cid, None)
            self.kick(cid)

        self._timers[cid] = asyncio.get_running_loop().call_later(delay, fire)

    # ---------------------------------------------------------------- one look at a conversation

    async def _step(self, cid: str) -> None:
        conversation = self.conn.get_conversation_by_id(cid)
        if conversation is None:
            return
        if conversation.stage == lpm.ConversationState.CLOSE:
            await self._closed(conversation)
            return
        dialog = _serving_dialog(conversation)
        if dialog is None:
            if self.coordinator.owns(cid) and conversation.stage == lpm.ConversationState.OPEN:
                # Transferred away (or removed): no longer ours to serve.
                await self.coordinator.release(cid)
                self._records.pop(cid, None)
                self._history_read.discard(cid)
            return
        claim = await self.coordinator.claim(cid)
        if not claim.granted:
            return
        if claim is Claim.TAKEN_OVER:
            self.metrics.failovers.inc()
            self.logger.info("took the conversation over", extra={"conversation_id": cid})
        record = self._records.get(cid)
        if record is None or claim in (Claim.ACQUIRED, Claim.TAKEN_OVER):
            record = Record.loads(await self.store.get(cid))
            self._records[cid] = record
        if cid not in self._history_read:
            try:
                await dialog.get_all_publish_events()
            except lpm.LpmError as exc:
                self.logger.warning("history not read: %s", str(exc), extra={"conversation_id": cid})
            else:
                self._history_read.add(cid)
        await self._serve(conversation, dialog, record)

    async def _serve(self, conversation: lpm.Conversation, dialog: lpm.Dialog, record: Record) -> None:
        cid = conversation.conversation_id
        is_survey = dialog.dialog_type == lpm.DialogType.POST_SURVEY
        if is_survey:
            if dialog.dialog_id not in record.surveys:
                if not self.accepting:
                    return
                new = self._copy(record)
                new.surveys.append(dialog.dialog_id)
                new.done.setdefault(dialog.dialog_id, -1)
                opening = self.registry.first(self.registry.surveys, conversation.skill_id)
                if opening is not None:
                    ctx = SurveyContext(
                        self, conversation, dialog, _fresh(record), None, key="survey", logger=self._log(cid)
                    )
                    if await self._run("survey", opening, ctx, lambda: ctx.state):
                        new.state = ctx.state
                await self._save(cid, new)
                record = new
        elif not record.started or dialog.dialog_id not in record.done:
            if not self.accepting:
                return
            new = self._copy(record)
            new.done.setdefault(dialog.dialog_id, _pending_from(dialog))
            if not record.started:
                new.started = True
                started = self.registry.first(self.registry.started, conversation.skill_id)
                if started is not None:
                    ctx_started = ConversationContext(
                        self, conversation, dialog, _fresh(record), key="start", logger=self._log(cid)
                    )
                    if await self._run(
                        "conversation_started", started, ctx_started, lambda: ctx_started.state
                    ):
                        new.state = ctx_started.state
            await self._save(cid, new)
            record = new
        while self.accepting:
            if _serving_dialog(conversation) is not dialog:
                return  # transferred, closed, or the survey began meanwhile
            message = _next_pending(dialog, record.done.get(dialog.dialog_id, -1))
            if message is None:
                return
            record = await self._handle(conversation, dialog, message, record, is_survey)

    async def _handle(
        self,
        conversation: lpm.Conversation,
        dialog: lpm.Dialog,
        message: lpm.Message,
        record: Record,
        is_survey: bool,
    ) -> Record:
        cid = conversation.conversation_id
        seq = message.sequence
        assert seq is not None
        new = self._copy(record)
        new.done[dialog.dialog_id] = seq
        log = self._log(cid)
        key = str(seq)
        if is_survey:
            survey = self.registry.first(self.registry.surveys, conversation.skill_id)
            if survey is not None:
                ctx_survey = SurveyContext(
                    self, conversation, dialog, _fresh(record), message, key=key, logger=log
                )
                if await self._run("survey", survey, ctx_survey, lambda: ctx_survey.state):
                    new.state = ctx_survey.state
        else:
            is_file = message.content_type == lpm.ContentType.HOSTED_FILE
            registration, match = self.registry.message(message, conversation.skill_id, is_file=is_file)
            if registration is not None:
                ctx = MessageContext(
                    self, conversation, dialog, _fresh(record), message, key=key, logger=log, match=match
                )
                kind = "file" if is_file and registration in self.registry.files else "message"
                if await self._run(kind, registration, ctx, lambda: ctx.state):
                    new.state = ctx.state
            else:
                log.debug("no handler for message %s", seq, extra={"conversation_id": cid})
        await self._save(cid, new)
        return new

    async def _closed(self, conversation: lpm.Conversation) -> None:
        cid = conversation.conversation_id
        if cid in self._closed_done:
            return
        record = self._records.get(cid)
        if record is None:
            text = await self.store.get(cid)
            if text is None:
                self._closed_done.add(cid)
                return  # never the bot's
            record = Record.loads(text)
        claim = await self.coordinator.claim(cid)
        if not claim.granted:
            self._closed_done.add(cid)
            self.coordinator.forget(cid)
            return
        registration = self.registry.first(self.registry.closed, conversation.skill_id)
        if registration is not None and self.accepting:
            ctx = ConversationContext(
                self,
                conversation,
                conversation.main_dialog,
                _fresh(record),
                key="closed",
                logger=self._log(cid),
            )
            await self._run("conversation_closed", registration, ctx, lambda: ctx.state)
        await self.store.delete(cid)
        await self.coordinator.release(cid)
        self._closed_done.add(cid)
        self._records.pop(cid, None)
        self._history_read.discard(cid)

    # ---------------------------------------------------------------- running handlers

    def _log(self, cid: str) -> BotLogger:
        return self.logger.bind(conversation_id=cid)

    @staticmethod
    def _copy(record: Record) -> Record:
        return copy.deepcopy(record)

    async def _run(
        self,
        kind: str,
        registration: Registration[Any],
        ctx: Any,
        state: Callable[[], State],
    ) -> bool:
        """Run one handler; True when it returned (its state is to be saved)."""
        cid = ctx.conversation_id
        started = time.perf_counter()
        self.in_flight += 1
        self.started_runs += 1
        self.metrics.in_flight.inc()
        ok = False
        try:
            with self.tracer.span(
                f"lpm.bot.{kind}",
                {
                    "lpm.conversation_id": cid,
                    "lpm.handler": registration.name,
                    "lpm.replica": self.coordinator.replica_id,
                },
            ):
                coro: Awaitable[Any] = registration.handler(ctx)
                await coro
            if not isinstance(state(), dict):
                raise TypeError(f"ctx.state must stay a dict, not {type(state()).__name__}")
            ok = True
        except (OwnershipLost, asyncio.CancelledError):
            raise
        except Exception as exc:
            self.metrics.handler_errors.labels(kind).inc()
            self._log(cid).error(
                "handler %s failed: %s: %s",
                registration.name,
                type(exc).__name__,
                str(exc),
                exc_info=exc,
                extra={"kind": kind, "handler": registration.name},
            )
        finally:
            elapsed = time.perf_counter() - started
            self.in_flight -= 1
            self.finished_runs += 1
            self.metrics.in_flight.dec()
            self.metrics.handler_seconds.labels(kind).observe(elapsed)
        self._log(cid).debug(
            "handler %s done",
            registration.name,
            extra={"kind": kind, "handler": registration.name, "seconds": round(elapsed, 4)},
        )
        return ok

    async def _save(self, cid: str, record: Record) -> None:
        record.handled += 1
        record.by = self.coordinator.replica_id
        text = record.dumps()
        if not self.coordinator.owns(cid):
            raise OwnershipLost(cid)
        await self.store.put(cid, text)
        record.stored = True
        self._records[cid] = record

    # ---------------------------------------------------------------- actions (what the contexts ask)

    def _check(self, ctx: ConversationContext) -> None:
        if not self.coordinator.owns(ctx.conversation_id):
            raise OwnershipLost(ctx.conversation_id)

    async def send(
        self,
        ctx: ConversationContext,
        *,
        text: str | None,
        content: dict[str, Any] | None,
        quick_replies: dict[str, Any] | None,
        metadata: list[Any] | None,
    ) -> int | None:
        key = ctx._next_key()
        self._check(ctx)
        for message in reversed(ctx.dialog.messages):
            if marker_of(message) == key and message.sent_by_current_user():
                ctx.logger.info("message %s was sent before a failover; not sent again", key)
                return None
        meta = [*(metadata or ()), {"type": MARKER_TYPE, "id": key}]
        with self.tracer.span("lpm.bot.action.reply", {"lpm.conversation_id": ctx.conversation_id}):
            if content is not None:
                sequence = await ctx.dialog.send_rich_text(content, meta, quick_replies)
            else:
                sequence = await ctx.dialog.send_message(text or "", meta, quick_replies)
        self.metrics.messages_sent.inc()
        return sequence

    async def typing(self, ctx: ConversationContext, on: bool) -> None:
        self._check(ctx)
        state = lpm.ParticipantChatState.COMPOSING if on else lpm.ParticipantChatState.ACTIVE
        with self.tracer.span("lpm.bot.action.typing", {"lpm.conversation_id": ctx.conversation_id}):
            await ctx.dialog.set_chat_state(state)

    async def transfer(self, ctx: ConversationContext, skill: str | None, agent: str | None) -> None:
        self._check(ctx)
        if _serving_dialog(ctx.conversation) is None:
            return  # already handed over (a handler run again after a failover)
        with self.tracer.span(
            "lpm.bot.action.transfer",
            {"lpm.conversation_id": ctx.conversation_id, "lpm.skill_id": skill, "lpm.agent_id": agent},
        ):
            await ctx.conversation.transfer(agent_id=agent, skill_id=skill)
        ctx.logger.info("transferred (skill=%s agent=%s)", skill, agent)

    async def close(self, ctx: ConversationContext) -> None:
        self._check(ctx)
        conversation = ctx.conversation
        if conversation.stage != lpm.ConversationState.OPEN or ctx.dialog.state != lpm.DialogState.OPEN:
            return  # already closed (a handler run again after a failover)
        with self.tracer.span("lpm.bot.action.close", {"lpm.conversation_id": ctx.conversation_id}):
            if ctx.dialog.dialog_type == lpm.DialogType.POST_SURVEY:
                await ctx.dialog.close(lpm.DialogCloseReason.AGENT, "survey done")
            else:
                await conversation.close()

    # ---------------------------------------------------------------- shutdown

    def stop_accepting(self) -> None:
        self.accepting = False
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the workers (each finishes the handler it runs and
        saves); cancel what is left.  Returns how many were cut off."""
        self.stop_accepting()
        workers = [w for w in self._workers.values() if not w.done()]
        if not workers:
            return 0
        _, pending = await asyncio.wait(workers, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return len(pending)


def _fresh(record: Record) -> State:
    """A copy of the record's state for one handler run (its changes count only if it returns)."""
    return copy.deepcopy(record.state)


def _pending_from(dialog: lpm.Dialog) -> int:
    """The sequence after which a dialog new to the bot has pending consumer messages: the last
    message of an agent, or the last consumer message a handler of this bot answered (its
    idempotency keys say which), else -1."""
    done = -1
    for message in dialog.messages:
        seq = message.sequence
        if seq is None:
            continue
        key = marker_of(message)
        if key is not None:
            parts = key.split("/")
            if len(parts) == 4 and parts[2].isdigit():
                done = max(done, int(parts[2]))
            continue
        role = message.originator_role or message.participant.role
        if role in AGENT_ROLES and message.audience == lpm.MessageAudience.ALL:
            done = max(done, seq)
    return done


def _next_pending(dialog: lpm.Dialog, done: int) -> lpm.Message | None:
    for message in dialog.messages:
        seq = message.sequence
        if seq is not None and seq > done and from_consumer(message):
            return message
    return None


logging.getLogger("lpm.bot").addHandler(logging.NullHandler())
