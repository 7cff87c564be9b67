"""The emulators' test hooks (/_emulator/*) reset state, queue faults, seed stock and hand out every request
body they logged: they answer only a loopback Host and Origin (the MCP endpoints' DNS-rebinding check) with
the emulator's control token, random per emulator. Checked on both emulators, in process and over a socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from adapters.salesforce.sandbox import SalesforceOrg
from adapters.salesforce.sandbox import build_app as salesforce_app
from adapters.sandbox.hooks import HookControl
from adapters.sandbox.transport import InProcess
from adapters.sap.sandbox import SapSystem
from adapters.sap.sandbox import build_app as sap_app
from servers.common.transports import serving

pytestmark = pytest.mark.anyio

STOCK = {"material": "TG11", "plant": "1710", "quantity": "7"}
Emulator = tuple[Callable[[], HookControl], Callable[[Any], Starlette], dict[str, Any]]
EMULATORS: dict[str, Emulator] = {
    "salesforce": (
        SalesforceOrg,
        salesforce_app,
        {"expire-tokens": None, "faults": {"status": 503}, "reset": None},
    ),
    "sap": (SapSystem, sap_app, {"expire-sessions": None, "faults": {"status": 503}, "stock": STOCK}),
}


def state(emulator: HookControl) -> str:
    """What the hooks could change or reveal: queued faults, records, stock."""
    kept = {key: value for key, value in vars(emulator).items() if key not in ("requests", "control_token")}
    return json.dumps(kept, default=repr, sort_keys=True)


def hooks(name: str) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every hook of the emulator."""
    posts = [("POST", f"/_emulator/{hook}", body) for hook, body in EMULATORS[name][2].items()]
    return [("GET", "/_emulator/requests", None), *posts]


async def send(http: httpx2.AsyncClient, method: str, path: str, body: Any, **headers: str) -> httpx2.Response:
    return await http.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("name", list(EMULATORS))
async def test_each_hook_needs_the_control_token_and_a_loopback_host_and_changes_nothing_without(name: str) -> None:
    make, app, _ = EMULATORS[name]
    emulator = make()
    token = f"Bearer {emulator.control_token}"
    async with httpx2.AsyncClient(base_url="http://127.0.0.1", transport=InProcess(app(emulator))) as http:
        for method, path, body in hooks(name):
            before = state(emulator)
            refusals = [
                (await send(http, method, path, body), 401),
                (await send(http, method, path, body, authorization="Bearer wrong"), 401),
                (await send(http, method, path, body, authorization=emulator.control_token), 401),  # no scheme
                (await send(http, method, path, body, authorization=token, host="evil.example"), 421),
                (await send(http, method, path, body, authorization=token, host="127.0.0.1.evil.example"), 421),
                (await send(http, method, path, body, authorization=token, origin="http://evil.example"), 403),
            ]
            for response, status in refusals:
                assert response.status_code == status, (path, response.request.headers, response.text)
            assert refusals[0][0].headers["www-authenticate"].startswith("Bearer")
            assert state(emulator) == before, path
            for host in ("127.0.0.1", "localhost:8123", "[::1]:8123"):
                answered = await send(http, method, path, body, authorization=token, host=host)
                assert answered.status_code in (200, 204), (path, host, answered.text)
                answered = await send(http, method, path, body, **emulator.control_headers, origin=f"http://{host}")
                assert answered.status_code in (200, 204), (path, host, answered.text)


async def test_the_control_token_is_random_per_emulator_and_never_in_its_repr() -> None:
    orgs, systems = [SalesforceOrg() for _ in range(2)], [SapSystem() for _ in range(2)]
    tokens = {emulator.control_token for emulator in [*orgs, *systems]}
    assert len(tokens) == 4 and all(len(token) >= 32 for token in tokens)
    assert not any(emulator.control_token in repr(emulator) for emulator in [*orgs, *systems])
    assert SapSystem(control_token="chosen").control_headers == {"Authorization": "Bearer chosen"}


@pytest.mark.parametrize("name", list(EMULATORS))
async def test_over_a_socket_the_hooks_answer_only_the_token_holder(name: str) -> None:
    make, app, _ = EMULATORS[name]
    emulator = make()
    async with serving(app(emulator)) as url, httpx2.AsyncClient(base_url=url) as http:
        assert (await http.get("/_emulator/requests")).status_code == 401
        rebound = await http.get(
            "/_emulator/requests", headers={**emulator.control_headers, "host": "attacker.example"}
        )
        assert rebound.status_code == 421
        logged = await http.get("/_emulator/requests", headers=emulator.control_headers)
        assert logged.status_code == 200 and isinstance(logged.json(), list)
