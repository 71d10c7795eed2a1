"""CSDS (Domain API): every service name points at this emulator's own ``host:port``.

Serves the three shapes clients use: ``/api/account/{acc}/service/baseURI.json`` (node-agent-sdk,
lp-messaging-sdk), ``/csdr/account/{acc}/service/baseURI.json`` (lp-api) and the single-service
``/api/account/{acc}/service/{service}/baseURI.json``.  Unknown accounts answer 401 ("bad site"),
unknown single services 404.
"""

from __future__ import annotations

from aiohttp import web

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
