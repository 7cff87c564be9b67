"""The OData client and the adapter against the emulator in this process: the CSRF handshake bound to one
shared session, retries, lost answers, auth, and errors that name SAP's code and property. The last tests
keep real sockets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from adapters.base import AuthenticationError, OutcomeUnknownError, PlatformRejectedError, PlatformUnavailableError
from adapters.sandbox.transport import InProcess
from adapters.sap.adapter import SapAdapter, reference_for
from adapters.sap.client import SapClient
from adapters.sap.models import ItemInput
from adapters.sap.sandbox import Fault, SapSystem
from adapters.sap.settings import SapSettings
from adapters.sap.store import MIGRATIONS, SapStore
from servers.common.db import Database
from servers.common.errors import ConflictError
from servers.common.feed import ChangeFeed
from tests.adapters.sap.conftest import FAST, IN_PROCESS, ORDER, Harness, client_for

pytestmark = pytest.mark.anyio

BODY = {
    "PurchaseOrderType": "NB",
    "CompanyCode": "1710",
    "Supplier": "17300001",
    "PurchasingOrganization": "1710",
    "PurchasingGroup": "001",
    "DocumentCurrency": "USD",
    "to_PurchaseOrderItem": [
        {
            "Material": "TG11",
            "Plant": "1710",
            "OrderQuantity": "5",
            "PurchaseOrderQuantityUnit": "PC",
            "NetPriceAmount": "10",
        }
    ],
}


def order_arguments(**changes: object) -> dict[str, object]:
    arguments = dict(ORDER) | changes
    arguments["items"] = [ItemInput.model_validate(item) for item in arguments["items"]]  # type: ignore[attr-defined]
    return arguments


async def test_the_first_write_fetches_the_token_and_later_ones_reuse_it(sap: SapClient, system: SapSystem) -> None:
    first = await sap.request("POST", "/A_PurchaseOrder", json=BODY)
    second = await sap.request("POST", "/A_PurchaseOrder", json=BODY)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.headers["location"].endswith("A_PurchaseOrder('4500000000')")
    assert sap.csrf_fetches == 1 and system.csrf_fetches == 1
    assert len(system.sessions) == 1  # one Gateway session for every request
    assert all(r["query"] == "sap-client=100" for r in system.requests)


async def test_a_stale_session_is_refetched_once_and_the_write_repeated(sap: SapClient, system: SapSystem) -> None:
    await sap.request("POST", "/A_PurchaseOrder", json=BODY)
    system.expire_sessions()
    response = await sap.request("POST", "/A_PurchaseOrder", json=BODY)
    assert response.status_code == 201 and sap.csrf_fetches == 2 and len(system.orders) == 2


async def test_a_token_refused_again_after_the_refetch_is_an_error(sap: SapClient, system: SapSystem) -> None:
    system.lost_affinity = True
    with pytest.raises(PlatformRejectedError) as refused:
        await sap.request("POST", "/A_PurchaseOrder", json=BODY)
    assert refused.value.status == 403 and "CSRF token validation failed" in refused.value.message
    assert "refused twice" in str(refused.value) and sap.csrf_fetches == 2  # one refetch, then it gives up
    assert system.orders == {}


async def test_parallel_writers_share_one_session_and_one_refetch(sap: SapClient, system: SapSystem) -> None:
    await sap.request("POST", "/A_PurchaseOrder", json=BODY)
    system.expire_sessions()
    async with anyio.create_task_group() as tasks:
        for _ in range(12):
            tasks.start_soon(lambda: sap.request("POST", "/A_PurchaseOrder", json=BODY))
    assert len(system.orders) == 13
    assert sap.csrf_fetches == 2  # the twelve writers that met the stale token fetched once between them


async def test_busy_answers_are_retried_and_create_once(sap: SapClient, system: SapSystem) -> None:
    system.inject(Fault(status=503), times=2)
    system.inject(Fault(status=429, code="/IWFND/CM_BEC/429", message="Too many requests"))
    assert (await sap.request("POST", "/A_PurchaseOrder", json=BODY)).status_code == 201
    assert len(system.orders) == 1


async def test_a_technical_error_is_not_retried(sap: SapClient, system: SapSystem) -> None:
    system.inject(Fault(status=500, code="/IWBEP/CM_MGW_RT/000", message="Runtime error"))
    with pytest.raises(PlatformRejectedError, match="/IWBEP/CM_MGW_RT/000: Runtime error"):
        await sap.request("POST", "/A_PurchaseOrder", json=BODY)


async def test_a_lost_create_without_a_key_is_reported_not_repeated(harness: Harness) -> None:
    harness.system.inject(Fault(drop=True, after_commit=True, method="POST"))
    with pytest.raises(OutcomeUnknownError):
        await harness.adapter.create_purchase_order(**order_arguments())  # type: ignore[arg-type]
    assert len(harness.system.orders) == 1


async def test_a_lost_create_with_a_key_is_found_by_its_reference(harness: Harness) -> None:
    harness.system.inject(Fault(drop=True, after_commit=True, method="POST"))
    order = await harness.adapter.create_purchase_order(**order_arguments(idempotency_key="po-7"))  # type: ignore[arg-type]
    assert len(harness.system.orders) == 1 and order.reference == reference_for("po-7") and not order.created
    again = await harness.adapter.create_purchase_order(**order_arguments(idempotency_key="po-7"))  # type: ignore[arg-type]
    assert again.id == order.id and len(harness.system.orders) == 1


async def test_a_key_whose_create_never_arrived_creates_once(harness: Harness) -> None:
    harness.system.inject(Fault(drop=True, method="POST"))  # dropped before anything was stored
    order = await harness.adapter.create_purchase_order(**order_arguments(idempotency_key="po-8"))  # type: ignore[arg-type]
    assert order.created and len(harness.system.orders) == 1


async def test_wrong_basic_credentials_are_an_authentication_error(transport: InProcess) -> None:
    client = client_for(
        transport, SapSettings.sandbox_for(IN_PROCESS).model_copy(update={"password": SecretStr("wrong")})
    )
    with pytest.raises(AuthenticationError) as refused:
        await client.request("GET", "/A_PurchaseOrder")
    assert "basic credentials of STATESET" in refused.value.message and "Logon failed" in refused.value.message
    assert "wrong" not in str(refused.value)
    await client.aclose()


async def test_oauth_client_credentials(transport: InProcess, system: SapSystem) -> None:
    settings = SapSettings(
        base_url=IN_PROCESS,
        auth="oauth",
        token_url=f"{IN_PROCESS}/sap/bc/sec/oauth2/token",
        client_id="stateset-sandbox",
        client_secret=SecretStr("sandbox-secret"),
    )
    client = client_for(transport, settings)
    assert (await client.request("POST", "/A_PurchaseOrder", json=BODY)).status_code == 201
    system.bearer_tokens.clear()  # the bearer token expires: renewed once, transparently
    assert (await client.request("GET", "/A_PurchaseOrder")).status_code == 200
    bad = client_for(transport, settings.model_copy(update={"client_secret": SecretStr("nope")}))
    with pytest.raises(AuthenticationError, match="refused client stateset-sandbox"):
        await bad.request("GET", "/A_PurchaseOrder")
    await client.aclose()
    await bad.aclose()


async def test_the_wrong_client_is_refused_in_the_error_envelope(transport: InProcess) -> None:
    client = client_for(transport, SapSettings.sandbox_for(IN_PROCESS).model_copy(update={"sap_client": "999"}))
    with pytest.raises(PlatformRejectedError, match="Client 999 is not available"):
        await client.request("GET", "/A_PurchaseOrder")
    await client.aclose()


async def test_if_match_is_sent_when_the_metadata_declares_an_etag(harness: Harness) -> None:
    from adapters.sap.models import PurchaseOrderChanges

    order = await harness.adapter.create_purchase_order(**order_arguments())  # type: ignore[arg-type]
    harness.system.etags = True
    changed = await harness.adapter.update_purchase_order(order.id, PurchaseOrderChanges(payment_terms="0001"))
    assert changed.payment_terms == "0001"
    patch = [r for r in harness.system.requests if r["method"] == "PATCH"][-1]
    assert patch["headers"]["if-match"].startswith('W/"datetimeoffset')


async def test_latency_is_waited_out(sap: SapClient, system: SapSystem) -> None:
    import time

    system.inject(Fault(latency_ms=300, status=0, method="POST"))
    began = time.monotonic()
    assert (await sap.request("POST", "/A_PurchaseOrder", json=BODY)).status_code == 201
    assert time.monotonic() - began >= 0.3 and len(system.orders) == 1


# over real sockets


async def test_over_a_socket_the_session_is_shared_refetched_and_a_lost_create_found(
    url: str, system: SapSystem, tmp_path: Path
) -> None:
    client = SapClient(SapSettings.sandbox_for(url), backoff=FAST)
    assert (await client.request("POST", "/A_PurchaseOrder", json=BODY)).status_code == 201
    system.expire_sessions()
    assert (await client.request("POST", "/A_PurchaseOrder", json=BODY)).status_code == 201
    assert client.csrf_fetches == 2 and len(system.orders) == 2
    system.inject(Fault(drop=True, after_commit=True, method="POST"))
    with pytest.raises(OutcomeUnknownError, match="RemoteProtocolError"):
        await client.request("POST", "/A_PurchaseOrder", json=BODY)
    assert len(system.orders) == 3
    await client.aclose()


async def test_an_unreachable_system_is_retried_then_reported() -> None:
    client = SapClient(SapSettings.sandbox_for("http://127.0.0.1:9"), backoff=FAST)
    with pytest.raises(PlatformUnavailableError, match="SAP did not answer GET /"):
        await client.request("GET", "/A_PurchaseOrder")
    await client.aclose()


async def test_a_key_stored_before_canonical_json_still_answers(
    tmp_path: Path, sap: SapClient, system: SapSystem
) -> None:
    """A fingerprint taken with json.dumps(sort_keys=True), in a file from before migration 2, still matches."""
    number = (await sap.request("POST", "/A_PurchaseOrder", json=BODY)).json()["d"]["PurchaseOrder"]
    arguments = order_arguments(
        items=[{"material": "TG11", "quantity": "5", "unit": "PC", "net_price": "10", "plant": "1710"}]
    )
    legacy = hashlib.sha256(json.dumps(BODY, sort_keys=True).encode()).hexdigest()  # the body the adapter sends
    path = tmp_path / "old-sap.db"
    async with Database.open(path, MIGRATIONS[:1]) as old:
        await SapStore(old).write(lambda tx: tx.save_request("po-old", legacy, number, 0))
    async with Database.open(path, MIGRATIONS) as db:
        adapter = SapAdapter(sap, SapStore(db), ChangeFeed())
        again = await adapter.create_purchase_order(**arguments, idempotency_key="po-old")  # type: ignore[arg-type]
        assert again.id == number and not again.created and len(system.orders) == 1
        with pytest.raises(ConflictError, match="was used for another purchase order"):
            await adapter.create_purchase_order(**(arguments | {"supplier": "17300002"}), idempotency_key="po-old")  # type: ignore[arg-type]
