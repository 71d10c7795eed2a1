"""lp-messaging-sdk for Python: talk to LivePerson's messaging platform, or to its local emulator.

::

    import lpm

    conn = lpm.create_connection(account_id="12345678", user_type=lpm.UserType.CONSUMER,
                                 csds_domain="http://127.0.0.1:8443")
    async with conn:
        conversation = await conn.create_conversation(skill_id="11")
        conversation.on("message", lambda message: print(message.text))
        await conversation.send_message("hello")
"""

from lpm import webhooks
from lpm._version import __version__
from lpm.client.auth.csds import CSDS, CSDSCache
from lpm.client.auth.tokens import StaticTokenMaintainer, TokenMaintainer
from lpm.client.connection import Connection
from lpm.client.events import (
    AgentTokenInfo,
    CloseInfo,
    RequestEventInfo,
    RequestSummary,
    ResponseEventInfo,
    StartInfo,
    TimingInfo,
    TokenInvalidInfo,
    WaitInfo,
)
from lpm.client.factory import create_connection
from lpm.client.history_search import ConversationHistoryRecord, HistoryPage, HistoryQuery, HistorySearch
from lpm.client.model.conversation import Conversation
from lpm.client.model.dialog import Dialog
from lpm.client.model.message import Message
from lpm.client.model.participant import Participant
from lpm.client.model.skill import Skill
from lpm.client.subscriptions.conversations import CLEAR_CONVERSATION_TIMEOUT, ConversationSubscription
from lpm.client.subscriptions.routing import Ring, RoutingTaskSubscription
from lpm.client.transport.brand import BrandWebsocketConnection
from lpm.client.transport.consumer import ConsumerWebsocketConnection
from lpm.client.transport.null import NullConnection
from lpm.client.transport.rest import BrandRestConnection
from lpm.client.transport.send_api import ConsumerSendApiConnection
from lpm.client.transport.websocket import WAIT_FOR_READY_DURATION, WebsocketConnection
from lpm.enums import (
    OS,
    AgentState,
    AuthType,
    ChannelType,
    ConnectionEvent,
    ConnectionState,
    ConnectionType,
    ContentType,
    ConversationContextType,
    ConversationState,
    CsatStatus,
    DeliveryStatus,
    DeviceFamily,
    DialogChangeType,
    DialogCloseReason,
    DialogState,
    DialogType,
    Features,
    Integration,
    MessageAudience,
    ParticipantChangeType,
    ParticipantChatState,
    ParticipantRole,
    ParticipantState,
    RingState,
    RoutingSubscriptionState,
    SubscriptionState,
    TTRType,
    UserType,
)
from lpm.errors import (
    AccountNotFoundError,
    AuthenticationError,
    ConfigurationError,
    ConnectFailedError,
    ConnectionClosedError,
    HandlerError,
    HttpError,
    InvalidStateError,
    LimitExceededError,
    LpmConnectionError,
    LpmError,
    NoOpenDialogError,
    NotConnectedError,
    ProtocolError,
    QueueTimeoutError,
    RequestError,
    RequestTimeoutError,
    TokenExpiredError,
    UnexpectedResponseError,
    UnsupportedActionError,
    WaitTimeoutError,
)
from lpm.publish import PublishResponse, publish_message
from lpm.sde import (
    CustomerAge,
    PersonalContact,
    create_customer_info_sde,
    create_jwt_claims_set,
    create_personal_info_sde,
)

__all__ = [
    "CLEAR_CONVERSATION_TIMEOUT",
    "CSDS",
    "OS",
    "WAIT_FOR_READY_DURATION",
    "AccountNotFoundError",
    "AgentState",
    "AgentTokenInfo",
    "AuthType",
    "AuthenticationError",
    "BrandRestConnection",
    "BrandWebsocketConnection",
    "CSDSCache",
    "ChannelType",
    "CloseInfo",
    "ConfigurationError",
    "ConnectFailedError",
    "Connection",
    "ConnectionClosedError",
    "ConnectionEvent",
    "ConnectionState",
    "ConnectionType",
    "ConsumerSendApiConnection",
    "ConsumerWebsocketConnection",
    "ContentType",
    "Conversation",
    "ConversationContextType",
    "ConversationHistoryRecord",
    "ConversationState",
    "ConversationSubscription",
    "CsatStatus",
    "CustomerAge",
    "DeliveryStatus",
    "DeviceFamily",
    "Dialog",
    "DialogChangeType",
    "DialogCloseReason",
    "DialogState",
    "DialogType",
    "Features",
    "HandlerError",
    "HistoryPage",
    "HistoryQuery",
    "HistorySearch",
    "HttpError",
    "Integration",
    "InvalidStateError",
    "LimitExceededError",
    "LpmConnectionError",
    "LpmError",
    "Message",
    "MessageAudience",
    "NoOpenDialogError",
    "NotConnectedError",
    "NullConnection",
    "Participant",
    "ParticipantChangeType",
    "ParticipantChatState",
    "ParticipantRole",
    "ParticipantState",
    "PersonalContact",
    "ProtocolError",
    "PublishResponse",
    "QueueTimeoutError",
    "RequestError",
    "RequestEventInfo",
    "RequestSummary",
    "RequestTimeoutError",
    "ResponseEventInfo",
    "Ring",
    "RingState",
    "RoutingSubscriptionState",
    "RoutingTaskSubscription",
    "Skill",
    "StartInfo",
    "StaticTokenMaintainer",
    "SubscriptionState",
    "TTRType",
    "TimingInfo",
    "TokenExpiredError",
    "TokenInvalidInfo",
    "TokenMaintainer",
    "UnexpectedResponseError",
    "UnsupportedActionError",
    "UserType",
    "WaitInfo",
    "WaitTimeoutError",
    "WebsocketConnection",
    "__version__",
    "create_connection",
    "create_customer_info_sde",
    "create_jwt_claims_set",
    "create_personal_info_sde",
    "publish_message",
    "webhooks",
]
