"""Request handlers shared by both WebSocket dialects.

Each handler takes the session and the request frame and returns the response body; errors are
raised (:class:`~lpm.emulator.world_errors.WorldError`, :class:`~lpm.protocol.requests.BodyError`) and
turned into error responses by the session.  Where the dialects differ (QueryMessages arrays,
raw brand shapes) the handler asks ``session.brand``.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from lpm.emulator import files, render
from lpm.emulator.context import Context
from lpm.emulator.hub import AgentStateSubscription, RoutingSubscription
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound
from lpm.emulator.ws_session import Handler, Session
from lpm.protocol import frames
from lpm.protocol import requests as pm
from lpm.protocol.types import Dialect, Notif, Req

#: Events per notification when replaying history to a consumer subscription.
REPLAY_CHUNK = 200
#: The ``?v=`` each WebSocket path documents: the consumer API v3 (Messaging Window API), the
#: brand API v2 (Messaging Agent API, lp-api) and v2.1 (node-agent-sdk).
API_VERSIONS: dict[Dialect, frozenset[str]] = {
    Dialect.CONSUMER_V3: frozenset({"3"}),
    Dialect.BRAND_V2: frozenset({"2", "2.1"}),
}


def check_api_version(ctx: Context, request: web.Request, dialect: Dialect) -> None:
    """Refuse a WebSocket upgrade whose ``?v=`` is not one its path documents (HTTP 400, before
    any identity is checked), unless lenient.  A path without ``v`` is served."""
    version = request.query.get("v")
    if version is None or version in API_VERSIONS[dialect] or ctx.world.lenient:
        return
    known = " or ".join(f"v={v}" for v in sorted(API_VERSIONS[dialect]))
    raise web.HTTPBadRequest(text=f"unsupported API version v={version[:16]} (this path serves {known})")


def _actor(session: Session) -> Any:
    assert session.actor is not None
    return session.actor


def get_clock(session: Session, req: frames.Request) -> Any:
    return {"currentTime": session.ctx.world.now_ms()}


def keep_alive(session: Session, req: frames.Request) -> Any:
    return "OK"


def request_conversation(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.ConsumerRequestConversationBody, req.body)
    conv = session.ctx.world.request_conversation(_actor(session), body, features=session.features)
    return {"conversationId": conv.conv_id}


def agent_request_conversation(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.AgentRequestConversationBody, req.body)
    conv = session.ctx.world.agent_request_conversation(_actor(session), body)
    return {"conversationId": conv.conv_id}


def update_conversation_field(session: Session, req: frames.Request) -> Any:
    body = pm.parse_update_conversation_field(req.body)
    return session.ctx.world.update_fields(_actor(session), body.conversationId, body.conversationField)


def publish_event(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.PublishEventBody, req.body)
    metadata = req.metadata if isinstance(req.metadata, list) else None
    return {"sequence": session.ctx.world.publish(_actor(session), body, metadata)}


def subscribe_messaging_events(session: Session, req: frames.Request) -> Any:
    """Consumers: replay the dialog from ``fromSeq`` then stream it.  Brands get live events as
    participants anyway, so for them this is a replay only."""
    body = pm.parse_body(pm.SubscribeMessagingEventsBody, req.body)
    world = session.ctx.world
    actor = _actor(session)
    conv, records = world.events(
        actor, body.dialogId, from_seq=body.fromSeq, conversation_id=body.conversationId
    )
    acc = world.accounts[conv.account_id]
    if session.brand:
        for record in records:
            session.notify(Notif.MESSAGING_EVENT, render.event_change(acc, record, brand=True))
    else:
        session.dialog_subs.add(body.dialogId)
        for start in range(0, len(records), REPLAY_CHUNK):
            session.notify(
                Notif.MESSAGING_EVENT, render.messaging_body(acc, records[start : start + REPLAY_CHUNK])
            )
    return {}


def query_messages(session: Session, req: frames.Request) -> Any:
    """Brand ``.ams.ms.QueryMessages``: the body of the response is the array of raw events."""
    body = pm.parse_body(pm.QueryMessagesBody, req.body)
    if body.maxQuantity < 0:
        raise BadRequest("maxQuantity must be >= 0")
    world = session.ctx.world
    conv, records = world.events(
        _actor(session),
        body.dialogId,
        newer_than=body.newerThanSequence,
        older_than=body.olderThanSequence,
        limit=body.maxQuantity,
        conversation_id=body.conversationId,
    )
    acc = world.accounts[conv.account_id]
    return [render.event_change(acc, r, brand=session.brand) for r in records]


def subscribe_ex_conversations(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.SubscribeExConversationsBody, req.body)
    actor = _actor(session)
    if body.brandId is not None and body.brandId != actor.account_id:
        raise BadRequest(f"brandId {body.brandId} does not match account {actor.account_id}")
    if body.subscriptionId is not None and body.subscriptionId in session.conv_subs:
        del session.conv_subs[body.subscriptionId]
    hub = session.ctx.hub
    sub = hub.subscribe_conversations(session, body)
    hub.snapshot(session, sub, session.ctx.settings.snapshot_limit)
    return {"subscriptionId": sub.subscription_id}


def unsubscribe_ex_conversations(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.UnsubscribeBody, req.body)
    if session.conv_subs.pop(body.subscriptionId, None) is None:
        raise NotFound(f"subscription {body.subscriptionId} not found")
    return "OK Unsubscribed successfully"


def set_user_profile(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.SetUserProfileBody, req.body)
    return session.ctx.world.set_user_profile(_actor(session), body)


def get_user_profile(session: Session, req: frames.Request) -> Any:
    target = pm.parse_user_profile_target(req.body)
    return session.ctx.world.get_user_profile(_actor(session), target)


def get_brand_profile(session: Session, req: frames.Request) -> Any:
    actor = _actor(session)
    return {"brandId": actor.account_id, "brandName": f"Brand {actor.account_id}", "logoUrl": ""}


def set_agent_state(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.SetAgentStateBody, req.body)
    session.ctx.world.set_agent_state(_actor(session), body)
    return "Agent state updated successfully"


def subscribe_agents_state(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.SubscribeAgentsStateBody, req.body)
    actor = _actor(session)
    acc = session.ctx.world.account(actor.account_id)
    me = acc.users[actor.id]
    if body.agentId:
        target = session.ctx.world.resolve_agent_user_id(acc, body.agentId, "agentId")
        if target.user_id != me.user_id and not me.is_manager:
            raise Forbidden("only managers may watch other agents' state")
        user_id: str | None = target.user_id
    else:
        user_id = None if me.is_manager else me.user_id
    sub = AgentStateSubscription(str(uuid.uuid4()), user_id, body.agentAvailability or None)
    session.agent_state_subs[sub.subscription_id] = sub
    session.ctx.hub.send_agent_state(session, sub)
    return {"subscriptionId": sub.subscription_id}


def subscribe_routing_tasks(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.SubscribeRoutingTasksBody, req.body)
    actor = _actor(session)
    acc = session.ctx.world.account(actor.account_id)
    if body.agentId is not None:
        target = session.ctx.world.resolve_agent_user_id(acc, body.agentId, "agentId")
        if target.user_id != actor.id:
            raise Forbidden("an agent can only subscribe to its own routing tasks")
    sub = RoutingSubscription(
        subscription_id=str(uuid.uuid4()),
        skill_id=str(body.skillId) if body.skillId is not None else None,
        conversation_id=body.conversationId,
    )
    session.routing_subs[sub.subscription_id] = sub
    session.ctx.hub.send_routing_snapshot(session, sub)
    # Counted after the snapshot: waiting tasks may ring this agent right away.
    session.ctx.world.routing_subscription(actor.account_id, actor.id, +1)
    return {"subscriptionId": sub.subscription_id}


def update_routing_task_subscription(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.UpdateRoutingTaskSubscriptionBody, req.body)
    sub = session.routing_subs.get(body.subscriptionId)
    if sub is None:
        raise NotFound(f"subscription {body.subscriptionId} not found")
    sub.skill_id = str(body.skillId) if body.skillId is not None else None
    sub.conversation_id = body.conversationId
    return "OK Subscription updated successfully"


def update_ring_state(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.UpdateRingStateBody, req.body)
    session.ctx.world.update_ring_state(_actor(session), body)
    return "Ring state updated successfully"


def generate_upload_url(session: Session, req: frames.Request) -> Any:
    raw_size = req.body.get("fileSize") if isinstance(req.body, dict) else None
    if not session.ctx.world.lenient and not files.is_file_size(raw_size):
        raise BadRequest("fileSize must be a whole number of bytes (a string of digits, as documented)")
    body = pm.parse_body(pm.GenerateUploadURLBody, req.body)
    return files.upload_url(session.ctx, _actor(session), body.fileSize, body.fileType)


def generate_download_url(session: Session, req: frames.Request) -> Any:
    body = pm.parse_body(pm.GenerateDownloadURLBody, req.body)
    return files.download_url(session.ctx, _actor(session), body.relativePath)


def generate_download_token(session: Session, req: frames.Request) -> Any:
    return {"token": {"readOtk": uuid.uuid4().hex}}


HANDLERS: dict[Req, Handler] = {
    Req.GET_CLOCK: get_clock,
    Req.KEEP_ALIVE: keep_alive,
    Req.CONSUMER_REQUEST_CONVERSATION: request_conversation,
    Req.AGENT_REQUEST_CONVERSATION: agent_request_conversation,
    Req.UPDATE_CONVERSATION_FIELD: update_conversation_field,
    Req.PUBLISH_EVENT: publish_event,
    Req.SUBSCRIBE_MESSAGING_EVENTS: subscribe_messaging_events,
    Req.QUERY_MESSAGES: query_messages,
    Req.SUBSCRIBE_EX_CONVERSATIONS: subscribe_ex_conversations,
    Req.UPDATE_EX_CONVERSATION_SUBSCRIPTION: subscribe_ex_conversations,
    Req.UNSUBSCRIBE_EX_CONVERSATIONS: unsubscribe_ex_conversations,
    Req.SET_USER_PROFILE: set_user_profile,
    Req.GET_USER_PROFILE: get_user_profile,
    Req.GET_BRAND_PROFILE: get_brand_profile,
    Req.SET_AGENT_STATE: set_agent_state,
    Req.SUBSCRIBE_AGENTS_STATE: subscribe_agents_state,
    Req.SUBSCRIBE_ROUTING_TASKS: subscribe_routing_tasks,
    Req.UPDATE_ROUTING_TASK_SUBSCRIPTION: update_routing_task_subscription,
    Req.UPDATE_RING_STATE: update_ring_state,
    Req.GENERATE_UPLOAD_URL: generate_upload_url,
    Req.GENERATE_DOWNLOAD_URL: generate_download_url,
    Req.GENERATE_DOWNLOAD_TOKEN: generate_download_token,
}
