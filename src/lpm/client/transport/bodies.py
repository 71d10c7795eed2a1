"""UMS request bodies that several transports (the WebSocket dialects, the Send API) build the
same way; each transport sends them its own way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PROFILE_OK", "conversation_request_body", "publish_body", "user_profile_body"]

#: The answer to a successful ``userprofile.SetUserProfile``.
PROFILE_OK = "OK User Profile set successfully"
#: Python names of the profile fields and their wire names.
_PROFILE_NAMES = {"first_name": "firstName", "last_name": "lastName", "nick_name": "nickName"}


def publish_body(
    conversation_id: str, dialog_id: str, event: Mapping[str, Any], audience: str = "ALL"
) -> dict[str, Any]:
    """The ``ms.PublishEvent`` body (``messageAudience`` only when it is not ``ALL``)."""
    body: dict[str, Any] = {"dialogId": dialog_id, "conversationId": conversation_id, "event": event}
    if audience != "ALL":
        body["messageAudience"] = str(audience)
    return body


def conversation_request_body(
    account_id: str,
    skill_id: str | None,
    context: Mapping[str, Any] | None,
    campaign_info: Mapping[str, Any] | None,
    *,
    ttr_def_name: str,
    client_properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``cm.ConsumerRequestConversation`` body: a ``CustomContext`` named ``lpm-python-sdk``
    unless ``context`` says otherwise (with ``client_properties`` when given), skill ``-1``
    (any) when ``skill_id`` is None."""
    conversation_context = dict(context or {})
    conversation_context.setdefault("type", "CustomContext")
    if conversation_context["type"] == "CustomContext":
        conversation_context.setdefault("name", "lpm-python-sdk")
    if client_properties:
        conversation_context["clientProperties"] = {"type": ".ClientProperties", **client_properties}
    body: dict[str, Any] = {
        "ttrDefName": ttr_def_name,
        "channelType": "MESSAGING",
        "skillId": str(skill_id) if skill_id is not None else "-1",
        "brandId": account_id,
        "conversationContext": conversation_context,
    }
    if campaign_info:
        body["campaignInfo"] = dict(campaign_info)
    return body


def user_profile_body(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The ``userprofile.SetUserProfile`` body of ``first_name``, ``last_name``, ``nick_name`` (or
    wire names, passed as they are)."""
    return {_PROFILE_NAMES.get(k, k): v for k, v in profile.items()}
