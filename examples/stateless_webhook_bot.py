"""A stateless, horizontally scalable webhook bot: run as many copies as you like behind one
webhook endpoint; none of them keeps a conversation between webhooks.

::

    python examples/stateless_webhook_bot.py --csds-domain http://127.0.0.1:8443 --port 8081 \\
        --store redis://127.0.0.1:6379/0 --client-secret "$APP_INSTALL_SECRET" --name bot-a

Each process

* feeds a NULL connection with the webhooks it receives (``lpm.webhooks.create_app``); before a
  messaging webhook is processed, the conversation it is about is loaded from the store into the
  NULL connection (``load_conversation``) if this process does not hold it — the conversation
  change that announced it may have gone to another process;
* answers every consumer message over a REST brand connection: it loads the conversation from
  the store (``load_conversation``), joins it as the assigned agent if the saved state shows it
  has no agent yet, sends ``"<name> answer #<n>: ..."`` where ``n`` counts the answers given in
  that conversation by *any* process, writes ``serialize()`` and the counter back to the store and
  ``unload()``\\ s the conversation.  The state is saved *before* the answer is sent: the next
  consumer message may reach another process as soon as the answer arrives.

What the store holds per conversation is a small JSON envelope: ``{"conversation": <serialize()
output>, "answered": n, "last_by": name}``.  The store URL is ``file:///dir`` (the default, a
directory under the system's temp dir) or ``redis://host:port/db``.

One line is printed per handled message (conversation id, sequence, process name, counter);
message texts, tokens and secrets are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

import lpm
import lpm.webhooks
from lpm.client.model.conversation import Conversation
from lpm.client.model.message import Message
from lpm.stores import ConversationStore, store_from_url

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def conversation_id_of(payload: Any) -> str | None:
    """The conversation a messaging webhook is about (None for other payloads).  The payload is
    the notification itself as LivePerson POSTs it (or the Node SDK's ``wsNotificationMsg``
    wrapper: ``notification_of`` reads both)."""
    message = lpm.webhooks.notification_of(payload)
    if message is None or message.get("type") != "ms.MessagingEventNotification":
        return None
    body = message.get("body")
    changes = body.get("changes") if isinstance(body, dict) else None
    if not isinstance(changes, list):
        return None
    for change in changes:
        if isinstance(change, dict):
            cid = change.get("conversationId") or change.get("dialogId")
            if isinstance(cid, str) and cid:
                return cid
    return None


class StatelessBot:
    """One bot process: a NULL connection fed by webhooks, a REST connection to act, a store."""

    def __init__(
        self, name: str, null: lpm.NullConnection, rest: lpm.BrandRestConnection, store: ConversationStore
    ):
        self.name = name
        self.null = null
        self.rest = rest
        self.store = store
        self.handled = 0
        # Conversations this process put into the NULL connection's cache (released after use).
        self._null_loaded: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        null.on("conversation", self._on_conversation)
        null.on("conversation:message", self._on_message)
        null.on("error", self._on_error)

    # ---------------------------------------------------------------- the NULL (webhooks) side

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Before the receiver queues a messaging webhook, make sure the NULL connection knows
        the conversation (from the store) so the notification finds it."""
        if request.method == "POST":
            raw = await request.read()  # cached: the receiver reads the same bytes again
            try:
                cid = conversation_id_of(json.loads(raw))
            except ValueError:
                cid = None
            if cid is not None and self.null.conversations.get(cid) is None:
                envelope = await self._envelope(cid)
                if envelope is not None and self.null.conversations.get(cid) is None:
                    self.null.load_conversation(envelope["conversation"])
                    self._null_loaded.add(cid)
        return await handler(request)

    def _release_null(self, cid: str) -> None:
        if cid in self._null_loaded:
            self._null_loaded.discard(cid)
            conversation = self.null.conversations.get(cid)
            if conversation is not None:
                with contextlib.suppress(lpm.errors.InvalidStateError):
                    conversation.unload()

    def _on_conversation(self, conversation: Conversation) -> None:
        # A new conversation: save its state so any process can load it.
        self._spawn(self._save_new(conversation.conversation_id, conversation.serialize()))

    def _on_message(self, conversation: Conversation, message: Message) -> None:
        cid = conversation.conversation_id
        snapshot = conversation.serialize()
        # Release what the middleware loaded once this notification's events are applied.
        asyncio.get_running_loop().call_soon(self._release_null, cid)
        consumer = conversation.consumer
        from_consumer = message.originator_role == lpm.ParticipantRole.CONSUMER or (
            consumer is not None and message.originator_id == consumer.user_id
        )
        if from_consumer and message.sequence is not None:
            self._spawn(self._answer(cid, message.sequence, snapshot))

    def _on_error(self, error: BaseException) -> None:
        print(f"[{self.name}] webhook processing error: {type(error).__name__}", flush=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- the store

    async def _envelope(self, cid: str) -> dict[str, Any] | None:
        text = await self.store.get(cid)
        if text is None:
            return None
        data = json.loads(text)
        return data if isinstance(data, dict) and isinstance(data.get("conversation"), str) else None

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    async def _save_new(self, cid: str, snapshot: str) -> None:
        async with self._lock(cid):
            if await self.store.get(cid) is None:
                envelope = {"conversation": snapshot, "answered": 0, "last_by": None}
                await self.store.put(cid, json.dumps(envelope))

    # ---------------------------------------------------------------- the REST (acting) side

    async def _answer(self, cid: str, sequence: int, snapshot: str) -> None:
        try:
            async with self._lock(cid):
                envelope = await self._envelope(cid)
                if envelope is None:
                    envelope = {"conversation": snapshot, "answered": 0, "last_by": None}
                answered = int(envelope.get("answered") or 0) + 1
                conversation = self.rest.load_conversation(envelope["conversation"])
                try:
                    agent = conversation.assigned_agent
                    if agent is None or agent.user_id != self.rest.user_id:
                        await conversation.join(lpm.ParticipantRole.ASSIGNED_AGENT)
                        # The join is not reflected locally over REST: read the new state.
                        conversation = await self.rest.get_conversation_by_id(cid)
                    # Saved before the answer goes out: the consumer's next message may reach the
                    # other process as soon as the answer arrives, and it must find this state.
                    previous = json.dumps(envelope)
                    saved = {
                        "conversation": conversation.serialize(),
                        "answered": answered,
                        "last_by": self.name,
                    }
                    await self.store.put(cid, json.dumps(saved))
                    try:
                        await conversation.send_message(
                            f"{self.name} answer #{answered}: received #{sequence}"
                        )
                    except BaseException:
                        await self.store.put(cid, previous)  # not answered after all
                        raise
                finally:
                    with contextlib.suppress(lpm.errors.InvalidStateError):
                        conversation.unload()
            self.handled += 1
            print(f"[{self.name}] conversation={cid} sequence={sequence} answered={answered}", flush=True)
        except Exception as exc:  # one failed answer must not stop the bot
            print(f"[{self.name}] conversation={cid} sequence={sequence} failed: {exc!r}", flush=True)

    async def close(self) -> None:
        """Wait briefly for answers in flight, then cancel what remains."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the client secret may also come from ``LPM_CLIENT_SECRET``)."""
    default_store = "file://" + os.path.join(tempfile.gettempdir(), "lpm-stateless-bot")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csds-domain", required=True, help="e.g. http://127.0.0.1:8443 for the emulator")
    parser.add_argument("--account-id", default="12345678")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="webhook port (0: any free port)")
    parser.add_argument("--path", default="/webhooks")
    parser.add_argument("--store", default=default_store, help="file:///dir or redis://host:port/db")
    parser.add_argument("--client-secret", default=os.environ.get("LPM_CLIENT_SECRET"))
    parser.add_argument("--name", default=f"bot-{os.getpid()}")
    parser.add_argument("--username", default="bot")
    parser.add_argument("--password", default=None, help="default: <username>-password")
    args = parser.parse_args(argv)
    if not args.client_secret:
        parser.error("--client-secret (or LPM_CLIENT_SECRET) is required")
    return args


async def run(args: argparse.Namespace) -> None:
    """Serve webhooks until SIGINT/SIGTERM."""
    null = lpm.create_connection(
        account_id=args.account_id, user_type=lpm.UserType.BRAND, connection_type=lpm.ConnectionType.NULL
    )
    rest = lpm.create_connection(
        account_id=args.account_id,
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        auth_data={"username": args.username, "password": args.password or f"{args.username}-password"},
        csds_domain=args.csds_domain,
    )
    store = store_from_url(args.store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await null.open()
    await rest.open()
    bot = StatelessBot(args.name, null, rest, store)
    app = lpm.webhooks.create_app(null, client_secret=args.client_secret, path=args.path)
    app.middlewares.append(bot.middleware)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        port = runner.addresses[0][1]
        print(f"[{args.name}] listening on http://{args.host}:{port}{args.path} store={store!r}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        await bot.close()
        await rest.close()
        await null.close()
        await store.close()
        print(f"[{args.name}] stopped after {bot.handled} message(s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    asyncio.run(run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
