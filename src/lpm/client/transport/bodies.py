"""UMS request bodies that several transports (the WebSocket dialects, the Send API) build the
same way, as the protocol's structs (:mod:`lpm.protocol.requests`); each transport sends them its
own way: the socket encodes the structs directly, the Send API posts their dict form (``*_body``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from lpm.protocol.requests import (
    CampaignInfo,
    ConsumerRequestConversationBody,
    publish_event_request,
)

__all__ = [
    "PROFILE_OK",
    "as_json",
    "conversation_request",
    "publish_request",
    "user_profile_body",
]

#: The answer to a successful ``userprofile.SetUserProfile``.
PROFILE_OK = "OK User Profile set successfully"
#: Python names of the profile fields and their wire names.
_PROFILE_NAMES = {"first_name": "firstName", "last_name": "lastName", "nick_name": "nickName"}

#: The ``ms.PublishEvent`` body of an event dict (``messageAudience`` only when it is not ``ALL``).
publish_request = publish_event_request


def as_json(body: msgspec.Struct) -> dict[str, Any]:
    """A request body struct as the JSON object it encodes to (for senders that take dicts:
    aiohttp's ``json=``, the Send API's batched frames)."""
    return dict(msgspec.to_builtins(body))


def conversation_request(
    account_id: str,
    skill_id: str | None,
    context: Mapping[str, Any] | None,
    campaign_info: Mapping[str, Any] | None,
    *,
    ttr_def_name: str,
    client_properties: Mapping[str, Any] | None = None,
) -> ConsumerRequestConversationBody:
    """The ``cm.ConsumerRequestConversation`` body: a ``CustomContext`` named ``lpm-python-sdk``
    unless ``context`` says otherwise (with ``client_properties`` when given), skill ``-1``
    (any) when ``skill_id`` is None.  The context stays a dict (its shape depends on its type)."""
    conversation_context = dict(context or {})
    conversation_context.setdefault("type", "CustomContext")
    if conversation_context["type"] == "CustomContext":
        conversation_context.setdefault("name", "lpm-python-sdk")
    if client_properties:
        conversation_context["clientProperties"] = {"type": ".ClientProperties", **client_properties}
    return ConsumerRequestConversationBody(
        ttrDefName=ttr_def_name,
        channelType="MESSAGING",
        skillId=str(skill_id) if skill_id is not None else "-1",
        brandId=account_id,
        conversationContext=conversation_context,
        campaignInfo=(
            CampaignInfo(
                campaignId=campaign_info.get("campaignId"), engagementId=campaign_info.get("engagementId")
            )
            if campaign_info
            else None
        ),
    )


def user_profile_body(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The ``userprofile.SetUserProfile`` body of ``first_name``, ``last_name``, ``nick_name`` (or
    wire names, passed as they are: a dict, since any wire name goes through)."""
    return {_PROFILE_NAMES.get(k, k): v for k, v in profile.items()}
