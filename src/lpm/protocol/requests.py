"""Typed request bodies of both dialects (msgspec Structs), spelled once for both sides.

The emulator validates what clients send with them; the SDK builds its requests as the same
structs, which the frame encoder writes directly (:func:`lpm.protocol.frames.encode`).
``omit_defaults`` leaves a field at its default off the wire, so a field the SDK always sends
but a client may omit has a ``default_factory`` default (:func:`_sent_default`): absent on
decode it takes the default, and it is always encoded.

Two bodies are generic over their open part: :class:`PublishEventRequest` (the ``event``) and
:class:`UpdateConversationFieldRequest` (the fields).  The emulator decodes their concrete
subclasses (:class:`PublishEventBody`, :class:`UpdateConversationFieldBody`), whose open part is
the tagged union of the known events / fields; the SDK sends the dicts its object model builds
there (a struct would drop keys it does not know).

``parse_body(model, raw)`` validates a decoded JSON body and raises :class:`BodyError` with a
message that names the offending field.  Unknown fields are ignored (clients must be free to
send more than we know); unknown *enum* values are kept as strings wherever the platform may
add values, and rejected only where the value drives behaviour.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import msgspec

T = TypeVar("T")
#: The ``event`` of a :class:`PublishEventRequest`.
E = TypeVar("E")
#: One ``conversationField`` of an :class:`UpdateConversationFieldRequest`.
F = TypeVar("F")


class BodyError(ValueError):
    """A request body that does not fit its schema."""


def parse_body(model: type[T], raw: Any) -> T:
    """Validate ``raw`` (decoded JSON) as ``model``; ``None`` is treated as ``{}``."""
    try:
        return msgspec.convert({} if raw is None else raw, model, strict=False)
    except msgspec.ValidationError as exc:
        raise BodyError(str(exc)) from None


def as_list(value: Any) -> list[Any]:
    """Protocol rule: "an array containing a single element may be sent as the element itself"."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class _Body(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    pass


def _sent_default(value: T) -> T:
    """A default a decoded body takes when the field is absent, which the encoder still writes
    (``omit_defaults`` drops only defaults given by value, compared by identity, and empty
    collections: a ``default_factory`` of a scalar never matches)."""
    return msgspec.field(default_factory=lambda: value)


# ---------------------------------------------------------------- messaging events


class ContentEvent(_Body, tag="ContentEvent", tag_field="type"):
    message: Any
    contentType: str = "text/plain"
    quickReplies: Any = None


class RichContentEvent(_Body, tag="RichContentEvent", tag_field="type"):
    content: dict[str, Any]
    quickReplies: Any = None


class ChatStateEvent(_Body, tag="ChatStateEvent", tag_field="type"):
    chatState: str


class AcceptStatusEvent(_Body, tag="AcceptStatusEvent", tag_field="type"):
    status: str
    sequenceList: list[int]


MessagingEvent = ContentEvent | RichContentEvent | ChatStateEvent | AcceptStatusEvent

CHAT_STATES = frozenset({"ACTIVE", "INACTIVE", "GONE", "COMPOSING", "PAUSE", "BACKGROUND"})
MESSAGE_AUDIENCES = frozenset({"ALL", "AGENTS_AND_MANAGERS"})


class PublishEventRequest(_Body, Generic[E], kw_only=True):
    """``ms.PublishEvent``; ``messageAudience`` is on the wire only when it is not ``ALL``."""

    dialogId: str
    conversationId: str | None = None
    event: E
    messageAudience: str = "ALL"


class PublishEventBody(PublishEventRequest[MessagingEvent]):
    """A ``PublishEvent`` as the emulator validates it: the event is one of :data:`MessagingEvent`."""


def publish_event_request(
    conversation_id: str, dialog_id: str, event: E, audience: str = "ALL"
) -> PublishEventRequest[E]:
    """The ``ms.PublishEvent`` body of ``event`` (the SDK passes its event dict)."""
    if audience == "ALL":
        return PublishEventRequest(dialogId=dialog_id, conversationId=conversation_id, event=event)
    return PublishEventRequest(
        dialogId=dialog_id, conversationId=conversation_id, event=event, messageAudience=str(audience)
    )


class SubscribeMessagingEventsBody(_Body):
    dialogId: str
    conversationId: str | None = None
    fromSeq: int = _sent_default(0)


class QueryMessagesBody(_Body):
    dialogId: str
    conversationId: str | None = None
    maxQuantity: int = 100
    newerThanSequence: int | None = None
    olderThanSequence: int | None = None


# ---------------------------------------------------------------- conversations


class CampaignInfo(_Body):
    campaignId: str | int | None = None
    engagementId: str | int | None = None


class ConsumerRequestConversationBody(_Body):
    brandId: str | None = None
    skillId: str | int | None = None
    channelType: str = _sent_default("MESSAGING")
    ttrDefName: str | None = None
    campaignInfo: CampaignInfo | None = None
    conversationContext: dict[str, Any] | None = None
    context: Any = None


class AgentRequestConversationBody(_Body):
    consumerId: str
    skillId: str | int | None = None
    channelType: str = "MESSAGING"
    ttrDefName: str | None = None
    conversationContext: dict[str, Any] | None = None
    context: Any = None


class ConversationStateField(_Body, tag="ConversationStateField", tag_field="field"):
    conversationState: str


class StageField(_Body, tag="Stage", tag_field="field"):
    conversationState: str


