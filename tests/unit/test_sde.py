"""SDE factories and the JWT claims set: wire shapes, validation, and errors naming the argument."""

from __future__ import annotations

import dataclasses
import datetime as dt
import doctest
import json
import math
import re
from typing import Any

import pytest

import lpm.enums
import lpm.sde
from lpm.errors import ConfigurationError, LpmError
from lpm.sde import (
    CustomerAge,
    PersonalContact,
    create_customer_info_sde,
    create_jwt_claims_set,
    create_personal_info_sde,
)


@pytest.mark.parametrize("module", [lpm.sde, lpm.enums], ids=lambda m: m.__name__)
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------- customer info


def test_customer_info_every_field_with_wire_names() -> None:
    sde = create_customer_info_sde(
        cstatus="active",
        ctype="gold",
        balance=-400.99,
        customer_id="c-42",
        last_payment_date=dt.date(2024, 2, 29),
        registration_date=(2019, 12, 31),
        login_status=1,
        company_branch="Berlin",
        social_id="@ada",
        imei="356938035643809",
        user_name="ada",
        company_size=250,
        account_name="Analytical Engines Ltd",
        role="owner",
    )
    assert sde == {
        "type": "ctmrinfo",
        "info": {
            "cstatus": "active",
            "ctype": "gold",
            "balance": -400.99,
            "customerId": "c-42",
            "lastPaymentDate": {"day": 29, "month": 2, "year": 2024},
            "registrationDate": {"day": 31, "month": 12, "year": 2019},
            "loginStatus": 1,
            "companyBranch": "Berlin",
            "socialId": "@ada",
            "imei": "356938035643809",
            "userName": "ada",
            "companySize": 250,
            "accountName": "Analytical Engines Ltd",
            "role": "owner",
        },
    }
    assert json.loads(json.dumps(sde)) == sde  # wire-ready


def test_customer_info_only_the_fields_given() -> None:
    assert create_customer_info_sde() == {"type": "ctmrinfo", "info": {}}
    assert create_customer_info_sde(balance=0, company_size=0) == {
        "type": "ctmrinfo",
        "info": {"balance": 0, "companySize": 0},
    }


@pytest.mark.parametrize(
    "value",
    [
        dt.date(2023, 7, 4),
        dt.datetime(2023, 7, 4, 23, 59, tzinfo=dt.UTC),
        (2023, 7, 4),
        {"day": 4, "month": 7, "year": 2023},
    ],
    ids=["date", "datetime", "tuple", "mapping"],
)
def test_customer_info_dates(value: Any) -> None:
    info = create_customer_info_sde(last_payment_date=value, registration_date=value)["info"]
    assert info["lastPaymentDate"] == info["registrationDate"] == {"day": 4, "month": 7, "year": 2023}


