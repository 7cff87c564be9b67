"""SAP adapter settings, from `STATESET_SAP_*` environment variables.

Without a configured system the adapter runs against its built-in emulator, a sandbox S/4HANA on loopback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from adapters.sap.models import SANDBOX_QUEUE, SERVICE_PATH
from servers.common.logging import register_secret
from servers.common.settings import ConfigError, env_int

SANDBOX_USER, SANDBOX_PASSWORD = "STATESET", "sandbox-password"  # the emulator's own: they guard nothing


class SapSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_url: str
    """The system's host, e.g. https://my-s4.example.com or https://my123456-api.s4hana.cloud.sap"""
    auth: Literal["basic", "oauth"] = "basic"
    username: str | None = None
    password: SecretStr | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    sap_client: str | None = "100"
    """The ABAP client (`sap-client`); None for systems that pick it themselves, as S/4HANA Cloud does."""
    event_queue: str | None = None
    """An Event Mesh queue to consume purchase order events from (REST consumption at base_url)."""
    poll_seconds: float = 10.0
    timeout_seconds: float = 30.0
    sandbox: bool = False

    @property
    def service_url(self) -> str:
        return f"{self.base_url}{SERVICE_PATH}"

    def url_of(self, service: str) -> str:
        """The root of another OData V2 service on the same system, e.g. API_MATERIAL_STOCK_SRV."""
        return f"{self.base_url}/sap/opu/odata/sap/{service}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SapSettings | None:
        base_url = (environ.get("STATESET_SAP_URL") or "").rstrip("/")
        if not base_url:
            return None
        if not re.fullmatch(r"https?://[^\s/]+", base_url):
            raise ConfigError(f"STATESET_SAP_URL={base_url!r} is not a base URL such as https://my-s4.example.com")
        client = environ.get("STATESET_SAP_CLIENT", "100") or None
        if client is not None and not re.fullmatch(r"\d{3}", client):
            raise ConfigError(f"STATESET_SAP_CLIENT={client!r} is not a three-digit client such as 100")
        username, password = environ.get("STATESET_SAP_USER"), environ.get("STATESET_SAP_PASSWORD")
        client_id, secret = environ.get("STATESET_SAP_CLIENT_ID"), environ.get("STATESET_SAP_CLIENT_SECRET")
        token_url = environ.get("STATESET_SAP_TOKEN_URL")
        for value in (password, secret):
            if value:
                register_secret(value)
        common = {
            "base_url": base_url,
            "sap_client": client,
            "event_queue": environ.get("STATESET_SAP_EVENT_QUEUE") or None,
            "poll_seconds": env_int(environ, "STATESET_SAP_POLL_SECONDS", 10, minimum=1),
        }
        if client_id and secret and token_url:
            return cls(
                auth="oauth", client_id=client_id, client_secret=SecretStr(secret), token_url=token_url, **common
            )
        if username and password:
            return cls(auth="basic", username=username, password=SecretStr(password), **common)
        raise ConfigError(
            "STATESET_SAP_URL is set: also set STATESET_SAP_USER and STATESET_SAP_PASSWORD (Basic auth), or "
            "STATESET_SAP_TOKEN_URL, STATESET_SAP_CLIENT_ID and STATESET_SAP_CLIENT_SECRET (OAuth client credentials)"
        )

    @classmethod
    def sandbox_for(cls, url: str, *, poll_seconds: float = 2.0) -> SapSettings:
        return cls(
            base_url=url,
            username=SANDBOX_USER,
            password=SecretStr(SANDBOX_PASSWORD),
            event_queue=SANDBOX_QUEUE,
            poll_seconds=poll_seconds,
            sandbox=True,
        )
