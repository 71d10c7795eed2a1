"""CSDS (Domain API): every service name points at this emulator's own ``host:port``.

Serves the shapes clients use: ``/api/account/{acc}/service/baseURI.json`` (node-agent-sdk,
lp-messaging-sdk), ``/csdr/account/{acc}/service/baseURI.json`` (lp-api) and the single-service
``/api/account/{acc}/service/{service}/baseURI.json``.  Unknown accounts answer 401 ("bad site"),
unknown single services 404.

Browsers load CSDS as a script (JSONP, :mod:`lpm.emulator.jsonp`):
``GET /csdr/account/{acc}/service/{service}/baseURI.lpCsds?version=1.0&cb=<callback>`` answers
``application/javascript`` calling ``<callback>`` with LivePerson's ``ResultSet`` envelope, whose
``lpData[0].lpServer`` is the service's host (the same ``baseURI`` as the JSON forms)::

    /**/domainCallback({"ResultSet":{"lpData":[{"lpServer":"127.0.0.1:8443"}]}});

That is what LivePerson's messaging-window JavaScript SDK (``windowKit``, ``lpUtils.getDomain``)
and the published agent-widget samples read (``data.ResultSet.lpData[0].lpServer``, the callback
name in ``cb``).  An unknown account or service still calls back, with ``ResultSet.lpCallError``
(a text, the field LivePerson's connection library and those samples test) and no ``lpData``: a
script answered with an error status is never run, and the page would wait forever.  A missing
or malformed ``cb`` is refused with 400 and no script.
"""

from __future__ import annotations

from aiohttp import web

from lpm.emulator import jsonp
from lpm.emulator.context import Context
from lpm.emulator.http_common import json_response

SERVICES = (
    "asyncMessagingEnt",
    "facadeMsg",
    "agentVep",
    "idp",
    "sentinel",
    "swift",
    "messagingRestApiDomain",
    "msgHist",
    "runtimeFormLogic",
    "accountConfigReadOnly",
    "accountConfigReadWrite",
    "acCdnDomain",
    "mtlsGateway",
    "leDataReporting",
    "smt",
    "leAuthDomain",
)


def _check_account(ctx: Context, account_id: str) -> None:
    if account_id not in ctx.world.accounts:
        raise web.HTTPUnauthorized(
            text=f'{{"error":"unknown site {account_id}"}}', content_type="application/json"
        )


async def all_services(ctx: Context, request: web.Request) -> web.Response:
    account_id = request.match_info["account"]
    _check_account(ctx, account_id)
    return json_response(
        {
            "baseURIs": [
                {"service": name, "account": account_id, "baseURI": ctx.public_host} for name in SERVICES
            ]
        }
    )


async def one_service(ctx: Context, request: web.Request) -> web.Response:
    account_id = request.match_info["account"]
    service = request.match_info["service"]
    _check_account(ctx, account_id)
    if service not in SERVICES:
        raise web.HTTPNotFound(
            text=f'{{"error":"unknown service {service}"}}', content_type="application/json"
        )
    return json_response({"service": service, "account": account_id, "baseURI": ctx.public_host})


async def one_service_script(ctx: Context, request: web.Request) -> web.Response:
    """``GET /csdr/account/{acc}/service/{service}/baseURI.lpCsds?cb=<callback>`` (JSONP)."""
    try:
        callback = jsonp.callback_name(request, "cb")
    except jsonp.BadCallback as exc:
        return json_response({"error": str(exc)}, 400)
    account_id = request.match_info["account"]
    service = request.match_info["service"]
    if account_id not in ctx.world.accounts:
        result: dict[str, object] = {"lpCallError": f"unknown site {account_id}"}
    elif service not in SERVICES:
        result = {"lpCallError": f"unknown service {service}"}
    else:
        result = {"lpData": [{"lpServer": ctx.public_host}]}
    return jsonp.script(callback, {"ResultSet": result})
