"""Drive the emulator through the flows LivePerson's published frames come from, and keep the
emulator's frame of each published type.

One run (about a second) plays, on raw sockets and HTTP:

* the Messaging Window API tutorials: a consumer with the PCS tutorial's client properties
  subscribes to its conversations and opens one with the tutorial's request; the agent of the
  Messaging Agent API getting-started trace takes it (profile, state, routing subscription,
  ring); messages, chat states, receipts, file sharing, a Stage close and a CSAT follow;
* the post-conversation survey of the PCS tutorial on a second conversation (skill 12 has a
  survey run by the bot): DialogChange close, the survey dialog, the bot's question, the
  consumer's ACTION, the survey's end;
* the agent getting-started trace's "next steps" (back to queue, transfer to skill, close) on a
  third conversation;
* the Connector Send API's CONVERSATION request, and the webhooks of every change above
  (an app install of the world posts them to a receiver in this process).

Published *requests* are sent as published, their placeholders and example ids replaced by the
scenario's (:func:`tests.fidelity.corpus.fill`); the emulator must accept every one.  Each
published *response or notification* gets the emulator's frame of the same type and moment in
:attr:`Run.frames` (same name).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from lpm.emulator import webhook_delivery
from lpm.emulator.app import Emulator
from lpm.emulator.config import default_world
from lpm.emulator.entities import AppInstall, WebhookEndpoint
from tests.fidelity.corpus import Published, fill

TIMEOUT = 10.0
ACC = "12345678"
APP_ID = "fidelity-app"
APP_SECRET = "fidelity-app-secret"
WEBHOOK_KEYS = (
    "cqm.ExConversationChangeNotification",
    "ms.MessagingEventNotification.ContentEvent",
    "ms.MessagingEventNotification.RichContentEvent",
    "ms.MessagingEventNotification.AcceptStatusEvent",
    "ms.MessagingEventNotification.ChatStateEvent",
)
#: The client properties of the PCS tutorial, step 1 (a custom window declaring MULTI_DIALOG).
PCS_CLIENT_PROPERTIES = {
    "type": ".ClientProperties",
    "appId": "webAsync",
    "integrationVersion": "3.0.5",
    "integration": "WEB_SDK",
    "features": ["RICH_CONTENT", "QUICK_REPLIES", "MULTI_DIALOG"],
}
EX = "cqm.ExConversationChangeNotification"
BRAND_EX = ".ams.aam.ExConversationChangeNotification"
MS = "ms.MessagingEventNotification"
ONLINE = ".ams.ms.OnlineEventDistribution"
ROUTING = ".ams.routing.RoutingTaskNotification"

Frame = dict[str, Any]


class Wire:
    """A WebSocket speaking raw UMS frames; every frame received is kept, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self._ids = itertools.count(1000)
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if frame.get("kind") == "resp":
                waiter = self._pending.pop(str(frame.get("reqId")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame)
            self._arrived.set()

    async def send(self, frame: Frame) -> Frame:
        """Send ``frame`` with a fresh id of the same JSON type as its own; its response."""
        number = next(self._ids)
        req_id: Any = number if isinstance(frame.get("id"), int) else f"r{number}"
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[str(req_id)] = future
        await self.ws.send_str(json.dumps({**frame, "id": req_id}))
        return await asyncio.wait_for(future, TIMEOUT)

    async def request(self, type_: str, body: Any = None, metadata: Any = None) -> Frame:
        frame: Frame = {"kind": "req", "id": "x", "type": type_}
        if body is not None:
            frame["body"] = body
        if metadata is not None:
            frame["metadata"] = metadata
        resp = await self.send(frame)
        assert resp["code"] < 400, resp
        return resp

    async def wait(self, predicate: Callable[[Frame], bool], since: int = 0) -> Frame:
        """The first notification from index ``since`` on that satisfies ``predicate``."""
        async with asyncio.timeout(TIMEOUT):
            seen = since
            while True:
                for frame in self.frames[seen:]:
                    if frame.get("kind") == "notification" and predicate(frame):
                        return frame
                seen = len(self.frames)
                self._arrived.clear()
                await self._arrived.wait()

    def mark(self) -> int:
        return len(self.frames)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


class Receiver:
    """The webhook endpoint: keeps every POSTed payload."""

    def __init__(self) -> None:
        self.payloads: list[Frame] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.payloads.append(json.loads(await request.read()))
        return web.Response(status=200)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def first(self, predicate: Callable[[Frame], bool]) -> Frame:
        return next(p for p in self.payloads if predicate(p))


@dataclass
class Run:
    """What one scenario produced."""

    #: Published frame name -> the emulator's frame of that type and moment.
    frames: dict[str, Any] = field(default_factory=dict)
    #: Published request name -> what the emulator answered (a response frame, or for the Send
    #: API ``{"status", "body"}``).
    answers: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- predicates


def _changes(frame: Frame) -> list[Any]:
    body = frame.get("body")
    changes = body.get("changes") if isinstance(body, dict) else None
    return changes if isinstance(changes, list) else []


def _conversation(frame: Frame, conv_id: str) -> dict[str, Any] | None:
    for change in _changes(frame):
        result = change.get("result") or {}
        if result.get("convId") == conv_id:
            return dict(result.get("conversationDetails") or {})
    return None


def _roles(details: dict[str, Any]) -> set[str]:
    participants = details.get("participants")
    if isinstance(participants, dict):
        return {role for role, ids in participants.items() if ids}
    return {p["role"] for p in participants or []}


def ex_change(type_: str, conv_id: str, test: Callable[[dict[str, Any]], bool] = lambda d: True) -> Any:
    def predicate(frame: Frame) -> bool:
        details = _conversation(frame, conv_id) if frame.get("type") == type_ else None
        return details is not None and test(details)

    return predicate


def event(type_: str, test: Callable[[dict[str, Any]], bool]) -> Any:
    def predicate(frame: Frame) -> bool:
        if frame.get("type") != type_:
            return False
        body = frame.get("body") or {}
        changes: list[Any] = body["changes"] if isinstance(body.get("changes"), list) else [body]
        return any(isinstance(c, dict) and test(c) for c in changes)

    return predicate


def text(message: str) -> Callable[[dict[str, Any]], bool]:
    return lambda change: change.get("event", {}).get("message") == message


def chat_state(state: str, role: str) -> Callable[[dict[str, Any]], bool]:
    return lambda change: (
        change.get("event", {}).get("chatState") == state
        and change.get("originatorMetadata", {}).get("role") == role
    )


def receipt(status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda change: change.get("event", {}).get("status") == status


def content(message: str) -> dict[str, Any]:
    return {"type": "ContentEvent", "contentType": "text/plain", "message": message}


def survey_bot_login() -> str:
    """The login name of the bot that runs skill 12's survey in the default world."""
    account = default_world().accounts[0]
    bot_id = next(s.survey_bot_user_id for s in account.skills if s.skill_id == "12")
    return next(u.login_name for u in account.users if u.user_id == bot_id)


# ---------------------------------------------------------------- the run


class Scenario:
    def __init__(self, corpus: dict[str, Published], emu: Emulator, http: aiohttp.ClientSession) -> None:
        self.corpus = corpus
        self.emu = emu
        self.http = http
        self.run = Run()
        #: Placeholders and example ids of the published requests -> the scenario's values.
        self.values: dict[str, Any] = {"__ACCOUNT__": ACC, "{accountid}": ACC}

    async def send(self, wire: Wire, name: str) -> Frame:
        published = self.corpus[name]
        assert published.kind == "request", name
        resp = await wire.send(fill(published.frame, self.values))
        self.run.answers[name] = resp
        return resp

    def keep(self, name: str, frame: Any) -> None:
        assert name in self.corpus, name
        self.run.frames[name] = frame

    async def login(self, username: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.emu.base_url}/api/account/{ACC}/login?v=1.3",
            json={"username": username, "password": f"{username}-password"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    async def brand(self, bearer: str, version: str) -> Wire:
        url = f"{self.emu.ws_base_url}/ws_api/account/{ACC}/messaging/brand/{bearer}?v={version}"
        return Wire(await self.http.ws_connect(url))

    async def consumer(self) -> tuple[Wire, str]:
        async with self.http.post(f"{self.emu.base_url}/api/account/{ACC}/signup") as resp:
            jwt = (await resp.json())["jwt"]
        ws = await self.http.ws_connect(
            f"{self.emu.ws_base_url}/ws_api/account/{ACC}/messaging/consumer?v=3",
            headers={"Authorization": f"jwt {jwt}", "Client-Properties": json.dumps(PCS_CLIENT_PROPERTIES)},
        )
        wire = Wire(ws)
        me = await wire.request("userprofile.GetUserProfile", {})
        return wire, str(me["body"]["userId"])

    async def accept_ring(self, agent: Wire, conv_id: str, since: int, published: bool = False) -> Frame:
        ring = await agent.wait(
            lambda f: (
                f.get("type") == ROUTING
                and any(
                    r.get("convId") == conv_id and r.get("ringState") == "WAITING"
                    for c in _changes(f)
                    for r in (c.get("result") or {}).get("ringsDetails", [])
                )
            ),
            since,
        )
        ring_id = next(
            r["ringId"]
            for c in _changes(ring)
            for r in c["result"]["ringsDetails"]
            if r.get("convId") == conv_id and r.get("ringState") == "WAITING"
        )
        if published:
            self.values["__RING_ID__"] = ring_id
            self.keep(
                "brand_update_ring_state_response", await self.send(agent, "brand_req_update_ring_state")
            )
        else:
            await agent.request(".ams.routing.UpdateRingState", {"ringId": ring_id, "ringState": "ACCEPTED"})
        return ring

    async def play(self, hooks: Receiver) -> Run:
        consumer, consumer_id = await self.consumer()
        # Step 4 of the PCS tutorial: the consumer's conversation subscription.
        resp = await self.send(consumer, "consumer_req_subscribe_ex_conversations")
        self.keep("consumer_subscribe_ex_conversations_response", resp)
        self.keep(
            "consumer_ex_conversation_empty_snapshot",
            await consumer.wait(lambda f: f.get("type") == EX and _changes(f) == []),
        )

        # The agent of the Messaging Agent API getting started (v=2 as there).
        info = await self.login("agent")
        agent = await self.brand(info["bearer"], "2")
        resp = await self.send(agent, "brand_req_get_user_profile_self")
        self.keep("brand_get_user_profile_self_response", resp)
        old_id = resp["body"]["userId"]
        self.values["__USER_ID__"] = old_id
        self.keep("brand_set_agent_state_response", await self.send(agent, "brand_req_set_agent_state"))
        self.keep(
            "brand_subscribe_routing_tasks_response",
            await self.send(agent, "brand_req_subscribe_routing_tasks"),
        )
        self.keep(
            "brand_routing_task_empty_snapshot",
            await agent.wait(lambda f: f.get("type") == ROUTING and _changes(f) == []),
        )
        await agent.request(".ams.aam.SubscribeExConversations", {"convState": ["OPEN", "CLOSE"]})

        # Conversation A: the tutorial's request (campaign, SharkContext), taken by the agent.
        ring_mark = agent.mark()
        resp = await self.send(consumer, "consumer_req_request_conversation")
        self.keep("consumer_request_conversation_response", resp)
        conv_a = resp["body"]["conversationId"]
        self.values.update({"__YOUR_CONVERSATION_ID__": conv_a, "__CONVERSATION_ID__": conv_a})
        self.keep(
            "brand_routing_task_legacy_ring", await self.accept_ring(agent, conv_a, ring_mark, published=True)
        )
        assigned = ex_change(EX, conv_a, lambda d: "ASSIGNED_AGENT" in _roles(d))
        self.keep("consumer_ex_conversation_legacy_created", await consumer.wait(ex_change(EX, conv_a)))
        self.keep("consumer_ex_conversation_legacy_assigned", await consumer.wait(assigned))

        # Messages, chat states and receipts (PCS steps 7-9).
        await agent.request(
            ".ams.ms.PublishEvent", {"dialogId": conv_a, "event": content("Hello from the agent")}
        )
        resp = await self.send(consumer, "consumer_req_subscribe_messaging_events")
        self.keep("consumer_subscribe_messaging_events_response", resp)
        self.keep("consumer_subscribe_messaging_events_response_legacy", resp)
        self.keep(
            "consumer_messaging_event_replay", await consumer.wait(event(MS, text("Hello from the agent")))
        )
        composing = {"type": "ChatStateEvent", "chatState": "COMPOSING"}
        await agent.request(".ams.ms.PublishEvent", {"dialogId": conv_a, "event": composing})
        self.keep(
            "consumer_messaging_event_agent_composing",
            await consumer.wait(event(MS, chat_state("COMPOSING", "ASSIGNED_AGENT"))),
        )
        await agent.request(".ams.ms.PublishEvent", {"dialogId": conv_a, "event": content("Hello again")})
        self.keep("consumer_messaging_event_agent_text", await consumer.wait(event(MS, text("Hello again"))))
        await self.send(agent, "brand_req_publish_text")
        active = {"type": "ChatStateEvent", "chatState": "ACTIVE"}
        await agent.request(".ams.ms.PublishEvent", {"dialogId": conv_a, "event": active})

        online_mark = agent.mark()
        resp = await self.send(consumer, "consumer_req_publish_text")
        self.keep("consumer_publish_event_response", resp)
        sequence = resp["body"]["sequence"]
        self.keep(
            "consumer_messaging_event_consumer_text",
            await consumer.wait(event(MS, text("Hello from the consumer"))),
        )
        self.keep(
            "brand_online_event_legacy",
            await agent.wait(event(ONLINE, text("Hello from the consumer")), online_mark),
        )
        for status in ("ACCEPT", "READ"):
            receipt_event = {"type": "AcceptStatusEvent", "status": status, "sequenceList": [sequence]}
            await agent.request(".ams.ms.PublishEvent", {"dialogId": conv_a, "event": receipt_event})
        self.keep("consumer_messaging_event_agent_accept", await consumer.wait(event(MS, receipt("ACCEPT"))))
        self.keep("consumer_messaging_event_agent_read", await consumer.wait(event(MS, receipt("READ"))))
        self.keep(
            "consumer_publish_chat_state_response",
            await self.send(consumer, "consumer_req_publish_chat_state"),
        )
        self.keep(
            "consumer_messaging_event_consumer_active",
            await consumer.wait(event(MS, chat_state("ACTIVE", "CONSUMER"))),
        )

        # File sharing: both published upload requests, the upload, the file message, a download.
        self.keep("consumer_upload_url_response", await self.send(consumer, "consumer_req_upload_url"))
        upload = (await self.send(consumer, "consumer_req_upload_url_number"))["body"]
        async with self.http.put(
            f"{self.emu.base_url}{upload['relativePath']}",
            params=upload["queryParams"],
            data=b"\x89PNG\r\n\x1a\n",
        ) as put:
            assert put.status == 201
        self.values["__relative_path__"] = upload["relativePath"]
        await self.send(consumer, "consumer_req_publish_hosted_file")
        self.keep("consumer_download_url_response", await self.send(consumer, "consumer_req_download_url"))
        self.values["__CONSUMER_PID__"] = consumer_id
        await self.send(agent, "brand_req_get_consumer_profile")

        # Closed with Stage (no survey), then rated with the legacy CSAT.
        await self.send(consumer, "consumer_req_stage_close")
        await self.send(consumer, "consumer_req_csat")
        self.keep(
            "consumer_ex_conversation_aam_csat",
            await consumer.wait(ex_change(EX, conv_a, lambda d: "csat" in d)),
        )

        # Conversation B: the post-conversation survey (skill 12; the bot runs its survey).
        ring_mark = agent.mark()
        # A custom context, as a messaging connector declares it (node-agent-sdk's test frame).
        context = {"type": "CustomContext", "name": "fidelity"}
        conv_b = (
            await consumer.request(
                "cm.ConsumerRequestConversation", {"skillId": "12", "conversationContext": context}
            )
        )["body"]["conversationId"]
        self.values.update({"__YOUR_CONVERSATION_ID__": conv_b, "__CONVERSATION_ID__": conv_b})
        await self.accept_ring(agent, conv_b, ring_mark)
        await consumer.wait(ex_change(EX, conv_b, lambda d: "ASSIGNED_AGENT" in _roles(d)))
        await consumer.request("ms.SubscribeMessagingEvents", {"dialogId": conv_b, "conversationId": conv_b})
        await consumer.request("ms.PublishEvent", {"dialogId": conv_b, "event": content("one last thing")})
        brand_mark = agent.mark()
        self.keep("consumer_dialog_close_response", await self.send(consumer, "consumer_req_dialog_close"))

        def with_survey(state: str) -> Callable[[dict[str, Any]], bool]:
            return lambda d: any(
                x.get("dialogType") == "POST_SURVEY" and x.get("state") == state for x in d.get("dialogs", [])
            )

        survey_frame = await consumer.wait(ex_change(EX, conv_b, with_survey("OPEN")))
        self.keep("consumer_ex_conversation_post_survey", survey_frame)
        details = _conversation(survey_frame, conv_b) or {}
        survey_id = next(d["dialogId"] for d in details["dialogs"] if d["dialogType"] == "POST_SURVEY")
        brand_survey = await agent.wait(ex_change(BRAND_EX, conv_b, with_survey("OPEN")), brand_mark)
        self.keep("brand_ex_conversation_post_survey", brand_survey)
        self.keep("brand_ex_conversation_suggested_transform_error", brand_survey)

        bot = await self.brand((await self.login(survey_bot_login()))["bearer"], "2.1")
        replay = self.corpus["consumer_messaging_event_survey_replay"].frame["body"]["changes"]
        await bot.request(".ams.ms.PublishEvent", {"dialogId": survey_id, "event": replay[0]["event"]})
        await bot.request(
            ".ams.ms.PublishEvent",
            {"dialogId": survey_id, "event": replay[1]["event"]},
            replay[1]["metadata"],
        )
        self.values["__YOUR_POST_SURVEY_DIALOG_ID__"] = survey_id
        await self.send(consumer, "consumer_req_survey_subscribe_messaging_events")
        self.keep(
            "consumer_messaging_event_survey_replay",
            await consumer.wait(lambda f: f.get("type") == MS and len(_changes(f)) == 2),
        )
        await self.send(consumer, "consumer_req_survey_action")
        self.keep("consumer_messaging_event_action", await consumer.wait(event(MS, receipt("ACTION"))))
        await bot.request(
            ".ams.cm.UpdateConversationField",
            {
                "conversationId": conv_b,
                "conversationField": [
                    {
                        "field": "DialogChange",
                        "type": "UPDATE",
                        "dialog": {
                            "dialogId": survey_id,
                            "state": "CLOSE",
                            "closedBy": "AGENT",
                            "closedCause": "Completed",
                        },
                    }
                ],
            },
        )
        self.keep(
            "consumer_ex_conversation_survey_completed",
            await consumer.wait(ex_change(EX, conv_b, lambda d: d.get("stage") == "CLOSE")),
        )

        # Conversation C: the getting started's "next steps" with the trace's requests.
        ring_mark = agent.mark()
        conv_c = (await consumer.request("cm.ConsumerRequestConversation", {"skillId": "12"}))["body"][
            "conversationId"
        ]
        self.values.update(
            {
                "71d97c07-e8f5-4b1b-80e0-4cb6b8cf4381": conv_c,
                "qa20971604.3838309010": old_id,
                "3848332110": "11",
                "__CONVERSATION_ID__": conv_c,
            }
        )
        await self.accept_ring(agent, conv_c, ring_mark)
        await consumer.wait(ex_change(EX, conv_c, lambda d: "ASSIGNED_AGENT" in _roles(d)))
        ring_mark = agent.mark()
        await self.send(agent, "brand_req_back_to_queue")
        await self.accept_ring(agent, conv_c, ring_mark)
        await self.send(agent, "brand_req_transfer_to_skill")
        await self.send(agent, "brand_req_close_conversation")

        # The Connector Send API's CONVERSATION request.
        await self.send_api()
        await bot.close()
        await agent.close()
        await consumer.close()

        # Webhooks of conversation A.
        assert self.emu.ctx is not None
        sink = webhook_delivery.sink_of(self.emu.ctx)
        assert sink is not None
        await sink.drain(TIMEOUT)
        self.keep_webhooks(hooks, conv_a)
        return self.run

    async def send_api(self) -> None:
        async with self.http.post(
            f"{self.emu.base_url}/sentinel/api/account/{ACC}/app/token?v=1.0&grant_type=client_credentials",
            data={"client_id": APP_ID, "client_secret": APP_SECRET},
        ) as resp:
            app_jwt = (await resp.json())["access_token"]
        async with self.http.post(
            f"{self.emu.base_url}/api/account/{ACC}/consumer?v=1.0",
            json={"ext_consumer_id": "fidelity-consumer"},
            headers={"Authorization": app_jwt},
        ) as resp:
            jws = (await resp.json())["token"]
        body = fill(self.corpus["sendapi_req_conversation"].frame, self.values)
        async with self.http.post(
            f"{self.emu.base_url}/api/account/{ACC}/messaging/consumer/conversation?v=3",
            json=body,
            headers={"Authorization": app_jwt, "X-LP-ON-BEHALF": jws},
        ) as resp:
            answer = {"status": resp.status, "body": await resp.json()}
        self.run.answers["sendapi_req_conversation"] = answer
        self.keep("sendapi_conversation_response", answer["body"])

    def keep_webhooks(self, hooks: Receiver, conv_id: str) -> None:
        def conv(p: Frame) -> bool:
            return p.get("type") == EX and _conversation(p, conv_id) is not None

        def message(test: Callable[[dict[str, Any]], bool]) -> Callable[[Frame], bool]:
            return lambda p: (
                p.get("type") == MS
                and any(c.get("conversationId") == conv_id and test(c) for c in _changes(p))
            )

        self.keep("webhook_ex_conversation_created", hooks.first(conv))
        self.keep(
            "webhook_ex_conversation_agent_assigned",
            hooks.first(lambda p: conv(p) and "ASSIGNED_AGENT" in _roles(_conversation(p, conv_id) or {})),
        )
        consumer_text = hooks.first(message(text("Hello from the consumer")))
        self.keep("webhook_messaging_event_consumer_text", consumer_text)
        self.keep("webhook_messaging_event_audience", consumer_text)
        self.keep("webhook_messaging_event_agent_read", hooks.first(message(receipt("READ"))))
        self.keep(
            "webhook_messaging_event_agent_composing",
            hooks.first(message(chat_state("COMPOSING", "ASSIGNED_AGENT"))),
        )
        self.keep(
            "webhook_messaging_event_agent_active",
            hooks.first(message(chat_state("ACTIVE", "ASSIGNED_AGENT"))),
        )
        self.keep("webhook_messaging_event_agent_text", hooks.first(message(text("Hello again"))))


async def play(corpus: dict[str, Published]) -> Run:
    """One run of the scenario on a fresh emulator (default world plus a webhook app install)."""
    hooks = Receiver()
    await hooks.start()
    try:
        spec = default_world()
        spec.accounts[0].app_installs.append(
            AppInstall(
                client_id=APP_ID,
                client_secret=APP_SECRET,
                name="fidelity",
                webhooks={key: WebhookEndpoint(endpoint=hooks.url) for key in WEBHOOK_KEYS},
            )
        )
        async with (
            Emulator(spec, webhook_retry_base=0.05, webhook_retry_max=0.2) as emu,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        ):
            return await Scenario(corpus, emu, http).play(hooks)
    finally:
        await hooks.stop()
