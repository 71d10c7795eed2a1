"""A Connector API application, written against LivePerson's published API only, runs its whole
life on the emulator.

The application side (:class:`ConnectorApp`) is plain aiohttp: no ``lpm`` class on its side. It
discovers its services through CSDS, installs itself with the App Installation API (an
administrator's agentVep login), gets an AppJWT from sentinel and a ConsumerJWS from the IdP,
opens a conversation with SDEs over the Send API, sends a text and a file, receives the agent's
reply, its accept status and the close on its own webhooks endpoint (signed, ``body.changes[0]``
at the top of each POST body), finds the conversation with its messages in the Messaging
Interactions API, then edits and removes its installation under revisions (``ac-revision`` /
``If-Match``).  The agent on the other side is the SDK's REST connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import lpm
from lpm.emulator.app import Emulator

ACC = "12345678"
EVENT_KEYS = [
    "cqm.ExConversationChangeNotification",
    "ms.MessagingEventNotification.ContentEvent",
    "ms.MessagingEventNotification.RichContentEvent",
    "ms.MessagingEventNotification.AcceptStatusEvent",
    "ms.MessagingEventNotification.ChatStateEvent",
]
SDES = [
    {"type": "ctmrinfo", "info": {"customerId": "cust-77", "ctype": "vip", "balance": 120.5}},
    {
        "type": "personal",
        "personal": {
            "firstname": "Grace",
            "lastname": "Hopper",
            "contacts": [{"email": "grace@example.com"}],
        },
    },
]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
TIMEOUT = 10.0


class ConnectorApp:
    """A connector: its HTTP client, its webhooks server, and what LivePerson told it."""

    def __init__(self, http: aiohttp.ClientSession, csds: str, account: str) -> None:
        self.http = http
        self.csds = csds
        self.account = account
        self.services: dict[str, str] = {}
        self.client_id = ""
        self.client_secret = ""
        self.app_jwt = ""
        self.consumer_jws = ""
        self.hooks: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._arrived = asyncio.Condition()
        self.webhook_url = ""
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- its own server

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/lp/webhooks", self._webhook)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.webhook_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/lp/webhooks"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        digest = hmac.new(self.client_secret.encode(), raw, hashlib.sha1).digest()
        expected = "sha1=" + base64.b64encode(digest).decode()
        if not hmac.compare_digest(request.headers.get("x-liveperson-signature", ""), expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        async with self._arrived:
            self.hooks.append(json.loads(raw))
            self._arrived.notify_all()
        return web.Response(status=200)

    async def hook(self, wanted: Callable[[dict[str, Any], dict[str, Any]], bool]) -> dict[str, Any]:
        """The first webhook whose ``(type, body.changes[0])`` satisfies ``wanted``."""

        def find() -> dict[str, Any] | None:
            for hook in self.hooks:
                change = hook["body"]["changes"][0]
                if wanted(hook, change):
                    return change  # type: ignore[no-any-return]
            return None

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(find), TIMEOUT)
            found = find()
            assert found is not None
            return found

    # ---------------------------------------------------------------- LivePerson

    def url(self, service: str, path: str) -> str:
        return f"http://{self.services[service]}{path}"

    async def discover(self) -> None:
        async with self.http.get(
            f"{self.csds}/api/account/{self.account}/service/baseURI.json?version=1.0"
        ) as r:
            assert r.status == 200
            self.services = {s["service"]: s["baseURI"] for s in (await r.json())["baseURIs"]}

    async def admin_bearer(self, username: str, password: str) -> str:
        login = self.url("agentVep", f"/api/account/{self.account}/login?v=1.3")
        async with self.http.post(login, json={"username": username, "password": password}) as r:
            assert r.status == 200
            bearer: str = (await r.json())["bearer"]
            return bearer

    def installations(self, suffix: str = "") -> str:
        base = f"/api/account/{self.account}/configuration/app-install/installations"
        return self.url("accountConfigReadWrite", base + suffix)

    async def install(self, bearer: str) -> str:
        """Install the app with every webhook pointing at our server; returns the ac-revision."""
        hooks: dict[str, Any] = {k: {"endpoint": self.webhook_url} for k in EVENT_KEYS}
        hooks["retry"] = {"retention_time": 30}
        body = {"client_name": "acme-connector", "capabilities": {"webhooks": hooks}}
        async with self.http.post(
            self.installations(), json=body, headers={"Authorization": f"Bearer {bearer}"}
        ) as r:
            assert r.status == 201, await r.text()
            install = await r.json()
            self.client_id, self.client_secret = install["client_id"], install["client_secret"]
            return r.headers["ac-revision"]

    async def authorize(self, ext_consumer_id: str) -> None:
        token_url = self.url("sentinel", f"/sentinel/api/account/{self.account}/app/token")
        async with self.http.post(
            token_url + "?v=1.0&grant_type=client_credentials",
            data={"client_id": self.client_id, "client_secret": self.client_secret},
        ) as r:
            assert r.status == 200
            self.app_jwt = (await r.json())["access_token"]
        async with self.http.post(
            self.url("idp", f"/api/account/{self.account}/consumer?v=1.0"),
            json={"ext_consumer_id": ext_consumer_id},
            headers={"Authorization": self.app_jwt},
        ) as r:
            assert r.status == 201
            self.consumer_jws = (await r.json())["token"]

    async def send_api(self, frames: Any, *, conversation: bool = False) -> Any:
        path = "/messaging/consumer/conversation" + ("" if conversation else "/send")
        headers = {
            "Authorization": self.app_jwt,
            "X-LP-ON-BEHALF": self.consumer_jws,
            "Client-Properties": json.dumps(
                {"type": ".ClientProperties", "deviceFamily": "MOBILE", "os": "ANDROID"}
            ),
        }
        url = self.url("asyncMessagingEnt", f"/api/account/{self.account}{path}?v=3")
        async with self.http.post(url, json=frames, headers=headers) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def open_conversation(self) -> str:
        answer = await self.send_api(
            [
                {
                    "kind": "req",
                    "id": "1,",
                    "type": "userprofile.SetUserProfile",
                    "body": {"firstName": "Grace", "authenticatedData": {"lp_sdes": SDES}},
                },
                {
                    "kind": "req",
                    "id": "2,",
                    "type": "cm.ConsumerRequestConversation",
                    "body": {
                        "ttrDefName": "NORMAL",
                        "campaignInfo": {"campaignId": "99999", "engagementId": "888888"},
                        "conversationContext": {"type": "SharkContext", "lang": "en-US"},
                        "channelType": "MESSAGING",
                        "skillId": "12",
                    },
                },
            ],
            conversation=True,
        )
        assert [slot["code"] for slot in answer] == ["OK", "OK"], answer
        conversation_id: str = answer[1]["body"]["conversationId"]
        return conversation_id

    async def publish(self, conversation_id: str, event: dict[str, Any]) -> int:
        answer = await self.send_api(
            {
                "kind": "req",
                "id": "p",
                "type": "ms.PublishEvent",
                "body": {"dialogId": conversation_id, "conversationId": conversation_id, "event": event},
            }
        )
        assert answer["code"] == "OK", answer
        sequence: int = answer["body"]["sequence"]
        return sequence

    async def send_file(self, conversation_id: str, data: bytes, caption: str) -> int:
        upload = await self.send_api(
            {
                "kind": "req",
                "id": "u",
                "type": "ms.GenerateURLForUploadFile",
                "body": {"fileSize": len(data), "fileType": "PNG"},
            }
        )
        target = upload["body"]
        async with self.http.put(
            self.url("swift", target["relativePath"]), params=target["queryParams"], data=data
        ) as r:
            assert r.status == 201
        message = {"caption": caption, "relativePath": target["relativePath"], "fileType": "PNG"}
        return await self.publish(
            conversation_id, {"type": "ContentEvent", "contentType": "hosted/file", "message": message}
        )

    async def search(self, path: str, body: dict[str, Any], **query: str) -> tuple[dict[str, Any], Any]:
        url = self.url("msgHist", f"/messaging_history/api/account/{self.account}/conversations/{path}")
        async with self.http.post(
            url, json=body, params=query, headers={"Authorization": f"Bearer {self.app_jwt}"}
        ) as r:
            return {"status": r.status}, await r.json()

    async def revision(self, bearer: str) -> str:
        async with self.http.get(self.installations(), headers={"Authorization": f"Bearer {bearer}"}) as r:
            assert r.status == 200
            return r.headers["ac-revision"]


@pytest.fixture
async def connector(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[ConnectorApp]:
    app = ConnectorApp(http, emulator.base_url, ACC)
    await app.start()
    yield app
    await app.stop()


def agent_connection(emu: Emulator) -> lpm.BrandRestConnection:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        auth_data={"username": "agent", "password": "agent-password"},
        csds_domain=emu.csds_domain,
    )
    assert isinstance(conn, lpm.BrandRestConnection)
    return conn


async def test_connector_application_lifecycle(emulator: Emulator, connector: ConnectorApp) -> None:
    app = connector
    started = int(time.time() * 1000)
    await app.discover()
    assert {"accountConfigReadWrite", "sentinel", "idp", "asyncMessagingEnt", "msgHist", "swift"} <= set(
        app.services
    )

    # Install, authorize (AppJWT, ConsumerJWS), open a conversation with SDEs.
    admin = await app.admin_bearer("agent", "agent-password")
    revision = await app.install(admin)
    await app.authorize("customer-77")
    conversation_id = await app.open_conversation()
    created = await app.hook(
        lambda h, c: (
            h["type"] == "cqm.ExConversationChangeNotification" and c["result"]["convId"] == conversation_id
        )
    )
    assert created["type"] == "UPSERT" and created["result"]["conversationDetails"]["skillId"] == "12"

    # Text and a file.
    assert (
        await app.publish(
            conversation_id,
            {"type": "ContentEvent", "contentType": "text/plain", "message": "My order is late"},
        )
        == 0
    )
    assert await app.send_file(conversation_id, PNG, "the receipt") == 1

    # The agent (the SDK over REST) joins, reads, answers.
    async with agent_connection(emulator) as agent:
        view = await agent.get_conversation_by_id(conversation_id)
        await view.join(lpm.ParticipantRole.ASSIGNED_AGENT)
        await view.main_dialog.send_read_status([0, 1])
        reply_sequence = await view.send_message("Sorry about that, Grace - it ships today")

        reply = await app.hook(
            lambda h, c: (
                c.get("event", {}).get("type") == "ContentEvent"
                and c["originatorMetadata"]["role"] == "ASSIGNED_AGENT"
            )
        )
        assert reply["event"]["message"] == "Sorry about that, Grace - it ships today"
        assert (reply["sequence"], reply["conversationId"], reply["dialogId"]) == (
            reply_sequence,
            conversation_id,
            conversation_id,
        )
        read = await app.hook(lambda h, c: c.get("event", {}).get("type") == "AcceptStatusEvent")
        assert read["event"] == {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [0, 1]}
        # The application acknowledges the reply, then the agent closes the conversation.
        await app.publish(
            conversation_id, {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [reply_sequence]}
        )
        await view.close()
    closed = await app.hook(
        lambda h, c: (
            h["type"] == "cqm.ExConversationChangeNotification"
            and c["result"]["conversationDetails"]["stage"] == "CLOSE"
        )
    )
    assert closed["result"]["convId"] == conversation_id
    assert app.bad_signatures == 0

    # The history: found by id, by keyword and by time, with its messages, agent and SDEs.
    status, by_id = await app.search("conversation/search", {"conversationId": conversation_id})
    assert status["status"] == 200, by_id
    assert by_id["_metadata"]["count"] == 1
    record = by_id["conversationHistoryRecords"][0]
    info = record["info"]
    assert (
        info["conversationId"] == conversation_id
        and info["status"] == "CLOSE"
        and info["closeReason"] == "AGENT"
    )
    assert info["latestSkillId"] == 12 and info["latestSkillName"] == "support"
    assert info["latestAgentLoginName"] == "agent" and info["device"] == "MOBILE" and info["source"] == "APP"
    messages = record["messageRecords"]
    assert [m["type"] for m in messages] == ["TEXT_PLAIN", "HOSTED_FILE", "TEXT_PLAIN"]
    assert (
        messages[0]["messageData"]["msg"]["text"] == "My order is late"
        and messages[0]["sentBy"] == "Consumer"
    )
    assert messages[1]["messageData"]["file"]["caption"] == "the receipt"
    assert messages[2]["sentBy"] == "Agent" and messages[2]["seq"] == reply_sequence
    assert [p["agentLoginName"] for p in record["agentParticipants"]] == ["agent"]
    assert record["agentParticipants"][0]["permission"] == "ASSIGNED_AGENT"
    assert record["consumerParticipants"][0]["firstName"] == "Grace"
    statuses = {
        (s["seq"], s["participantType"], s["messageDeliveryStatus"]) for s in record["messageStatuses"]
    }
    assert {(0, "Agent", "READ"), (1, "Agent", "READ"), (reply_sequence, "Consumer", "READ")} <= statuses
    sdes = {e["sdeType"]: e for e in record["sdes"]["events"]}
    assert sdes["CUSTOMER_INFO"]["customerInfo"]["customerInfo"]["customerId"] == "cust-77"
    assert sdes["CUSTOMER_INFO"]["customerInfo"]["customerInfo"]["customerType"] == "vip"
    assert sdes["PERSONAL_INFO"]["personalInfo"]["personalInfo"]["surname"] == "Hopper"
    status, by_keyword = await app.search(
        "search", {"start": {"from": started - 60_000, "to": -1}, "keyword": "ORDER is late"}
    )
    assert [r["info"]["conversationId"] for r in by_keyword["conversationHistoryRecords"]] == [
        conversation_id
    ]
    status, other = await app.search(
        "search", {"start": {"from": started - 60_000, "to": -1}, "keyword": "refund"}
    )
    assert other["_metadata"]["count"] == 0

    # Edit the installation (revisions), then uninstall.
    headers = {"Authorization": f"Bearer {admin}"}
    assert await app.revision(admin) == revision
    hooks = {"ms.MessagingEventNotification.ContentEvent": {"endpoint": app.webhook_url}}
    body = {"client_name": "acme-connector-v2", "capabilities": {"webhooks": hooks}}
    async with app.http.put(app.installations(f"/{app.client_id}"), json=body, headers=headers) as r:
        assert r.status == 428
    async with app.http.put(
        app.installations(f"/{app.client_id}"), json=body, headers={**headers, "If-Match": revision}
    ) as r:
        assert r.status == 200 and (await r.json())["client_name"] == "acme-connector-v2"
        edited = r.headers["ac-revision"]
    assert int(edited) == int(revision) + 1
    async with app.http.delete(
        app.installations(f"/{app.client_id}"), headers={**headers, "If-Match": revision}
    ) as r:
        assert r.status == 412 and r.headers["ac-revision"] == edited
    async with app.http.delete(
        app.installations(f"/{app.client_id}"), headers={**headers, "If-Match": edited}
    ) as r:
        assert r.status == 204
    async with app.http.post(
        app.url("sentinel", f"/sentinel/api/account/{ACC}/app/token?v=1.0&grant_type=client_credentials"),
        data={"client_id": app.client_id, "client_secret": app.client_secret},
    ) as r:
        assert r.status == 401  # uninstalled: its credentials are gone
