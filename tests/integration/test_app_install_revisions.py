"""App installations under revisions: ``ac-revision`` on every answer, ``If-Match`` required on
PUT and DELETE (428 missing, 412 stale), the revision kept across a restart from a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from lpm.emulator.app import Emulator
from tests.helpers import login

ACC = "12345678"
BODY: dict[str, Any] = {
    "client_name": "revised",
    "capabilities": {
        "webhooks": {"ms.MessagingEventNotification.ContentEvent": {"endpoint": "https://x.example/h"}}
    },
}


def base(emu: Emulator) -> str:
    return f"{emu.base_url}/api/account/{ACC}/configuration/app-install/installations"


async def test_revision_codes(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    auth = {"Authorization": f"Bearer {(await login(http, emulator))['bearer']}"}
    async with http.get(base(emulator), headers=auth) as resp:
        assert resp.status == 200
        revision = resp.headers["ac-revision"]
    async with http.get(f"{base(emulator)}/lpm-emulator-app", headers=auth) as resp:
        assert resp.status == 200 and resp.headers["ac-revision"] == revision
    # POST: a new revision; a stale If-Match is refused, none is fine.
    async with http.post(base(emulator), headers={**auth, "If-Match": "999"}, json=BODY) as resp:
        assert resp.status == 412 and resp.headers["ac-revision"] == revision
    async with http.post(base(emulator), headers=auth, json=BODY) as resp:
        assert resp.status == 201
        created = await resp.json()
        after_post = resp.headers["ac-revision"]
    assert int(after_post) == int(revision) + 1
    one = f"{base(emulator)}/{created['client_id']}"
    # PUT: 428 without If-Match, 412 with the old revision, 200 with the current one (quoted too).
    async with http.put(one, headers=auth, json=BODY) as resp:
        assert resp.status == 428 and (await resp.json())["code"] == 428
        assert resp.headers["ac-revision"] == after_post
    async with http.put(one, headers={**auth, "If-Match": revision}, json=BODY) as resp:
        assert resp.status == 412 and (await resp.json())["code"] == 412
    async with http.put(one, headers={**auth, "If-Match": f'"{after_post}"'}, json=BODY) as resp:
        assert resp.status == 200
        after_put = resp.headers["ac-revision"]
    assert int(after_put) == int(after_post) + 1
    # Body errors come before the precondition; 404 and 401 before everything.
    async with http.put(one, headers=auth, data=b"{nope") as resp:
        assert resp.status == 400
    async with http.put(f"{base(emulator)}/nope", headers={**auth, "If-Match": after_put}, json=BODY) as resp:
        assert resp.status == 404 and resp.headers["ac-revision"] == after_put
    async with http.delete(one, headers={"If-Match": after_put}) as resp:
        assert resp.status == 401 and "ac-revision" not in resp.headers
    # DELETE: the same rules.
    async with http.delete(one, headers=auth) as resp:
        assert resp.status == 428
    async with http.delete(one, headers={**auth, "If-Match": after_post}) as resp:
        assert resp.status == 412
    async with http.delete(one, headers={**auth, "If-Match": after_put}) as resp:
        assert resp.status == 204 and int(resp.headers["ac-revision"]) == int(after_put) + 1
    async with http.get(one, headers=auth) as resp:
        assert resp.status == 404


async def test_revision_survives_a_restart(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    db = tmp_path / "world.db"
    async with Emulator(db=db) as emu:
        auth = {"Authorization": f"Bearer {(await login(http, emu))['bearer']}"}
        async with http.post(base(emu), headers=auth, json=BODY) as resp:
            assert resp.status == 201
            revision = resp.headers["ac-revision"]
            client_id = (await resp.json())["client_id"]
    async with Emulator(db=db) as emu:
        auth = {"Authorization": f"Bearer {(await login(http, emu))['bearer']}"}
        async with http.get(base(emu), headers=auth) as resp:
            assert resp.headers["ac-revision"] == revision
            assert client_id in [i["client_id"] for i in await resp.json()]
        async with http.delete(f"{base(emu)}/{client_id}", headers={**auth, "If-Match": revision}) as resp:
            assert resp.status == 204
