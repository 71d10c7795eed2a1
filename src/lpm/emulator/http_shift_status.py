"""Skill shift status: ``GET /api/account/{account}/shift-status`` (the ``asyncMessagingEnt`` service).

What the Node SDK's ``ShiftStatusPoller`` (and this SDK's :mod:`lpm.client.shift_status`) polls
once a minute: for every skill of the account, whether it is within its working hours and when
that changes::

    GET /api/account/12345678/shift-status
    Authorization: Bearer <agentVep bearer>

    200 [{"skillId": "11", "onShift": true, "nextOn": null, "nextOff": 1700003600000},
         {"skillId": "12", "onShift": false, "nextOn": 1700010000000, "nextOff": null}]

``nextOn`` / ``nextOff`` are epoch milliseconds (``null`` when unknown).  A missing, unknown or
expired bearer, or one of another account, answers 401 (the poller then has its token renewed
and retries once); an unknown account 404.  Error bodies are ``{"code", "message"}`` (the
platform's are not published).

Shifts come from the world file (``[[accounts.skills]]`` ``on_shift``, ``next_on``,
``next_off``; a skill is on shift by default) and change through the fault API
(``POST /_emulator/shifts``, see :mod:`lpm.emulator.control`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from lpm.emulator.http_common import json_response

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.entities import Account, Skill
    from lpm.emulator.extensions import Route

PATH = "/api/account/{account}/shift-status"


def shift_item(skill: Skill) -> dict[str, Any]:
    """One skill's shift status as the endpoint answers it."""
    return {
        "skillId": skill.skill_id,
        "onShift": skill.on_shift,
        "nextOn": skill.next_on,
        "nextOff": skill.next_off,
    }


def shift_status(acc: Account) -> list[dict[str, Any]]:
    """Every skill's shift status, in skill order."""
    return [shift_item(skill) for skill in acc.skills.values()]


def _error(status: int, message: str) -> web.Response:
    return json_response({"code": status, "message": message}, status)


async def get_shift_status(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``GET .../shift-status`` with an agent bearer of the account."""
    account_id = request.match_info["account"]
    acc = ctx.world.accounts.get(account_id)
    if acc is None:
        return _error(404, f"unknown account {account_id}")
    auth = request.headers.get("Authorization", "").strip()
    if auth[:7].lower() == "bearer ":
        auth = auth[7:].strip()
    session = ctx.world.session(auth) if auth else None
    if session is None or session.account_id != account_id:
        return _error(401, "Authorization: Bearer <agent bearer> of this account is required")
    return json_response(shift_status(acc))


def routes(ctx: Context) -> list[Route]:
    return [("GET", PATH, get_shift_status)]
