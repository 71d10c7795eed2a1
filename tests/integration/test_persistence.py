"""An emulator restarted on the same SQLite file keeps every conversation, message and sequence."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup


async def test_restart_keeps_the_world(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    db = tmp_path / "world.sqlite"
    async with Emulator(db=db, port=0) as emu:
        port = emu.port
        jwt = await signup(http, emu)
        agent_login = await login(http, emu)
        agent = await RawSocket.brand(http, emu, agent_login["bearer"])
        await agent.request(".ams.routing.SetAgentState", {"availability": "ONLINE"}, expect=202)
        consumer = await RawSocket.consumer(http, emu, jwt)
        # Support (12): the agent's skill.  Its consumer does not declare MULTI_DIALOG: no survey.
        conv_id = (await consumer.request("cm.ConsumerRequestConversation", {"skillId": "12"}))["body"][
            "conversationId"
        ]
        for text in ("one", "two", "three"):
            await consumer.request(
                "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": text}}
            )
        await consumer.request(
            "cm.UpdateConversationField",
            {
                "conversationId": conv_id,
                "conversationField": {"field": "TTRField", "ttrType": "URGENT", "value": 0},
            },
        )
        await consumer.close()
        await agent.close()

    async with Emulator(db=db, port=port) as emu:
        # tokens issued before the restart are still valid: the signing key was persisted
        consumer = await RawSocket.consumer(http, emu, jwt)
        await consumer.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
        snapshot = await consumer.notification("cqm.ExConversationChangeNotification")
        [change] = snapshot["body"]["changes"]
        assert change["result"]["convId"] == conv_id
        assert change["result"]["conversationDetails"]["ttr"]["ttrType"] == "URGENT"
        await consumer.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id})
        replay = await consumer.notification("ms.MessagingEventNotification")
        assert [(c["sequence"], c["event"]["message"]) for c in replay["body"]["changes"]] == [
            (0, "one"),
            (1, "two"),
            (2, "three"),
        ]
        pub = await consumer.request(
            "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "four"}}
        )
        assert pub["body"] == {"sequence": 3}
        await consumer.request("cm.ConsumerRequestConversation", expect=400)  # still the open one
        # the agent's login session survived too; its state was restored, and the waiting
        # conversation rings it as soon as it subscribes to routing tasks
        agent = await RawSocket.brand(http, emu, agent_login["bearer"])
        await agent.request(".ams.routing.SubscribeRoutingTasks", {"channelType": "MESSAGING"})
        ringing = None
        while ringing is None:
            note = await agent.notification(".ams.routing.RoutingTaskNotification")
            for ch in note["body"]["changes"]:
                if ch["result"]["conversationId"] == conv_id:
                    ringing = ch["result"]["ringsDetails"][0]
        assert ringing["ringState"] == "WAITING"
        await consumer.close()
        await agent.close()
