"""Structured Data Entities (SDEs) and the JWT claims set that carries them.

An authenticated consumer's brand-signed id_token may carry SDEs in its ``lp_sdes`` claim; the
platform keeps them on the consumer and agents read them with ``GetUserProfile``.  The factories
here build the wire shapes (protocol §6.14) from validated Python values:

* :func:`create_customer_info_sde` -> ``{"type": "ctmrinfo", "info": {...}}``
* :func:`create_personal_info_sde` -> ``{"type": "personal", "personal": {...}}``
* :func:`create_jwt_claims_set` -> ``{"sub", "iss", "exp", "iat", ..., "lp_sdes": [...]}``

Only the fields given appear in the result, and every result is a fresh plain ``dict`` ready for
``json.dumps`` or ``jwt.encode``.  Every invalid argument raises
:class:`~lpm.errors.ConfigurationError` (a ``ValueError``) naming the argument, before anything
is built.

Dates (``last_payment_date``, ``registration_date``) accept a :class:`datetime.date` (or a
``datetime``, whose date part is used), a ``(year, month, day)`` tuple, or a mapping with
``day``, ``month`` and ``year``, or a number of epoch **milliseconds** (the Node SDK's
``createCustomerInfoSde`` types them as numbers: ``1700000000000`` is 14 November 2023), whose
calendar date is taken in UTC; tuples and mappings must name a real calendar date.  They are
emitted as ``{"day", "month", "year"}``, the wire's form.

Example::

    >>> import datetime
    >>> create_customer_info_sde(customer_id="c-42", balance=-10.5,
    ...                          last_payment_date=datetime.date(2024, 2, 29))
    {'type': 'ctmrinfo', 'info': {'balance': -10.5, 'customerId': 'c-42', 'lastPaymentDate': {'day': 29, 'month': 2, 'year': 2024}}}
"""  # noqa: E501

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lpm.errors import ConfigurationError

__all__ = [
    "CustomerAge",
    "PersonalContact",
    "create_customer_info_sde",
    "create_jwt_claims_set",
    "create_personal_info_sde",
]

#: SDE ``type`` values accepted inside ``lp_sdes``, with the key holding each one's payload.
SDE_PAYLOAD_KEYS: dict[str, str] = {"ctmrinfo": "info", "personal": "personal"}

GENDERS = ("MALE", "FEMALE", "OTHER")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_AGE = 150


# ---------------------------------------------------------------- validators


def _fail(name: str, message: str, value: Any) -> ConfigurationError:
    # repr() of the value, cut short: enough to spot the mistake, never a whole document.
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ConfigurationError(f"{name} {message}, got {shown}")


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(name, "must be a string", value)
    if not value.strip():
        raise _fail(name, "must not be empty", value)
    return value


def _number(name: str, value: Any) -> int | float:
    # bool is an int subclass, but True is never a meaningful balance or count.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, "must be a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(name, "must be a finite number", value)
    return value


def _int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(name, "must be an integer", value)
    if low is not None and value < low:
        raise _fail(name, f"must be >= {low}", value)
    if high is not None and value > high:
        raise _fail(name, f"must be <= {high}", value)
    return value


def _calendar_date(name: str, year: Any, month: Any, day: Any) -> dict[str, int]:
    y = _int(f"{name}.year", year, dt.MINYEAR, dt.MAXYEAR)
    m = _int(f"{name}.month", month, 1, 12)
    d = _int(f"{name}.day", day, 1, 31)
    try:
        dt.date(y, m, d)
    except ValueError:
        raise _fail(name, "must be a real calendar date", (y, m, d)) from None
    return {"day": d, "month": m, "year": y}


def _date(name: str, value: Any) -> dict[str, int]:
    """``{"day", "month", "year"}`` of a date, a ``(year, month, day)`` tuple, a mapping or epoch
    milliseconds (UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch_ms_date(name, value)
    if isinstance(value, dt.date):  # datetime.datetime included: its date part counts
        return {"day": value.day, "month": value.month, "year": value.year}
    if isinstance(value, Mapping):
        unknown = set(value) - {"day", "month", "year"}
        if unknown:
            raise _fail(name, "takes only the keys day, month and year", sorted(map(str, unknown)))
        missing = [k for k in ("day", "month", "year") if k not in value]
        if missing:
            raise _fail(name, f"is missing {', '.join(missing)}", dict(value))
        return _calendar_date(name, value["year"], value["month"], value["day"])
    if isinstance(value, tuple):
        if len(value) != 3:
            raise _fail(name, "must be a (year, month, day) tuple", value)
        return _calendar_date(name, *value)
    raise _fail(
        name,
        "must be a datetime.date, a (year, month, day) tuple, a {day, month, year} mapping"
        " or epoch milliseconds",
        value,
    )


def _epoch_ms_date(name: str, value: int | float) -> dict[str, int]:
    """The UTC calendar date of epoch milliseconds (the Node SDK's number dates)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(name, "must be a finite number of epoch milliseconds", value)
    try:
        day = (EPOCH + dt.timedelta(milliseconds=value)).date()
    except OverflowError:
        raise _fail(name, "is out of range for epoch milliseconds", value) from None
    return {"day": day.day, "month": day.month, "year": day.year}


def _email(name: str, value: Any) -> str:
    text = _text(name, value)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text):
        raise _fail(name, "must be an e-mail address like name@example.com", value)
    return text