def test_customer_info_dates_from_epoch_milliseconds() -> None:
    """The Node seed types the dates as numbers: epoch milliseconds, read in UTC (issue 14.5)."""
    info = create_customer_info_sde(last_payment_date=1700000000000, registration_date=1700000000000.5)[
        "info"
    ]
    assert info["lastPaymentDate"] == info["registrationDate"] == {"day": 14, "month": 11, "year": 2023}
    # Just before midnight UTC stays on that day whatever the machine's time zone.
    late = create_customer_info_sde(last_payment_date=1700006399999)["info"]["lastPaymentDate"]
    assert late == {"day": 14, "month": 11, "year": 2023}
    assert create_customer_info_sde(registration_date=0)["info"]["registrationDate"] == {
        "day": 1,
        "month": 1,
        "year": 1970,
    }
    assert create_customer_info_sde(registration_date=-86400000)["info"]["registrationDate"]["year"] == 1969


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"cstatus": ""}, "cstatus"),
        ({"cstatus": "   "}, "cstatus"),
        ({"ctype": 3}, "ctype"),
        ({"balance": "100"}, "balance"),
        ({"balance": True}, "balance"),
        ({"balance": math.nan}, "balance"),
        ({"balance": math.inf}, "balance"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": b"c-42"}, "customer_id"),
        ({"last_payment_date": (2023, 2, 30)}, "last_payment_date"),
        ({"last_payment_date": {"day": 31, "month": 4, "year": 2023}}, "last_payment_date"),
        ({"last_payment_date": {"day": 1, "month": 13, "year": 2023}}, "last_payment_date.month"),
        ({"last_payment_date": {"day": 1, "month": 1}}, "last_payment_date"),
        ({"last_payment_date": {"day": 1, "month": 1, "year": 2023, "hour": 3}}, "last_payment_date"),
        ({"last_payment_date": (2023, 1)}, "last_payment_date"),
        ({"last_payment_date": ("2023", 1, 1)}, "last_payment_date.year"),
        ({"last_payment_date": math.nan}, "last_payment_date"),
        ({"last_payment_date": 10**20}, "last_payment_date"),
        ({"last_payment_date": True}, "last_payment_date"),
        ({"last_payment_date": "2023-01-01"}, "last_payment_date"),
        ({"registration_date": (2023, 0, 1)}, "registration_date.month"),
        ({"registration_date": (2023, 1, 0)}, "registration_date.day"),
        ({"login_status": "yes"}, "login_status"),
        ({"company_branch": ""}, "company_branch"),
        ({"social_id": ["@ada"]}, "social_id"),
        ({"imei": ""}, "imei"),
        ({"user_name": ""}, "user_name"),
        ({"company_size": -1}, "company_size"),
        ({"company_size": 2.5}, "company_size"),
        ({"company_size": True}, "company_size"),
        ({"account_name": ""}, "account_name"),
        ({"role": 7}, "role"),
    ],
)
def test_customer_info_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(name)}\b") as info:
        create_customer_info_sde(**kwargs)
    assert isinstance(info.value, LpmError) and isinstance(info.value, ValueError)


def test_customer_info_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        create_customer_info_sde("active")  # type: ignore[call-arg]


# ---------------------------------------------------------------- personal info


def test_personal_info_every_field() -> None:
    sde = create_personal_info_sde(
        firstname="Ada",
        lastname="Lovelace",
        gender="female",
        language="en-GB",
        company="Analytical Engines Ltd",
        age=CustomerAge(age=36, year=1815, month=12, day=10),
        contacts=[
            PersonalContact(
                email="ada@example.com", phone="+44 20 7946 0958", address="12 St James's Square"
            ),
            PersonalContact(address={"country": "GB", "region": "London"}),
        ],
    )
    assert sde == {
        "type": "personal",
        "personal": {
            "firstname": "Ada",
            "lastname": "Lovelace",
            "age": {"age": 36, "year": 1815, "month": 12, "day": 10},
            "contacts": [
                {"email": "ada@example.com", "phone": "+44 20 7946 0958", "address": "12 St James's Square"},
                {"address": {"country": "GB", "region": "London"}},
            ],
            "gender": "FEMALE",
            "language": "en-GB",
            "company": "Analytical Engines Ltd",
        },
    }
    assert json.loads(json.dumps(sde)) == sde


def test_personal_info_only_the_fields_given() -> None:
    assert create_personal_info_sde() == {"type": "personal", "personal": {}}
    assert create_personal_info_sde(age=CustomerAge(age=40)) == {
        "type": "personal",
        "personal": {"age": {"age": 40}},
    }
    assert create_personal_info_sde(contacts=[]) == {"type": "personal", "personal": {"contacts": []}}


@pytest.mark.parametrize(("given", "emitted"), [("male", "MALE"), ("Female", "FEMALE"), (" OTHER ", "OTHER")])
def test_gender_is_case_insensitive(given: str, emitted: str) -> None:
    assert create_personal_info_sde(gender=given)["personal"]["gender"] == emitted


