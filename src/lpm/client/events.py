"""A small asyncio-friendly event emitter shared by every object of the SDK.

``obj.on(name, handler)`` registers a sync or async handler (also usable as a decorator);
``obj.once``, ``obj.off``; ``await obj.wait_for(name, check=None, timeout=None)`` returns the next
matching event; ``async for args in obj.events(name)`` iterates over events.  Handlers are called
with the event's positional arguments.

Each class of the SDK types these methods for its own events (:mod:`lpm.client.typed_events`,
generated from the class's event enum): under ``mypy --strict`` a misspelled event name, a handler
with the wrong parameters or a wrong use of a ``wait_for`` result is an error, and ``@obj.on(name)``
keeps the decorated function's type.  The dicts some events carry are typed here
(:class:`CloseInfo`, :class:`WaitInfo`...); they are plain dicts at run time.

A handler that raises (or an async handler whose task fails) never disturbs the emitter: the
exception, wrapped in a :class:`~lpm.errors.HandlerError` naming the event, the object and the
handler, goes to the emitter's error sink, which the connection wires to its ``"error"`` event
(logged with its traceback under ``lpm.handlers`` when nobody listens).  Async handlers run as
tasks the emitter owns and cancels on :meth:`EventEmitter.close_events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypedDict, TypeVar, overload

from lpm.errors import HandlerError, WaitTimeoutError

log = logging.getLogger("lpm.client.events")
#: Where an application handler's exception is logged when nobody listens to ``error``.
handler_log = logging.getLogger("lpm.handlers")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


# ---------------------------------------------------------------- payloads of events (typing only)


class CloseInfo(TypedDict):
    """``close`` / ``disconnect`` of a connection: the socket's close code and reason."""

    code: int
    reason: str


class WaitInfo(TypedDict):
    """``reconnect-wait`` of a connection, ``generate-token-wait`` of a token maintainer: the
    seconds before the next attempt."""

    seconds: float


class StartInfo(TypedDict):
    """``connect#request``, ``getAgentToken#request``, ``getConsumerToken#request``: when it
    started (epoch seconds)."""

    start: float


class TimingInfo(TypedDict):
    """``connect#response``, ``getAgentToken#response``, ``getConsumerToken#response``: when it
    started and ended (epoch seconds)."""

    start: float
    end: float


class RequestSummary(TypedDict):
    """A request as ``<type>#request`` / ``<type>#response`` show it."""

    #: The request id on the wire.
    id: str
    #: The request type (``ms.PublishEvent``...).
    type: str
    #: The request body, as JSON-able values.
    body: Any


class RequestEventInfo(TypedDict):
    """``<type>#request``: a request was written (``start``, epoch seconds)."""

    start: float
    request: RequestSummary


class ResponseEventInfo(TypedDict):
    """``<type>#response``: a request was answered; ``response`` is the answer's body."""

    start: float
    end: float
    request: RequestSummary
    response: Any


class TokenInvalidInfo(TypedDict):
    """``token-invalid`` of a token maintainer: who refused the token (``"socket"``,
    ``"refresh"``...)."""

    source: str