def _phone(name: str, value: Any) -> str:
    text = _text(name, value)
    if not any(c.isdigit() for c in text):
        raise _fail(name, "must contain digits", value)
    return text


def _is_list(value: Any) -> bool:
    """A list-like sequence: a str, a mapping or a lone entry would iterate into garbage."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _epoch(name: str, value: Any) -> int:
    """Epoch seconds of an int, a float (truncated) or a timezone-aware datetime."""
    if isinstance(value, dt.datetime):
        # A naive datetime would silently be read in the machine's local zone (or, for
        # datetime.utcnow(), be off by the UTC offset): refuse it rather than guess.
        if value.tzinfo is None or value.utcoffset() is None:
            raise _fail(name, "must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))", value)
        return int(value.timestamp())
    if isinstance(value, dt.date):
        raise _fail(name, "must be epoch seconds or a datetime, not a date", value)
    number = _number(name, value)
    if number < 0:
        raise _fail(name, "must be >= 0 (epoch seconds)", value)
    return int(number)


# ---------------------------------------------------------------- customer info


def create_customer_info_sde(
    *,
    cstatus: str | None = None,
    ctype: str | None = None,
    balance: float | None = None,
    customer_id: str | None = None,
    last_payment_date: dt.date | tuple[int, int, int] | Mapping[str, int] | float | None = None,
    registration_date: dt.date | tuple[int, int, int] | Mapping[str, int] | float | None = None,
    login_status: float | None = None,
    company_branch: str | None = None,
    social_id: str | None = None,
    imei: str | None = None,
    user_name: str | None = None,
    company_size: int | None = None,
    account_name: str | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    """A customer-info SDE: ``{"type": "ctmrinfo", "info": {...}}`` with the fields given.

    Arguments are the Node SDK's ``createCustomerInfoSde`` arguments in snake_case; the wire
    names are camelCase (``customer_id`` -> ``customerId``).  Strings must be non-empty;
    ``balance`` and ``login_status`` are numbers (``bool`` is refused); ``company_size`` is an
    integer >= 0; dates are described in the module docstring.

    Example::

        >>> create_customer_info_sde(cstatus="active", ctype="gold", company_size=12)
        {'type': 'ctmrinfo', 'info': {'cstatus': 'active', 'ctype': 'gold', 'companySize': 12}}

    Raises:
        ConfigurationError: an argument is invalid (the message names it).
    """
    # The arguments, in their order (nothing else is defined yet).
    info = _wire_fields(locals())
    return {"type": "ctmrinfo", "info": info}


# ---------------------------------------------------------------- personal info


@dataclass(frozen=True, slots=True)
class CustomerAge:
    """A consumer's age and/or date of birth (the personal SDE's ``age``).

    Every part is optional, but at least one must be given.  ``age`` is 0-150; ``year``,
    ``month`` and ``day`` must form a real date as far as they are given (``day=30, month=2`` is
    refused; ``day=29, month=2`` without a year is allowed).

    Example::

        >>> CustomerAge(age=36, year=1988, month=2, day=29).to_wire()
        {'age': 36, 'year': 1988, 'month': 2, 'day': 29}

    Raises:
        ConfigurationError: a part is invalid.
    """

    #: The age in years (0-150).
    age: int | None = None
    #: The year of birth.
    year: int | None = None
    #: The month of birth (1-12).
    month: int | None = None
    #: The day of birth (1-31, a real day of the month when it is known).
    day: int | None = None

    def __post_init__(self) -> None:
        if self.age is None and self.year is None and self.month is None and self.day is None:
            raise ConfigurationError("age needs at least one of age, year, month, day")
        if self.age is not None:
            _int("age.age", self.age, 0, MAX_AGE)
        if self.year is not None:
            _int("age.year", self.year, dt.MINYEAR, dt.MAXYEAR)
        if self.month is not None:
            _int("age.month", self.month, 1, 12)
        if self.day is not None:
            _int("age.day", self.day, 1, 31)
            if self.month is not None:
                # 2000 is a leap year: without a year, 29 February is a possible birthday.
                year = self.year if self.year is not None else 2000
                _calendar_date("age", year, self.month, self.day)

    def to_wire(self) -> dict[str, int]:
        """``{"age", "year", "month", "day"}`` with only the parts given."""
        parts = {"age": self.age, "year": self.year, "month": self.month, "day": self.day}
        return {k: v for k, v in parts.items() if v is not None}


@dataclass(frozen=True, slots=True)
class PersonalContact:
    """One way to reach the consumer (an entry of the personal SDE's ``contacts``).

    At least one of ``email`` (must look like ``name@domain``), ``phone`` (must contain digits)
    and ``address`` must be given.  ``address`` is free text or a mapping of strings; LivePerson
    uses ``{"country": ..., "region": ...}``.

    Example::

        >>> PersonalContact(email="ada@example.com", phone="+1 555 0100").to_wire()
        {'email': 'ada@example.com', 'phone': '+1 555 0100'}

    Raises:
        ConfigurationError: a field is invalid.
    """

    #: A postal address: free text, or a mapping of strings.
    address: str | Mapping[str, str] | None = None
    #: An e-mail address (``name@domain``).
    email: str | None = None
    #: A phone number (with digits).
    phone: str | None = None

    def __post_init__(self) -> None:
        if self.address is None and self.email is None and self.phone is None:
            raise ConfigurationError("contacts entries need at least one of address, email, phone")
        if self.email is not None:
            _email("contacts.email", self.email)
        if self.phone is not None:
            _phone("contacts.phone", self.phone)
        if self.address is not None:
            if isinstance(self.address, Mapping):
                if not self.address:
                    raise _fail("contacts.address", "must not be empty", self.address)
                for key, part in self.address.items():
                    _text("contacts.address key", key)
                    _text(f"contacts.address.{key}", part)
            else:
                _text("contacts.address", self.address)

    def to_wire(self) -> dict[str, Any]:
        """``{"email", "phone", "address"}`` with only the fields given."""
        out: dict[str, Any] = {}
        if self.email is not None:
            out["email"] = self.email
        if self.phone is not None:
            out["phone"] = self.phone
        if self.address is not None:
            out["address"] = dict(self.address) if isinstance(self.address, Mapping) else self.address
        return out


def _age(value: Any) -> CustomerAge:
    if isinstance(value, CustomerAge):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"age", "year", "month", "day"}
        if unknown:
            raise _fail("age", "takes only the keys age, year, month and day", sorted(map(str, unknown)))
        return CustomerAge(**value)
    raise _fail("age", "must be a CustomerAge (or a mapping of its fields)", value)


def _contact(index: int, value: Any) -> PersonalContact:
    if isinstance(value, PersonalContact):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"address", "email", "phone"}
        if unknown:
            raise _fail(
                f"contacts[{index}]",
                "takes only the keys address, email and phone",
                sorted(map(str, unknown)),
            )
        return PersonalContact(**value)
    raise _fail(f"contacts[{index}]", "must be a PersonalContact (or a mapping of its fields)", value)


def _camel(name: str) -> str:
    """The wire name of an argument (``customer_id`` -> ``customerId``)."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _contacts(name: str, value: Any) -> list[dict[str, Any]]:
    if not _is_list(value):
        raise _fail(name, "must be a list of PersonalContact", value)
    return [_contact(i, c).to_wire() for i, c in enumerate(value)]


def _gender(name: str, value: Any) -> str:
    text = _text(name, value).strip().upper()
    if text not in GENDERS:
        raise _fail(name, f"must be one of {', '.join(GENDERS)}", value)
    return text


#: How each argument of :func:`create_customer_info_sde` and :func:`create_personal_info_sde`
#: is checked and made wire-ready, in the order of the wire fields.
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    # customer info
    "cstatus": _text,
    "ctype": _text,
    "balance": _number,
    "customer_id": _text,
    "last_payment_date": _date,
    "registration_date": _date,
    "login_status": _number,
    "company_branch": _text,
    "social_id": _text,
    "imei": _text,
    "user_name": _text,
    "company_size": lambda name, value: _int(name, value, 0),
    "account_name": _text,
    "role": _text,
    # personal info
    "firstname": _text,
    "lastname": _text,
    "age": lambda name, value: _age(value).to_wire(),
    "contacts": _contacts,
    "gender": _gender,
    "language": _text,
    "company": _text,
}


