"""The public API: ``lpm.__all__`` is explicit, complete and importable."""

from __future__ import annotations

import lpm
import lpm.enums
import lpm.errors


def test_every_name_in_all_exists() -> None:
    missing = [name for name in lpm.__all__ if not hasattr(lpm, name)]
    assert missing == []
    assert len(set(lpm.__all__)) == len(lpm.__all__)


def test_every_public_class_and_function_is_listed() -> None:
    public = {
        name
        for name, value in vars(lpm).items()
        if not name.startswith("_") and (isinstance(value, type) or callable(value))
    }
    assert public - set(lpm.__all__) == set()


def test_every_enum_of_the_seed_is_exported() -> None:
    seed = {
        "AgentState", "AuthType", "ChannelType", "ConnectionState", "ConnectionType", "ContentType",
        "ConversationState", "CsatStatus", "DeliveryStatus", "DeviceFamily", "DialogChangeType",
        "DialogCloseReason", "DialogState", "DialogType", "Features", "Integration",
        "ParticipantChangeType", "ParticipantChatState", "ParticipantRole", "ParticipantState",
        "RingState", "RoutingSubscriptionState", "SubscriptionState", "UserType",
        "ConversationContextType", "OS", "MessageAudience",
    }  # fmt: skip
    assert seed <= set(lpm.__all__)
    for name in seed:
        assert getattr(lpm, name) is getattr(lpm.enums, name)


def test_errors_share_one_root() -> None:
    for name in dir(lpm.errors):
        value = getattr(lpm.errors, name)
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == "lpm.errors":
            assert issubclass(value, lpm.errors.LpmError), name


def test_every_error_is_exported_at_top_level() -> None:
    errors = {
        name: value
        for name, value in vars(lpm.errors).items()
        if isinstance(value, type) and issubclass(value, lpm.errors.LpmError)
    }
    assert "LpmError" in errors and "ConnectionClosedError" in errors and "UnsupportedActionError" in errors
    for name, error in errors.items():
        assert name in lpm.__all__, name
        assert getattr(lpm, name) is error, name


def test_unsupported_actions_are_invalid_state_errors() -> None:
    error = lpm.UnsupportedActionError("query messages", "a NULL connection", "it has no transport")
    assert isinstance(error, lpm.InvalidStateError)
    assert str(error) == "cannot query messages on a NULL connection: it has no transport"
    assert error.action == "query messages" and error.transport == "a NULL connection"


def test_seed_constants() -> None:
    assert lpm.CLEAR_CONVERSATION_TIMEOUT == 5.0
    assert lpm.WAIT_FOR_READY_DURATION > 0
