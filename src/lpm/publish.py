"""``lpm.publish_message``: publish one text message over UMS REST v1, without a connection.

For stateless code (a webhook handler, a serverless function) that holds a token and knows the
conversation and dialog ids::

    response = await lpm.publish_message(account_id, token, conversation_id, dialog_id, "hello",
                                         csds_domain=...)
    print(response.sequence)

``token`` is either an agent's bearer (agentVep login; the message is the agent's) or a server
JWT — an AppJWT from sentinel for an app install (``lpm.client.auth.idp.sentinel_app_jwt``).  With
a server JWT the message must say whom it speaks for: ``originator_role`` (and
``originator_id``, the participant's id) are required and checked before any I/O.  The token is
recognised as an AppJWT by its claims, read without verification (the server verifies it):
issuer ``Sentinel`` or an ``azp`` (the app's client id) claim.

Every argument is validated before any I/O (:class:`~lpm.errors.ConfigurationError` naming the
argument).  A refusal raises :class:`~lpm.errors.RequestError` (``code`` the HTTP status,
``request_type`` ``"REST POST /v1/conversations/{cid}/dialogs/{did}/messages"``); a transport
failure :class:`~lpm.errors.HttpError`.  The token never appears in messages or logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt

from lpm.client.auth.csds import CSDS, ServiceName
from lpm.client.auth.http import HttpSettings, SslOption
from lpm.client.transport.base import sequence_of
from lpm.client.transport.rest import MESSAGES, path_segment, request_error, rest_request, strip_bearer
from lpm.enums import MessageAudience, ParticipantRole
from lpm.errors import ConfigurationError

__all__ = ["PublishResponse", "is_server_jwt", "publish_message"]

#: The issuer of sentinel's AppJWTs.
SENTINEL_ISSUER = "Sentinel"
_AUDIENCES = frozenset({MessageAudience.ALL, MessageAudience.AGENTS_AND_MANAGERS})


@dataclass(frozen=True, slots=True)
class PublishResponse:
    """The HTTP answer to a successful publish."""

    #: HTTP status (201).
    status: int
    #: The response's HTTP headers.
    headers: Mapping[str, str] = field(repr=False)
    #: The decoded JSON body (``{"sequence": N}``).
    body: Any
    #: The message's sequence in its dialog (None if the body carried none).
    sequence: int | None


def is_server_jwt(token: str) -> bool:
    """Whether ``token`` is a server JWT (a sentinel AppJWT), judged from its unverified claims:
    issuer ``Sentinel`` or an ``azp`` claim.  An opaque agent bearer is not."""
    try:
        claims = pyjwt.decode(strip_bearer(token), options={"verify_signature": False})
    except pyjwt.PyJWTError:
        return False
    return isinstance(claims, dict) and (claims.get("iss") == SENTINEL_ISSUER or "azp" in claims)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string, got {type(value).__name__}")
    return value


def _validate(
    *,
    account_id: Any,
    token: Any,
    conversation_id: Any,
    dialog_id: Any,
    text: Any,
    metadata: Any,
    message_audience: Any,
    quick_replies: Any,
    originator_id: Any,
    originator_role: Any,
    csds_domain: Any,
    domains: Any,
) -> None:
    for name, value in (
        ("account_id", account_id),
        ("token", token),
        ("conversation_id", conversation_id),
        ("dialog_id", dialog_id),
        ("text", text),
    ):
        _text(name, value)
    if metadata is not None and (
        not isinstance(metadata, list) or not all(isinstance(m, Mapping) for m in metadata)
    ):
        raise ConfigurationError("metadata must be a list of objects (UMS metadata schemas) or None")
    if message_audience is not None and message_audience not in _AUDIENCES:
        raise ConfigurationError(
            f"message_audience must be MessageAudience.ALL or AGENTS_AND_MANAGERS, got {message_audience!r}"
        )
    if quick_replies is not None and not isinstance(quick_replies, Mapping):
        raise ConfigurationError("quick_replies must be a dict (structured content quick replies) or None")
    if originator_id is not None:
        _text("originator_id", originator_id)
    if originator_role is not None and originator_role not in set(ParticipantRole):
        raise ConfigurationError(f"originator_role must be a ParticipantRole value, got {originator_role!r}")
    if csds_domain is not None:
        _text("csds_domain", csds_domain)
    if domains is not None and (
        not isinstance(domains, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in domains.items())
    ):
        raise ConfigurationError("domains must map service names to hosts")
    if is_server_jwt(token):
        if originator_role is None:
            raise ConfigurationError(
                "originator_role is required when the token is a server JWT (AppJWT): say whom the "
                "message speaks for (e.g. ParticipantRole.ASSIGNED_AGENT)"
            )
        if originator_id is None:
            raise ConfigurationError(
                "originator_id is required when the token is a server JWT (AppJWT): the id of the "
                "participant the message speaks for"
            )


async def publish_message(
    account_id: str,
    token: str,
    conversation_id: str,
    dialog_id: str,
    text: str,
    metadata: list[dict[str, Any]] | None = None,
    message_audience: str | None = None,
    quick_replies: dict[str, Any] | None = None,
    originator_id: str | None = None,
    originator_role: str | None = None,
    *,
    csds_domain: str | None = None,
    ssl: SslOption = None,
    domains: Mapping[str, str] | None = None,
) -> PublishResponse:
    """Publish ``text`` as a ``PLAIN_TEXT`` message in a dialog (the MAIN dialog's id is the
    conversation id); returns the HTTP answer with the message's ``sequence``.

    ``message_audience`` is :class:`lpm.MessageAudience` (``AGENTS_AND_MANAGERS`` for a private
    message), ``quick_replies`` structured-content quick replies, ``metadata`` a list of UMS
    metadata objects.  ``originator_id`` / ``originator_role`` name the participant a server JWT
    speaks for (required with one; ignored by the server with an agent bearer).
    ``csds_domain``, ``ssl`` and ``domains`` are the connection options of the same names
    (default: LivePerson's CSDS).  See the module docstring for errors.
    """
    _validate(
        account_id=account_id,
        token=token,
        conversation_id=conversation_id,
        dialog_id=dialog_id,
        text=text,
        metadata=metadata,
        message_audience=message_audience,
        quick_replies=quick_replies,
        originator_id=originator_id,
        originator_role=originator_role,
        csds_domain=csds_domain,
        domains=domains,
    )
    bearer = strip_bearer(token)
    body: dict[str, Any] = {"type": "PLAIN_TEXT", "content": {"text": text}}
    if metadata:
        body["metadata"] = [dict(m) for m in metadata]
    if message_audience is not None:
        body["messageAudience"] = str(message_audience)
    if quick_replies is not None:
        body["quickReplies"] = dict(quick_replies)
    if originator_id is not None:
        body["originatorId"] = originator_id
    if originator_role is not None:
        body["originatorRole"] = str(originator_role)
    request_type = f"REST POST {MESSAGES}"
    path = MESSAGES.format(cid=path_segment(conversation_id), did=path_segment(dialog_id))
    async with HttpSettings(csds_domain, ssl=ssl) as http:
        host = await CSDS.lookup(account_id, ServiceName.ASYNC_MESSAGING_ENT, http=http, domains=domains)
        response = await rest_request(
            http,
            http.base_url(host) + path,
            method="POST",
            request_type=request_type,
            account_id=account_id,
            token=bearer,
            json=body,
        )
    if response.status not in (200, 201):
        raise request_error(response.status, request_type, response.body, conversation_id, dialog_id)
    return PublishResponse(
        status=response.status,
        headers=dict(response.headers),
        body=response.body,
        sequence=sequence_of(response.body),
    )
