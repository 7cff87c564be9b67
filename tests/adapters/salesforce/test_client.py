"""The REST client against the emulator in this process: OAuth flows, renewal, retries that never
duplicate, paging, limits, and errors that name what Salesforce said. The last tests keep real sockets:
a refused connection, and a connection broken mid-answer."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from adapters.base import AuthenticationError, OutcomeUnknownError, PlatformRejectedError, PlatformUnavailableError
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.sandbox import Fault, SalesforceOrg, build_app
from adapters.salesforce.settings import SalesforceSettings
from adapters.sandbox.transport import InProcess
from tests.adapters.salesforce.conftest import FAST, IN_PROCESS, client_for

pytestmark = pytest.mark.anyio

LEAD = {"LastName": "Lovelace", "Company": "Analytical Engines"}


def token_calls(org: SalesforceOrg) -> int:
    return sum(1 for r in org.requests if r["path"].endswith("/oauth2/token"))


async def test_client_credentials_then_every_call_goes_to_the_instance_url(
    sf: SalesforceClient, org: SalesforceOrg
) -> None:
    session = await sf.authenticate()
    assert session.instance_url == "http://localhost"  # not the token host, 127.0.0.1
    record_id, created = await sf.create("Lead", LEAD)
    assert created and len(record_id) == 18 and record_id.startswith("00Q")
    assert org.requests[-1]["headers"]["host"] == "localhost"


async def test_refused_credentials_name_the_client_and_the_reason(transport: InProcess) -> None:
    client = client_for(transport, client_secret=SecretStr("wrong"))
    with pytest.raises(AuthenticationError) as refused:
        await client.authenticate()
    assert "client stateset-sandbox" in refused.value.message
    assert "invalid_client: invalid client credentials" in refused.value.message
    assert "wrong" not in str(refused.value)
    await client.aclose()


async def test_the_jwt_bearer_flow_signs_an_assertion_the_org_verifies(
    transport: InProcess, org: SalesforceOrg
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    org.jwt_consumer_key = "3MVG9-consumer-key"
    org.jwt_public_key = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = SalesforceSettings(
        login_url=IN_PROCESS,
        auth="jwt",
        client_id="3MVG9-consumer-key",
        username="integration@stateset.example",
        private_key=SecretStr(pem),
    )
    client = SalesforceClient(settings, backoff=FAST, transport=transport)
    record_id, _ = await client.create("Lead", LEAD)
    assert record_id.startswith("00Q")
    stranger = SalesforceClient(
        settings.model_copy(update={"username": "someone@else.example"}), backoff=FAST, transport=transport
    )
    with pytest.raises(AuthenticationError, match="user hasn't approved this consumer"):
        await stranger.authenticate()
    await client.aclose()
    await stranger.aclose()


async def test_an_expired_session_is_renewed_once(sf: SalesforceClient, org: SalesforceOrg) -> None:
    await sf.create("Lead", LEAD)
    org.expire_tokens()
    await sf.create("Lead", LEAD)  # 401 INVALID_SESSION_ID, a new token, the same call again
    assert token_calls(org) == 2 and len(org.records["Lead"]) == 2

    org.inject(Fault(status=401, code="INVALID_SESSION_ID", message="Session expired or invalid"), times=2)
    with pytest.raises(PlatformRejectedError) as refused:
        await sf.get("Lead", next(iter(org.records["Lead"])))
    assert refused.value.status == 401 and token_calls(org) == 3  # renewed once, not in a loop


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=503, code="SERVER_UNAVAILABLE"),
        Fault(status=429, code="REQUEST_LIMIT_EXCEEDED", message="slow down", retry_after=0),
        Fault(status=400, code="UNABLE_TO_LOCK_ROW", message="unable to obtain exclusive access to this record"),
    ],
    ids=["503", "429", "UNABLE_TO_LOCK_ROW"],
)
async def test_transient_refusals_are_retried_and_create_once(
    sf: SalesforceClient, org: SalesforceOrg, fault: Fault
) -> None:
    org.inject(fault, times=2)
    record_id, _ = await sf.create("Lead", LEAD)
    assert list(org.records["Lead"]) == [record_id]
    assert sum(1 for r in org.requests if r["method"] == "POST" and "sobjects/Lead" in r["path"]) == 3


async def test_retries_end_with_the_platforms_own_error(sf: SalesforceClient, org: SalesforceOrg) -> None:
    org.inject(Fault(status=400, code="UNABLE_TO_LOCK_ROW", message="unable to obtain exclusive access"), times=9)
    with pytest.raises(PlatformRejectedError) as refused:
        await sf.create("Lead", LEAD)
    assert "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access" in refused.value.message
    assert org.records["Lead"] == {}


async def test_a_create_whose_answer_is_lost_is_not_repeated(sf: SalesforceClient, org: SalesforceOrg) -> None:
    org.inject(Fault(drop=True, after_commit=True, method="POST"))
    with pytest.raises(OutcomeUnknownError) as unknown:
        await sf.create("Lead", LEAD)
    assert "may or may not have been applied" in unknown.value.message
    assert len(org.records["Lead"]) == 1  # created once, and not again


async def test_an_upsert_by_request_id_is_repeated_safely(sf: SalesforceClient, org: SalesforceOrg) -> None:
    org.inject(Fault(drop=True, after_commit=True, method="PATCH"))
    record_id, created = await sf.create("Lead", LEAD, request_id="req-1")
    assert list(org.records["Lead"]) == [record_id]
    assert not created  # the lost first try created it; the repeat found it
    again, created = await sf.create("Lead", LEAD, request_id="req-1")
    assert again == record_id and not created and len(org.records["Lead"]) == 1


async def test_queries_follow_every_page(sf: SalesforceClient, org: SalesforceOrg) -> None:
    for n in range(7):
        await sf.create("Lead", {"LastName": f"Lead {n}", "Company": "Acme" if n % 2 else "Other"})
    total, records, complete = await sf.query("SELECT Id, LastName FROM Lead ORDER BY LastName", max_records=100)
    assert (total, complete) == (7, True)
    assert [r["LastName"] for r in records] == [f"Lead {n}" for n in range(7)]
    assert sum(1 for r in org.requests if "/query" in r["path"]) == 3  # batches of 3
    total, records, complete = await sf.query("SELECT Id FROM Lead", max_records=5)
    assert (total, len(records), complete) == (7, 5, False)
    total, records, _ = await sf.query("SELECT Id FROM Lead WHERE Company = 'acme'", max_records=100)
    assert total == 3


async def test_the_limit_header_is_read_and_the_daily_limit_is_final(sf: SalesforceClient, org: SalesforceOrg) -> None:
    await sf.create("Lead", LEAD)
    assert sf.api_usage is not None and (sf.api_usage.used, sf.api_usage.limit) == (1, 15_000)
    org.daily_limit = 2
    await sf.query("SELECT Id FROM Lead", max_records=10)
    with pytest.raises(PlatformRejectedError, match="REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded"):
        await sf.query("SELECT Id FROM Lead", max_records=10)


async def test_salesforce_errors_name_code_message_and_fields(sf: SalesforceClient, org: SalesforceOrg) -> None:
    with pytest.raises(PlatformRejectedError) as refused:
        await sf.create("Lead", {"Company": "Acme"})
    assert refused.value.status == 400
    assert refused.value.message == (
        "Salesforce refused the request (HTTP 400): REQUIRED_FIELD_MISSING: Required fields are missing: "
        "[LastName] (fields: LastName)"
    )
    unknown_version = client_for(InProcess(build_app(org)), api_version="99.0")
    with pytest.raises(PlatformRejectedError, match="NOT_FOUND"):
        await unknown_version.create("Lead", LEAD)
    await unknown_version.aclose()


async def test_latency_is_waited_out(sf: SalesforceClient, org: SalesforceOrg) -> None:
    org.inject(Fault(latency_ms=300, status=0))
    began = time.monotonic()
    await sf.create("Lead", LEAD)
    assert time.monotonic() - began >= 0.3 and len(org.records["Lead"]) == 1


async def test_a_server_error_is_reported_not_retried(sf: SalesforceClient, org: SalesforceOrg) -> None:
    org.inject(Fault(status=500, code="UNKNOWN_EXCEPTION", message="An unexpected error occurred"))
    with pytest.raises(PlatformRejectedError, match="UNKNOWN_EXCEPTION: An unexpected error occurred"):
        await sf.create("Lead", LEAD)
    assert org.records["Lead"] == {}


# over real sockets


async def test_an_unreachable_org_is_retried_then_reported() -> None:
    client = SalesforceClient(SalesforceSettings.sandbox_for("http://127.0.0.1:9"), backoff=FAST)
    with pytest.raises(PlatformUnavailableError, match="token endpoint"):
        await client.authenticate()
    await client.aclose()


async def test_over_a_socket_a_lost_create_is_unknown_and_an_expired_token_renewed(
    url: str, org: SalesforceOrg
) -> None:
    client = SalesforceClient(SalesforceSettings.sandbox_for(url), backoff=FAST)
    org.inject(Fault(drop=True, after_commit=True, method="POST"))
    with pytest.raises(OutcomeUnknownError, match="RemoteProtocolError"):
        await client.create("Lead", LEAD)
    org.expire_tokens()
    record_id, _ = await client.create("Lead", LEAD)
    assert len(org.records["Lead"]) == 2 and (await client.get("Lead", record_id))["Id"] == record_id
    assert client.instance_url is not None and client.instance_url.startswith("http://localhost:")
    await client.aclose()