class DialogSpec(_Body):
    dialogId: str | None = None
    state: str | None = None
    closedCause: str | None = None
    closedBy: str | None = None
    dialogType: str | None = None
    channelType: str | None = None
    metaData: dict[str, Any] | None = None


class DialogChangeField(_Body, tag="DialogChange", tag_field="field"):
    type: str
    dialog: DialogSpec
    dialogId: str | None = None


class ParticipantsChangeField(_Body, tag="ParticipantsChange", tag_field="field"):
    type: str
    role: str
    userId: str | None = None


class SkillField(_Body, tag="Skill", tag_field="field"):
    skill: str | int
    type: str = "UPDATE"


class TTRField(_Body, tag="TTRField", tag_field="field"):
    ttrType: str
    value: int = 0


class CSATRateField(_Body, tag="CSATRate", tag_field="field"):
    csatRate: int
    csatResolutionConfirmation: bool | None = None
    status: str = "FILLED"


class DelayField(_Body, tag="DelayField", tag_field="field"):
    type: str
    tillWhen: int


class ManualETTRField(_Body, tag="ManualETTR", tag_field="field"):
    time: int | None = None


class NoteField(_Body, tag="Note", tag_field="field"):
    note: str


class TopicField(_Body, tag="TopicField", tag_field="field"):
    note: str


class ConversationHandlerField(_Body, tag="ConversationHandler", tag_field="field"):
    conversationHandlerDetails: dict[str, Any] | None = None


ConversationField = (
    ConversationStateField
    | StageField
    | DialogChangeField
    | ParticipantsChangeField
    | SkillField
    | TTRField
    | CSATRateField
    | DelayField
    | ManualETTRField
    | NoteField
    | TopicField
    | ConversationHandlerField
)


class UpdateConversationFieldRequest(_Body, Generic[F]):
    """``cm.UpdateConversationField``: one or more fields of one conversation."""

    conversationId: str
    conversationField: list[F]


class UpdateConversationFieldBody(UpdateConversationFieldRequest[ConversationField]):
    """An ``UpdateConversationField`` as the emulator validates it: each field is one of
    :data:`ConversationField`."""


def parse_update_conversation_field(raw: Any) -> UpdateConversationFieldBody:
    """Like :func:`parse_body`, accepting a single field object instead of an array."""
    if isinstance(raw, dict) and isinstance(raw.get("conversationField"), dict):
        raw = {**raw, "conversationField": [raw["conversationField"]]}
    return parse_body(UpdateConversationFieldBody, raw)


# ---------------------------------------------------------------- subscriptions


class SubscribeExConversationsBody(_Body):
    convState: list[str] | None = None
    stage: list[str] | None = None
    agentIds: list[str] | None = None
    #: Filters the emulator does not apply (they are accepted, as UMS accepts them).
    dialogTypes: Any = None
    conversationId: Any = None
    consumerId: str | None = None
    brandId: str | None = None
    minLastUpdatedTime: int | None = None
    maxLastUpdatedTime: int | None = None
    maxETTR: int | None = None
    subscriptionId: str | None = None


class UnsubscribeBody(_Body):
    subscriptionId: str


# ---------------------------------------------------------------- routing


class SetAgentStateBody(_Body):
    availability: str
    agentUserId: str | None = None
    channels: list[str] | None = None
    description: str | None = None


class SubscribeAgentsStateBody(_Body):
    brandId: str | None = None
    agentId: str | None = None
    agentAvailability: str | None = None


class SubscribeRoutingTasksBody(_Body):
    brandId: str | None = None
    agentId: str | None = None
    channelType: str | None = None
    skillId: str | int | None = None
    conversationId: str | None = None


class UpdateRoutingTaskSubscriptionBody(SubscribeRoutingTasksBody, kw_only=True):
    """The subscription's new filters (those of a subscribe) and which subscription they are for."""

    subscriptionId: str


#: The answers to a ring.
RingAnswer = Literal["ACCEPTED", "REJECTED"]


class UpdateRingStateBody(_Body):
    ringId: str
    ringState: RingAnswer


AGENT_STATES = frozenset({"ONLINE", "OCCUPIED", "AWAY", "BACK_SOON", "OFFLINE"})


# ---------------------------------------------------------------- profiles and files


class SetUserProfileBody(_Body):
    firstName: str | None = None
    lastName: str | None = None
    nickName: str | None = None
    userId: str | None = None
    avatarUrl: str | None = None
    role: str | None = None
    backgndImgUri: str | None = None
    description: str | None = None
    authenticatedData: dict[str, Any] | None = None
    privateData: dict[str, Any] | None = None


class GetUserProfileBody(_Body):
    """``userprofile.GetUserProfile`` as the SDK sends it (``{}``: the caller's own); the emulator
    reads every form clients send with :func:`parse_user_profile_target`."""

    userId: str | None = None


class GenerateUploadURLBody(_Body):
    fileSize: int
    fileType: str


class GenerateDownloadURLBody(_Body):
    relativePath: str
    dialogId: str | None = None


def parse_user_profile_target(raw: Any) -> str | None:
    """GetUserProfile bodies: a bare id string (node-agent-sdk), ``{"userId"}`` or empty (self)."""
    if raw is None or raw == "" or raw == {}:
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        user_id = raw.get("userId")
        if user_id is None or isinstance(user_id, str):
            return user_id
    raise BodyError('GetUserProfile body must be a user id string or {"userId": ...}')