def _wire_fields(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments given (not None), each checked and made wire-ready, under their camelCase
    wire names."""
    return {
        _camel(name): check(name, arguments[name])
        for name, check in _CHECKS.items()
        if arguments.get(name) is not None
    }


def create_personal_info_sde(
    *,
    firstname: str | None = None,
    lastname: str | None = None,
    gender: str | None = None,
    language: str | None = None,
    company: str | None = None,
    age: CustomerAge | Mapping[str, int] | None = None,
    contacts: Sequence[PersonalContact | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A personal-info SDE: ``{"type": "personal", "personal": {...}}`` with the fields given.

    ``gender`` is MALE, FEMALE or OTHER in any case (emitted upper case); ``age`` is a
    :class:`CustomerAge` and ``contacts`` a sequence of :class:`PersonalContact` (mappings of
    their fields are accepted too); other strings must be non-empty.

    Example::

        >>> create_personal_info_sde(firstname="Ada", gender="female",
        ...                          contacts=[PersonalContact(email="ada@example.com")])
        {'type': 'personal', 'personal': {'firstname': 'Ada', 'contacts': [{'email': 'ada@example.com'}], 'gender': 'FEMALE'}}

    Raises:
        ConfigurationError: an argument is invalid (the message names it).
    """  # noqa: E501
    # The arguments (nothing else is defined yet).
    personal = _wire_fields(locals())
    return {"type": "personal", "personal": personal}


# ---------------------------------------------------------------- JWT claims


def _sde(index: int, value: Any) -> dict[str, Any]:
    name = f"sdes[{index}]"
    if not isinstance(value, Mapping):
        raise _fail(name, "must be an SDE dict (see create_customer_info_sde)", value)
    kind = value.get("type")
    if kind not in SDE_PAYLOAD_KEYS:
        raise _fail(f"{name}.type", f"must be one of {', '.join(SDE_PAYLOAD_KEYS)}", kind)
    payload_key = SDE_PAYLOAD_KEYS[kind]
    if not isinstance(value.get(payload_key), Mapping):
        raise _fail(name, f"of type {kind} needs a {payload_key!r} object", value)
    # A deep copy: the claims set must not change when the caller later edits its SDE dicts.
    return copy.deepcopy(dict(value))


def create_jwt_claims_set(
    sub: str,
    iss: str,
    exp: int | float | dt.datetime,
    iat: int | float | dt.datetime,
    *,
    phone_number: str | None = None,
    preferred_username: str | None = None,
    email: str | None = None,
    sdes: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The claims of a brand-signed consumer id_token, SDEs in ``lp_sdes``.

    ``sub`` is the brand's customer id and ``iss`` the issuer configured on the authenticated
    connector.  ``exp`` and ``iat`` are epoch seconds (floats are truncated) or timezone-aware
    datetimes, and ``exp`` must be after ``iat``.  ``sdes`` is a list of SDE dicts from
    :func:`create_customer_info_sde` / :func:`create_personal_info_sde` (each must have
    ``type`` ``ctmrinfo`` or ``personal`` and its payload object); they are copied.  Sign the
    result with the connector's key, e.g. ``jwt.encode(claims, key, algorithm="RS256")``.

    Example::

        >>> create_jwt_claims_set("customer-42", "https://brand.example.com", 1700000600, 1700000000,
        ...                       sdes=[create_customer_info_sde(customer_id="c-42")])
        {'sub': 'customer-42', 'iss': 'https://brand.example.com', 'exp': 1700000600, 'iat': 1700000000, 'lp_sdes': [{'type': 'ctmrinfo', 'info': {'customerId': 'c-42'}}]}

    Raises:
        ConfigurationError: an argument is invalid (the message names it).
    """  # noqa: E501
    claims: dict[str, Any] = {
        "sub": _text("sub", sub),
        "iss": _text("iss", iss),
        "exp": _epoch("exp", exp),
        "iat": _epoch("iat", iat),
    }
    if claims["exp"] <= claims["iat"]:
        raise ConfigurationError(f"exp must be after iat, got exp={claims['exp']} iat={claims['iat']}")
    if phone_number is not None:
        claims["phone_number"] = _phone("phone_number", phone_number)
    if preferred_username is not None:
        claims["preferred_username"] = _text("preferred_username", preferred_username)
    if email is not None:
        claims["email"] = _email("email", email)
    if sdes is not None:
        if not _is_list(sdes):
            raise _fail("sdes", "must be a list of SDE dicts", sdes)
        claims["lp_sdes"] = [_sde(i, s) for i, s in enumerate(sdes)]
    return claims
