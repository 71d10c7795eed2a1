"""App installs hold client secrets (which buy AppJWTs, and an AppJWT acts for any participant on
UMS REST; webhooks receive every conversation's messages): managers see and manage every install,
other agents only those they created (403 otherwise); consumers and app tokens get 401."""

from __future__ import annotations

import aiohttp

from lpm.emulator.app import Emulator
from tests.helpers import login, signup
from tests.security.faces import APP_SECRET, app_jwt

BODY = {"client_name": "probe", "capabilities": {"webhooks": {}}}


async def test_agents_manage_only_their_own_app_installs(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    base = f"{emulator.base_url}/api/account/{emulator.account_id}/configuration/app-install/installations"
    bot = {"Authorization": f"Bearer {(await login(http, emulator, 'bot'))['bearer']}"}
    manager = {"Authorization": f"Bearer {(await login(http, emulator, 'agent'))['bearer']}"}
    # The world's Send API install is not the bot's: no secret, no change, no removal.
    for method in ("GET", "PUT", "DELETE"):
        async with http.request(method, f"{base}/lpm-emulator-app", headers=bot, json=BODY) as resp:
            text = await resp.text()
            assert resp.status == 403, (method, text)
            assert APP_SECRET not in text
    # The bot manages what it registers (its own webhooks), and lists only that.
    async with http.post(base, headers=bot, json=BODY) as resp:
        assert resp.status == 201
        own = await resp.json()
    async with http.get(base, headers=bot) as resp:
        assert [i["client_id"] for i in await resp.json()] == [own["client_id"]]
    revision = {"If-Match": resp.headers["ac-revision"]}  # of the list just read
    async with http.put(f"{base}/{own['client_id']}", headers={**bot, **revision}, json=BODY) as resp:
        assert resp.status == 200
        revision = {"If-Match": resp.headers["ac-revision"]}
    # Consumers and apps have no business here.
    for token in (await signup(http, emulator), await app_jwt(http, emulator)):
        async with http.get(base, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 401
            assert APP_SECRET not in await resp.text()
    # The manager sees and manages everything, the world's install intact.
    async with http.get(base, headers=manager) as resp:
        listed = {i["client_id"]: i for i in await resp.json()}
    assert listed.keys() == {"lpm-emulator-app", own["client_id"]}
    assert listed["lpm-emulator-app"]["client_secret"] == APP_SECRET
    async with http.delete(f"{base}/{own['client_id']}", headers={**manager, **revision}) as resp:
        assert resp.status == 204