def test_personal_info_accepts_mappings_for_age_and_contacts() -> None:
    sde = create_personal_info_sde(age={"year": 1990, "month": 2}, contacts=[{"phone": "555-0100"}])
    assert sde["personal"] == {"age": {"year": 1990, "month": 2}, "contacts": [{"phone": "555-0100"}]}


def test_customer_age_rules() -> None:
    assert CustomerAge(day=29, month=2).to_wire() == {"month": 2, "day": 29}  # a leap-day birthday
    assert CustomerAge(age=0).to_wire() == {"age": 0}
    assert CustomerAge(age=150).to_wire() == {"age": 150}
    with pytest.raises(dataclasses.FrozenInstanceError):
        CustomerAge(age=3).age = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "age"),
        ({"age": -1}, "age.age"),
        ({"age": 151}, "age.age"),
        ({"age": 30.5}, "age.age"),
        ({"age": True}, "age.age"),
        ({"year": 0}, "age.year"),
        ({"month": 13}, "age.month"),
        ({"day": 32}, "age.day"),
        ({"day": 30, "month": 2}, "age"),
        ({"year": 2023, "month": 2, "day": 29}, "age"),
        ({"year": "1990"}, "age.year"),
    ],
)
def test_customer_age_bad_parts(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(name)}\b"):
        CustomerAge(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "contacts"),
        ({"email": "ada.example.com"}, "contacts.email"),
        ({"email": "@example.com"}, "contacts.email"),
        ({"email": "ada@"}, "contacts.email"),
        ({"email": "ada lovelace@example.com"}, "contacts.email"),
        ({"email": ""}, "contacts.email"),
        ({"phone": "call me"}, "contacts.phone"),
        ({"phone": 5550100}, "contacts.phone"),
        ({"address": ""}, "contacts.address"),
        ({"address": {}}, "contacts.address"),
        ({"address": {"country": ""}}, "contacts.address.country"),
        ({"address": 12}, "contacts.address"),
    ],
)
def test_personal_contact_bad_fields(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(name)}\b"):
        PersonalContact(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"firstname": ""}, "firstname"),
        ({"lastname": 1}, "lastname"),
        ({"gender": "robot"}, "gender"),
        ({"gender": ""}, "gender"),
        ({"gender": 1}, "gender"),
        ({"language": ""}, "language"),
        ({"company": "  "}, "company"),
        ({"age": 36}, "age"),
        ({"age": {"age": 36, "height": 180}}, "age"),
        ({"age": {"age": 200}}, "age.age"),
        ({"contacts": PersonalContact(email="ada@example.com")}, "contacts"),
        ({"contacts": "ada@example.com"}, "contacts"),
        ({"contacts": {"email": "ada@example.com"}}, "contacts"),
        ({"contacts": ["ada@example.com"]}, "contacts[0]"),
        ({"contacts": [{"email": "ada@example.com", "fax": "1"}]}, "contacts[0]"),
        ({"contacts": [{"email": "nope"}]}, "contacts.email"),
    ],
)
def test_personal_info_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(name)}"):
        create_personal_info_sde(**kwargs)


# ---------------------------------------------------------------- JWT claims

ISS = "https://brand.example.com"


def test_claims_set_minimal() -> None:
    assert create_jwt_claims_set("customer-42", ISS, 1_700_000_600, 1_700_000_000) == {
        "sub": "customer-42",
        "iss": ISS,
        "exp": 1_700_000_600,
        "iat": 1_700_000_000,
    }


