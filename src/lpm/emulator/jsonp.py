"""JSONP answers: the browser faces' JSON data wrapped in a call of the page's callback.

A web page that cannot read another origin's JSON loads it as a script: ``<script
src=".../baseURI.lpCsds?version=1.0&cb=domainCallback">`` runs ``domainCallback({...})``.
LivePerson's messaging-window JavaScript SDK (``windowKit``) discovers its services and signs up
that way; see :mod:`lpm.emulator.http_csds` and :mod:`lpm.emulator.http_idp`.

The callback name comes from the page, so it is checked before it is written into a script: a
JavaScript identifier or a dotted path of them (``jQuery3600_1700000000``, ``lp.cb``), at most
:data:`MAX_CALLBACK` characters.  Anything else -- missing, empty, a parenthesis, a quote, a
space -- is refused with 400 and no script.  The answer is ``application/javascript`` with
``X-Content-Type-Options: nosniff``; its text starts with an empty comment (``/**/``), the usual
guard against a response read as something other than a script.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from lpm.protocol.frames import encode

#: Longest callback name accepted.
MAX_CALLBACK: Final = 128
_CALLBACK = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*")


class BadCallback(ValueError):
    """The callback parameter is missing or not a JavaScript name."""


def callback_name(request: web.Request, parameter: str) -> str:
    """The request's callback name (query ``parameter``); :class:`BadCallback` when it is missing
    or not a JavaScript identifier path."""
    name = request.query.get(parameter)
    if not name:
        raise BadCallback(f"the {parameter} query parameter (the JSONP callback name) is required")
    if len(name) > MAX_CALLBACK or _CALLBACK.fullmatch(name) is None:
        raise BadCallback(f"the {parameter} query parameter must be a JavaScript function name")
    return name


def script(callback: str, data: Any, status: int = 200, *, no_store: bool = False) -> web.Response:
    """``callback(<data as JSON>);`` as an ``application/javascript`` response."""
    # JSON is valid JavaScript since ES2019 (U+2028/U+2029 included); escaping them anyway keeps
    # the script valid for older engines.
    payload = encode(data).decode().replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    headers = {"X-Content-Type-Options": "nosniff"}
    if no_store:
        headers["Cache-Control"] = "no-store"
    return web.Response(
        text=f"/**/{callback}({payload});",
        status=status,
        content_type="application/javascript",
        headers=headers,
    )