class AgentTokenInfo(TypedDict):
    """``refresh-token`` / ``token-regenerated`` of a token maintainer: the agent's id."""

    agent_id: str | None


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, swallow_errors: bool = True) -> None:
    """Cancel ``tasks`` and wait until each has finished unwinding (how the emitter ends its
    handlers' tasks, and any owner of background tasks its own).  Their outcome no longer
    matters: cancellation is swallowed, and so are their errors unless ``swallow_errors`` is
    false (an error worth telling was reported when it happened)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    swallowed = (asyncio.CancelledError, Exception) if swallow_errors else (asyncio.CancelledError,)
    for task in tasks:
        with contextlib.suppress(*swallowed):
            await task


def _payload(args: tuple[Any, ...]) -> Any:
    """What ``wait_for`` returns: nothing, the single argument, or the tuple."""
    if not args:
        return None
    return args[0] if len(args) == 1 else args


class EventEmitter:
    """Mixin: named events with sync/async handlers, waiters and async iteration."""

    # Slots, so that the many small emitters (messages, participants, dialogs), which declare
    # their own slots, carry no per-instance __dict__ (a brand connection may hold 100,000
    # messages; see docs/performance.md).  Subclasses without __slots__ still get a __dict__.
    __slots__ = ("__weakref__", "_error_sink", "_handler_tasks", "_handlers")

    def __init__(self, error_sink: Callable[[BaseException], None] | None = None) -> None:
        self._handlers: dict[str, list[tuple[Handler, bool]]] = {}
        #: Tasks of async handlers still running; created on the first one (most emitters never
        #: run an async handler, and an empty set costs 216 bytes).
        self._handler_tasks: set[asyncio.Future[Any]] | None = None
        #: Receives exceptions raised by handlers (the connection emits them as "error").
        self._error_sink = error_sink

    # ---------------------------------------------------------------- registration

    # Overloads bind nothing at run time: calls go straight to the last definition.
    @overload
    def on(self, name: str, handler: H) -> H: ...
    @overload
    def on(self, name: str, handler: None = None) -> Callable[[H], H]: ...
    def on(self, name: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register ``handler`` for ``name`` and return it; without a handler, return a decorator
        (which returns the function unchanged).  Type checkers know each class's event names and
        the arguments its handlers receive (see the events section of ``docs/concepts.md``)."""
        return self._register(name, handler, once=False)

    @overload
    def once(self, name: str, handler: H) -> H: ...
    @overload
    def once(self, name: str, handler: None = None) -> Callable[[H], H]: ...
    def once(self, name: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Like :meth:`on`, but the handler runs at most once."""
        return self._register(name, handler, once=True)

    def _register(self, name: str, handler: H | None, *, once: bool) -> H | Callable[[H], H]:
        if handler is None:

            def decorator(fn: H) -> H:
                self._register(name, fn, once=once)
                return fn

            return decorator
        self._handlers.setdefault(name, []).append((handler, once))
        return handler

    def off(self, name: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (or every handler) of ``name``."""
        if handler is None:
            self._handlers.pop(name, None)
            return
        entries = self._handlers.get(name)
        if entries:
            entries[:] = [e for e in entries if e[0] is not handler]
            if not entries:
                del self._handlers[name]

    def remove_all_listeners(self, name: str | None = None) -> None:
        """Remove every handler (of ``name``, or of every event)."""
        if name is None:
            self._handlers.clear()
        else:
            self._handlers.pop(name, None)

    def has_listeners(self, name: str) -> bool:
        """Whether any handler listens to ``name`` (the Node ``emitter.listenerCount(name) > 0``)."""
        return bool(self._handlers.get(name))

    def listener_count(self, name: str) -> int:
        """How many handlers listen to ``name`` (``once`` handlers included until they ran)."""
        return len(self._handlers.get(name, ()))

    # ---------------------------------------------------------------- emission

    def emit(self, name: str, *args: Any) -> bool:
        """Call every handler of ``name``; returns whether there was any."""
        entries = self._handlers.get(name)
        if not entries:
            return False
        if len(entries) == 1:
            # The usual case (one listener), without the copies below: a ``once`` handler is
            # removed before it runs, as there.
            handler, once = entries[0]
            if once:
                del self._handlers[name]
            self._call(name, handler, args)
            return True
        if any(once for _, once in entries):
            self._handlers[name] = [e for e in entries if not e[1]]
            if not self._handlers[name]:
                del self._handlers[name]
        for handler, _ in list(entries):
            self._call(name, handler, args)
        return True

    def _call(self, name: str, handler: Handler, args: tuple[Any, ...]) -> None:
        try:
            result = handler(*args)
        except Exception as exc:
            self._report(name, handler, exc)
            return
        # (A sync handler returns None: no need to ask whether that is awaitable.)
        if result is not None and inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            if self._handler_tasks is None:
                self._handler_tasks = set()
            self._handler_tasks.add(task)
            task.add_done_callback(lambda t: self._handler_done(name, handler, t))

    def _handler_done(self, name: str, handler: Handler, task: asyncio.Future[Any]) -> None:
        if self._handler_tasks is not None:
            self._handler_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._report(name, handler, exc)

    def _report(self, name: str, handler: Handler, exc: BaseException) -> None:
        error = HandlerError(name, _describe(self), _handler_name(handler), exc)
        sink = self._error_sink
        # A failing "error" handler is logged, never fed back into "error" (no loops).
        if sink is not None and name != "error":
            try:
                sink(error)
                return
            except Exception:  # a failing sink must not hide the original error
                log.exception("error sink failed")
        log_handler_error(error)

    # ---------------------------------------------------------------- awaiting

    async def wait_for(
        self, name: str, check: Callable[..., bool] | None = None, timeout: float | None = None
    ) -> Any:
        """The next ``name`` event whose arguments pass ``check``.

        Returns the single argument (or the argument tuple, or None).  Raises
        :class:`~lpm.errors.WaitTimeoutError` (a ``TimeoutError``) naming the event and the object
        after ``timeout`` seconds.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def waiter(*args: Any) -> None:
            if future.done():
                return
            try:
                if check is not None and not check(*args):
                    return
            except Exception as exc:
                future.set_exception(exc)
                return
            future.set_result(_payload(args))

        self.on(name, waiter)
        try:
            async with asyncio.timeout(timeout) as deadline:
                return await future
        except TimeoutError:
            if not deadline.expired():
                raise  # the check's own TimeoutError
            assert timeout is not None
            raise WaitTimeoutError(name, _describe(self), timeout) from None
        finally:
            self.off(name, waiter)

    async def events(self, name: str, *, maxsize: int = 0) -> AsyncIterator[Any]:
        """Iterate over ``name`` events (each item as :meth:`wait_for` returns it)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

        def feed(*args: Any) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(_payload(args))

        self.on(name, feed)
        try:
            while True:
                yield await queue.get()
        finally:
            self.off(name, feed)

    async def close_events(self) -> None:
        """Cancel the tasks of async handlers still running (except the calling task: a handler
        may close the object it listens to)."""
        current = asyncio.current_task()
        await cancel_and_wait(t for t in self._handler_tasks or () if t is not current)
        self._handler_tasks = None


def log_handler_error(error: HandlerError) -> None:
    """Log a handler's exception with its full traceback under ``lpm.handlers`` (where it goes
    when nobody listens to ``error``)."""
    handler_log.error("%s", str(error), exc_info=error.__cause__)


def _describe(emitter: object) -> str:
    """The emitter as an error message names it (its ``repr``, bounded)."""
    try:
        text = repr(emitter)
    except Exception:  # a broken __repr__ must not hide the handler's error
        text = f"<{type(emitter).__name__}>"
    return text[:200]


def _handler_name(handler: Handler) -> str:
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None)
    module = getattr(handler, "__module__", None)
    if not isinstance(name, str):
        return repr(handler)[:120]
    return f"{module}.{name}" if isinstance(module, str) else name