def test_claims_set_every_field() -> None:
    customer = create_customer_info_sde(customer_id="c-42")
    personal = create_personal_info_sde(firstname="Ada")
    claims = create_jwt_claims_set(
        "customer-42",
        ISS,
        exp=dt.datetime(2030, 1, 1, 1, tzinfo=dt.UTC),
        iat=dt.datetime(2030, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # = 00:00 UTC
        phone_number="+1 555 0100",
        preferred_username="ada",
        email="ada@example.com",
        sdes=[customer, personal],
    )
    assert claims == {
        "sub": "customer-42",
        "iss": ISS,
        "exp": 1893459600,
        "iat": 1893456000,
        "phone_number": "+1 555 0100",
        "preferred_username": "ada",
        "email": "ada@example.com",
        "lp_sdes": [customer, personal],
    }
    # the SDEs are copied: editing the caller's dicts later does not change the claims
    customer["info"]["customerId"] = "changed"
    assert claims["lp_sdes"][0]["info"]["customerId"] == "c-42"


def test_claims_set_times() -> None:
    claims = create_jwt_claims_set("s", ISS, 1_700_000_600.9, 1_700_000_000.2)
    assert (claims["exp"], claims["iat"]) == (1_700_000_600, 1_700_000_000)
    assert isinstance(claims["exp"], int)
    sdes = create_jwt_claims_set("s", ISS, 2, 1, sdes=[])
    assert sdes["lp_sdes"] == []
    # hand-written SDEs of either type pass, auth blocks included
    raw = {"type": "personal", "personal": {"firstname": "Ada"}, "auth": {"amr": ["pwd"], "iss": ISS}}
    assert create_jwt_claims_set("s", ISS, 2, 1, sdes=[raw])["lp_sdes"] == [raw]


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        (("", ISS, 2, 1), {}, "sub"),
        ((42, ISS, 2, 1), {}, "sub"),
        (("s", "", 2, 1), {}, "iss"),
        (("s", ISS, "2", 1), {}, "exp"),
        (("s", ISS, -2, 1), {}, "exp"),
        (("s", ISS, True, 0), {}, "exp"),
        (("s", ISS, dt.datetime(2030, 1, 1), 1), {}, "exp"),  # naive
        (("s", ISS, dt.date(2030, 1, 1), 1), {}, "exp"),
        (("s", ISS, 2, None), {}, "iat"),
        (("s", ISS, 2, math.nan), {}, "iat"),
        (("s", ISS, 1, 1), {}, "exp"),  # exp must be after iat
        (("s", ISS, 1, 2), {}, "exp"),
        (("s", ISS, 2, 1), {"phone_number": ""}, "phone_number"),
        (("s", ISS, 2, 1), {"phone_number": "none"}, "phone_number"),
        (("s", ISS, 2, 1), {"preferred_username": ""}, "preferred_username"),
        (("s", ISS, 2, 1), {"email": "nope"}, "email"),
        (("s", ISS, 2, 1), {"sdes": {"type": "ctmrinfo", "info": {}}}, "sdes"),
        (("s", ISS, 2, 1), {"sdes": "ctmrinfo"}, "sdes"),
        (("s", ISS, 2, 1), {"sdes": ["ctmrinfo"]}, "sdes[0]"),
        (("s", ISS, 2, 1), {"sdes": [{"info": {}}]}, "sdes[0].type"),
        (("s", ISS, 2, 1), {"sdes": [{"type": "purchase", "info": {}}]}, "sdes[0].type"),
        (("s", ISS, 2, 1), {"sdes": [{"type": "ctmrinfo", "personal": {}}]}, "sdes[0]"),
        (("s", ISS, 2, 1), {"sdes": [{"type": "ctmrinfo", "info": {}}, {"type": "personal"}]}, "sdes[1]"),
    ],
)
def test_claims_set_bad_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(name)}"):
        create_jwt_claims_set(*args, **kwargs)


def test_error_messages_show_the_value_briefly() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_customer_info_sde(cstatus=123)  # type: ignore[arg-type]
    assert str(info.value) == "cstatus must be a string, got 123"
    with pytest.raises(ConfigurationError) as info:
        create_customer_info_sde(ctype=["x" * 500])  # type: ignore[arg-type]
    assert len(str(info.value)) < 120 and str(info.value).endswith("...")
