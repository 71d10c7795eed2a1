"""The connection's conversation cache: one :class:`Conversation` object per conversation id.

* Conversations are found by id and by any of their dialog ids (messaging events name a dialog).
* Every feed (subscription) holding a conversation adds a reference (:meth:`adopt`); when the
  last reference is released the conversation stays cached ``cache_duration`` seconds (a late
  event still finds it), then leaves the cache.  A new reference cancels the expiry.  The expiry
  timers are ``asyncio`` handles owned here and cancelled by :meth:`close`.
* Conversations created by this consumer (:meth:`create_local`) are cached without a reference
  until a subscription adopts them; conversations loaded from JSON (:meth:`load_conversation`)
  hold one manual reference until :meth:`Conversation.unload`.
* Messaging events are routed here (:meth:`handle_messaging_events`) by conversation id, else by
  dialog id.  An accept status or chat state for an unknown conversation is ignored; a message
  for one is reported on the connection's ``"error"`` event (usually the 1000-conversation
  snapshot limit, see limit break).
* Consumer connections: after a reconnect :meth:`resubscribe_messaging` re-issues the messaging
  subscription of every open dialog from the first sequence it has not seen contiguously, and
  the dialogs' seen-sequence sets drop the replayed events: no message is lost or delivered twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from lpm.client.model.conversation import Conversation
from lpm.client.model.skill import Skill
from lpm.client.retry import Backoff, retry
from lpm.enums import DialogState, ParticipantState
from lpm.errors import (
    InvalidStateError,
    LimitExceededError,
    LpmConnectionError,
    LpmError,
    ProtocolError,
    RequestError,
    RequestTimeoutError,
)
from lpm.protocol.notifications import state_digest

if TYPE_CHECKING:
    from lpm.client.actions import ConnectionActions
    from lpm.client.model.dialog import Dialog
    from lpm.protocol.notifications import ConversationInfo, MessagingEventInfo

__all__ = ["DEFAULT_CACHE_DURATION", "DEFAULT_MAX_CONVERSATIONS", "ConversationCache", "HistoryLoad"]

log = logging.getLogger("lpm.client.model.cache")

#: Seconds an unreferenced conversation stays cached (the Node SDK's 10 minutes).
DEFAULT_CACHE_DURATION = 600.0
#: Most conversations one connection caches unless told otherwise (``max_conversations``).
DEFAULT_MAX_CONVERSATIONS = 100_000
#: Waits (seconds) before retrying a history load or messaging subscription that failed
#: transiently: the conversation is announced after it, and without it the messages sent before
#: this user joined would be missing until some later reconnect.  One try more than waits.
PREPARE_RETRY = Backoff((0.2, 0.5, 1.0, 2.0, 4.0))
#: Event types that are harmless to drop for conversations this connection does not know.
_IGNORABLE_FOR_UNKNOWN = frozenset({"AcceptStatusEvent", "ChatStateEvent"})


class ConversationCache:
    """Conversations of one connection, with reference counting and timed expiry."""

    __slots__ = (
        "_caught_up",
        "_conversations",
        "_deferred",
        "_dialog_index",
        "_expiry_held",
        "_loaded",
        "_refs",
        "_skills",
        "_timers",
        "actions",
        "cache_duration",
        "get_all_messages",
        "max_conversations",
        "report_error",
    )

    def __init__(
        self,
        actions: ConnectionActions,
        *,
        cache_duration: float = DEFAULT_CACHE_DURATION,
        get_all_messages: bool = False,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
    ) -> None:
        #: The connection, through the object model's interface.
        self.actions = actions
        #: ``actions.report_error``, bound once: every object of the model shares it as its
        #: emitter's error sink (a bound method per object is 64 bytes).
        self.report_error = actions.report_error
        #: Seconds an unreferenced conversation stays cached (0: leaves at once).
        self.cache_duration = cache_duration
        #: Brand: load a new conversation's whole open-dialog history before announcing it.
        self.get_all_messages = get_all_messages
        #: Most conversations cached; :meth:`from_info` refuses new ones beyond it.
        self.max_conversations = max_conversations
        self._conversations: dict[str, Conversation] = {}
        self._dialog_index: dict[str, Conversation] = {}
        self._refs: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loaded: set[str] = set()
        self._skills: dict[str, Skill] = {}
        # While the session is not restored, expiries are deferred (see session_lost).
        self._expiry_held = False
        self._deferred: set[str] = set()
        # Closed dialogs the restore under way has replayed: caught up once it completes.
        self._caught_up: list[Dialog] = []

    # ---------------------------------------------------------------- lookup

    def get(self, conversation_id: str | None) -> Conversation | None:
        """The cached conversation with this id."""
        return self._conversations.get(conversation_id) if conversation_id else None

    def find_by_dialog(self, dialog_id: str) -> Conversation | None:
        """The cached conversation owning this dialog id."""
        return self._dialog_index.get(dialog_id)

    def all(self) -> list[Conversation]:
        """Every cached conversation."""
        return list(self._conversations.values())

    def __len__(self) -> int:
        return len(self._conversations)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._conversations

    def __iter__(self) -> Iterator[Conversation]:
        return iter(list(self._conversations.values()))

    def skill(self, skill_id: str) -> Skill:
        """The :class:`Skill` object of this id (one per id per connection)."""
        skill = self._skills.get(skill_id)
        if skill is None:
            skill = self._skills[skill_id] = Skill(skill_id)
        return skill

    def ref_count(self, conversation: Conversation) -> int:
        """How many feeds (and manual loads) hold the conversation."""
        return self._refs.get(conversation.conversation_id, 0)

    # ---------------------------------------------------------------- membership

    def create_local(
        self,
        conversation_id: str,
        *,
        skill_id: str | None = None,
        context: dict[str, Any] | None = None,
        campaign_info: dict[str, Any] | None = None,
    ) -> Conversation:
        """The conversation a consumer just created (or the cached one, if its first
        notification already arrived); cached without a reference."""
        existing = self._conversations.get(conversation_id)
        if existing is not None:
            return existing
        conversation = Conversation(
            self, conversation_id, skill_id=skill_id, context=context, campaign_info=campaign_info
        )
        self.add(conversation)
        return conversation

    def from_info(self, info: ConversationInfo, details_token: int | None = None) -> Conversation:
        """Build a conversation from its first state notification and cache it (``details_token``:
        the notification's, see :attr:`~lpm.protocol.notifications.ConversationChange.details_token`).

        Raises :class:`~lpm.errors.LimitExceededError` when ``max_conversations`` are cached:
        whatever a server sends, the cache (and the work each new conversation starts) is bounded.
        """
        if len(self._conversations) >= self.max_conversations:
            raise LimitExceededError(
                f"conversation {info.conversation_id} not cached: {self.max_conversations} "
                "conversations are (max_conversations)",
                limit="max_conversations",
            )
        conversation = Conversation(self, info.conversation_id)
        self.add(conversation)
        conversation._apply(info, state_digest(info), details_token)
        return conversation

    def add(self, conversation: Conversation) -> None:
        """Cache a conversation (without a reference)."""
        self._conversations[conversation.conversation_id] = conversation
        for dialog in conversation.dialogs:
            self._dialog_index[dialog.dialog_id] = conversation

    def _index_dialog(self, dialog_id: str, conversation: Conversation) -> None:
        # Objects not (yet) in the cache must not take over another object's dialog ids.
        if self._conversations.get(conversation.conversation_id) is conversation:
            self._dialog_index[dialog_id] = conversation

    def adopt(self, conversation: Conversation) -> None:
        """Add a reference (caching the conversation if needed) and cancel a pending expiry."""
        cid = conversation.conversation_id
        if self._conversations.get(cid) is not conversation:
            self.add(conversation)
        self._refs[cid] = self._refs.get(cid, 0) + 1
        timer = self._timers.pop(cid, None)
        if timer is not None:
            timer.cancel()

    def release(self, conversation: Conversation) -> None:
        """Drop a reference; the last one starts the ``cache_duration`` expiry."""
        cid = conversation.conversation_id
        count = max(self._refs.get(cid, 0) - 1, 0)
        self._refs[cid] = count
        if count or cid not in self._conversations:
            return
        if self.cache_duration <= 0:
            self._expire(cid)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (synchronous use): nothing could fire the timer later
            self.remove(conversation)
            return
        old = self._timers.pop(cid, None)
        if old is not None:
            old.cancel()
        self._timers[cid] = loop.call_later(self.cache_duration, self._expire, cid)

    def _expire(self, conversation_id: str) -> None:
        self._timers.pop(conversation_id, None)
        conversation = self._conversations.get(conversation_id)
        if conversation is None or self._refs.get(conversation_id):
            return
        if self._expiry_held:
            self._deferred.add(conversation_id)
            return
        self.remove(conversation)

    def session_lost(self) -> None:
        """The session is lost: conversations whose time is up stay cached until
        :meth:`session_restored`.  Messages sent before a conversation closed may still be on
        their way -- replayed by the next session's catch-up, or answering a messaging
        subscription whose response timed out -- and a conversation no longer cached could not
        take them: they would be lost.  Replays of closed dialogs not applied yet are void."""
        self._expiry_held = True
        self._caught_up.clear()

    def session_restored(self) -> None:
        """The session is restored and its catch-up applied (the replayed events are in): the
        closed dialogs it replayed are caught up, and the deferred expiries happen now."""
        for dialog in self._caught_up:
            dialog._ms_subscribed = False  # a closed dialog has no more to send
        self._caught_up.clear()
        self._expiry_held = False
        deferred, self._deferred = self._deferred, set()
        for conversation_id in deferred:
            self._expire(conversation_id)

    def remove(self, conversation: Conversation) -> None:
        """Forget a conversation now, whatever its references."""
        cid = conversation.conversation_id
        if self._conversations.get(cid) is not conversation:
            return
        del self._conversations[cid]
        for dialog in conversation.dialogs:
            if self._dialog_index.get(dialog.dialog_id) is conversation:
                del self._dialog_index[dialog.dialog_id]
        self._refs.pop(cid, None)
        self._loaded.discard(cid)
        timer = self._timers.pop(cid, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        """Cancel every expiry timer (the connection is closing)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._deferred.clear()

    # ---------------------------------------------------------------- stateless bots

    def load_conversation(self, text: str) -> Conversation:
        """Rebuild a conversation from :meth:`Conversation.serialize` output and cache it with a
        manual reference (released by :meth:`Conversation.unload`).  If the conversation is
        already cached, the cached object is returned (and referenced once more)."""
        loaded = Conversation.deserialize(self, text)
        existing = self._conversations.get(loaded.conversation_id)
        conversation = existing if existing is not None else loaded
        if conversation.conversation_id not in self._loaded:
            self._loaded.add(conversation.conversation_id)
            self.adopt(conversation)
        return conversation

    def unload(self, conversation: Conversation) -> None:
        """Release the manual reference of a loaded conversation; it leaves the cache at once
        unless a subscription still holds it."""
        cid = conversation.conversation_id
        if cid not in self._loaded or self._conversations.get(cid) is not conversation:
            raise InvalidStateError(f"conversation {cid} was not loaded with load_conversation")
        self._loaded.discard(cid)
        count = max(self._refs.get(cid, 0) - 1, 0)
        self._refs[cid] = count
        if not count:
            self.remove(conversation)

    # ---------------------------------------------------------------- messaging

    def handle_messaging_events(self, events: list[MessagingEventInfo]) -> None:
        """Route decoded messaging events to their conversations (in order)."""
        conversations, dialogs = self._conversations, self._dialog_index
        for event in events:
            cid = event.conversation_id
            conversation = (conversations.get(cid) if cid else None) or dialogs.get(event.dialog_id)
            if conversation is None:
                if event.event_type not in _IGNORABLE_FOR_UNKNOWN:
                    self.actions.report_error(
                        ProtocolError(
                            f"{event.event_type} received for conversation not in cache, "
                            f"conversationId: {event.conversation_id}, dialogId: {event.dialog_id}, "
                            f"accountId: {self.actions.account_id}"
                        )
                    )
                continue
            try:
                conversation.apply_event(event)
            except Exception as exc:  # one bad event must not stop the others
                self.actions.report_error(exc)

    def _reserve_messaging(self, conversation: Conversation) -> list[Dialog]:
        """Consumer: the open dialogs that still need a messaging subscription, marked as
        subscribed so a later notification does not subscribe them twice."""
        if self.actions.is_brand:
            return []
        dialogs = [d for d in conversation.dialogs if d.state == DialogState.OPEN and not d._ms_subscribed]
        for dialog in dialogs:
            dialog._ms_subscribed = True
        return dialogs

    async def _subscribe_dialogs(self, dialogs: list[Dialog]) -> None:
        for dialog in dialogs:
            try:
                await _retrying(dialog.subscribe_messaging_events)
            except LpmError as exc:
                self.actions.report_error(exc)

    def _needs_history(self, conversation: Conversation) -> bool:
        return self.get_all_messages and self.actions.is_brand and conversation.open_dialog is not None

    def _history_load(self, conversation: Conversation, *, notify: bool = False) -> HistoryLoad:
        """A history load of the conversation's open dialog, which holds the dialog's
        ``message`` events from now until it is over (see :class:`HistoryLoad`)."""
        return HistoryLoad(self.actions, conversation, notify=notify)

    async def _load_history(self, conversation: Conversation) -> None:
        await self._history_load(conversation)()

    async def resubscribe_messaging(self) -> None:
        """Consumer, after a reconnect: re-issue ``SubscribeMessagingEvents`` for every cached
        open dialog from ``last_contiguous_sequence + 1``.  Every dialog is attempted; the first
        failure is raised at the end (the connection retries the whole restore).

        A dialog that was streaming when the socket was lost and has closed since (the restored
        subscription already says so) is replayed once too: the messages sent between the loss
        and the close would be missed otherwise.
        """
        if self.actions.is_brand:
            return
        first_error: LpmError | None = None
        for conversation in list(self._conversations.values()):
            for dialog in conversation.dialogs:
                if dialog.state != DialogState.OPEN and not dialog._ms_subscribed:
                    continue
                closed = dialog.state != DialogState.OPEN
                try:
                    await dialog.subscribe_messaging_events()
                    if closed:
                        # Caught up only once the replay is applied (session_restored): the
                        # events come after this answer, and wait for the end of the restore.
                        self._caught_up.append(dialog)
                except BaseException as exc:
                    # Still to catch up, open or closed: the restore is retried, and a dialog that
                    # closes before the retry must still be replayed then (the failed request
                    # cleared the mark, and the messages sent before the close were lost).
                    dialog._ms_subscribed = True
                    if not isinstance(exc, LpmError):
                        raise  # cancelled: the restore is over
                    # str(exc), not exc: a handler that keeps log records (pytest's capture, a MemoryHandler)
                    # would keep the exception, its traceback's frames and the conversations they held.
                    log.debug("resubscribing dialog %s failed: %s", dialog.dialog_id, str(exc))
                    first_error = first_error or exc
        if first_error is not None:
            raise first_error


class HistoryLoad:
    """One history load (``get_all_messages``) of a conversation's open dialog.

    The dialog holds its ``message`` events from the moment the load is decided -- a live
    message received while it waits its turn or runs may be newer than the ones it is about to
    bring -- until :meth:`release`; then the held events come out in sequence order.  Calling
    the object runs the load (transient failures retried, a final failure reported) and
    releases; a load that will never run (its subscription stopped) must be released too.
    """

    __slots__ = ("_actions", "_dialog", "conversation", "notify")

    def __init__(self, actions: ConnectionActions, conversation: Conversation, *, notify: bool) -> None:
        self._actions = actions
        #: The conversation whose open dialog is loaded.
        self.conversation = conversation
        #: Emit the loaded messages as ``message`` events (the conversation was announced already).
        self.notify = notify
        self._dialog = conversation.open_dialog
        if self._dialog is not None:
            self._dialog._hold_messages()

    async def load(self) -> None:
        """Load the history (retrying transient failures); a failure is reported, not raised."""
        dialog = self._dialog
        if dialog is None:
            return
        notify = self.notify
        # Whether this user took part when the history was asked for: the refusal answers that.
        member = _takes_part(dialog)
        try:
            await _retrying(lambda: dialog._load_history(notify=notify))
        except RequestError as exc:
            if exc.code == 403 and not (member and _takes_part(dialog)):
                # Not a participant (yet): a bot sees the conversations waiting on its skills
                # before it accepts one; once it joins, the history is loaded then.  (Its join
                # may be known by the time the refusal arrives: the refusal answered the request
                # made before.)  str(exc): the exception would keep its traceback's frames
                # alive in a handler that keeps records.
                log.debug("history of dialog %s not readable yet: %s", dialog.dialog_id, str(exc))
                return
            self._actions.report_error(exc)
        except LpmError as exc:
            self._actions.report_error(exc)

    def release(self) -> None:
        """End the hold (once): the held ``message`` events are emitted, in sequence order."""
        dialog, self._dialog = self._dialog, None
        if dialog is not None:
            dialog._release_messages()

    async def __call__(self) -> None:
        try:
            await self.load()
        finally:
            self.release()


def _takes_part(dialog: Dialog) -> bool:
    """Whether this connection's user is an active participant of ``dialog``."""
    me = dialog.get_self_participant()
    return me is not None and me.state == ParticipantState.ACTIVE


def _transient(exc: BaseException) -> bool:
    """A failure worth retrying: no answer, no connection, or a 5xx / 429 from UMS."""
    if isinstance(exc, RequestTimeoutError | LpmConnectionError):
        return True
    return isinstance(exc, RequestError) and (exc.code >= 500 or exc.code == 429)


def _log_retry(exc: BaseException, attempt: int, wait: float) -> None:
    log.debug("retrying in %g s after a transient failure: %s", wait, str(exc))  # (str: see above)


async def _retrying(call: Callable[[], Awaitable[Any]]) -> None:
    """``call()``, retried on transient failures after each wait of :data:`PREPARE_RETRY`."""
    await retry(
        call,
        backoff=PREPARE_RETRY,
        is_retryable=_transient,
        on_retry=_log_retry,
        max_attempts=len(PREPARE_RETRY.schedule) + 1,
    )
