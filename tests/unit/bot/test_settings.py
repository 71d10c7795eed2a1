"""Bot settings: explicit values, then the environment, then defaults; secrets kept out of sight."""

from __future__ import annotations

import pytest

from lpm.bot import Bot, BotSettings
from lpm.errors import ConfigurationError

ENV = {
    "LPM_ACCOUNT_ID": "123",
    "LPM_USERNAME": "bot",
    "LPM_PASSWORD": "s3cret",
    "LPM_CSDS_DOMAIN": "http://127.0.0.1:8443",
    "LPM_BOT_STORE": "redis://:hunter2@cache:6379/0",
    "LPM_BOT_MAX_CONVERSATIONS": "5",
    "LPM_BOT_HTTP_PORT": "9100",
    "LPM_BOT_GRACE": "2.5",
    "LPM_BOT_LOG_FORMAT": "JSON",
}


def test_environment_fills_what_is_not_given() -> None:
    settings = BotSettings(username="given").resolved(ENV)
    assert settings.account_id == "123" and settings.username == "given"
    assert settings.max_conversations == 5 and settings.http_port == 9100
    assert settings.grace_period == 2.5 and settings.lease == 10.0 and settings.log_format == "json"
    assert settings.auth_data() == {"username": "given", "password": "s3cret"}


def test_the_old_account_variable_and_app_keys() -> None:
    env = {
        "LPM_ACCOUNT": "9",
        "LPM_USERNAME": "b",
        "LPM_APP_KEY": "k",
        "LPM_APP_SECRET": "s",
        "LPM_ACCESS_TOKEN": "t",
        "LPM_ACCESS_TOKEN_SECRET": "ts",
    }
    settings = BotSettings().resolved(env)
    assert settings.account_id == "9"
    assert settings.auth_data() == {
        "username": "b",
        "app_key": "k",
        "secret": "s",
        "access_token": "t",
        "access_token_secret": "ts",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"LPM_ACCOUNT_ID": ""}, "LPM_ACCOUNT_ID"),
        ({"LPM_USERNAME": ""}, "LPM_USERNAME"),
        ({"LPM_PASSWORD": ""}, "LPM_PASSWORD"),
        ({"LPM_BOT_MAX_CONVERSATIONS": "0"}, "max_conversations"),
        ({"LPM_BOT_HTTP_PORT": "x"}, "http_port"),
        ({"LPM_BOT_GRACE": "-1"}, "grace_period"),
        ({"LPM_BOT_LOG_FORMAT": "xml"}, "log_format"),
    ],
)
def test_bad_or_missing_settings_are_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BotSettings().resolved({**ENV, **change})


def test_secrets_never_show() -> None:
    settings = BotSettings(password="s3cret", app_secret="x1", access_token_secret="x2").resolved(ENV)
    assert "s3cret" not in repr(settings) and "x1" not in repr(settings)
    described = settings.describe()
    assert "password" not in described and "hunter2" not in str(described)
    assert described["store"] == "redis://***@cache:6379/0"


def test_configure_merges_and_refuses_unknown_settings() -> None:
    bot = Bot("b", connection_options={"response_timeout": 5})
    bot.configure(username="u", connection_options={"app_id": "x"}, password=None)
    assert bot.settings.username == "u"
    assert bot.settings.connection_options == {"response_timeout": 5, "app_id": "x"}
    with pytest.raises(ConfigurationError, match="unknown bot setting"):
        bot.configure(colour="blue")
    with pytest.raises(ConfigurationError, match="name"):
        Bot("two words")
