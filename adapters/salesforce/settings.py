"""Salesforce adapter settings, from `STATESET_SALESFORCE_*` environment variables.

Without credentials the adapter runs against its built-in emulator, a sandbox org on loopback.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from servers.common.logging import register_secret
from servers.common.settings import ConfigError, env_int

DEFAULT_VERSION = "58.0"
SANDBOX_CLIENT_ID = "stateset-sandbox"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # the emulator's own, known to everyone: it guards nothing


class SalesforceSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    login_url: str
    """Where tokens come from: https://login.salesforce.com, https://test.salesforce.com or the org's My
    Domain (client credentials need My Domain). Data calls go to the `instance_url` the token names."""
    auth: Literal["client_credentials", "jwt"] = "client_credentials"
    client_id: str
    client_secret: SecretStr | None = None
    username: str | None = None
    """JWT bearer: the user the integration acts as (the assertion's subject)."""
    private_key: SecretStr | None = None
    """JWT bearer: the PEM key whose certificate is uploaded to the connected app."""
    audience: str = "https://login.salesforce.com"
    api_version: str = DEFAULT_VERSION
    idempotency_field: str | None = None
    """An external ID field (e.g. StateSet_Request_Id__c): creates with an idempotency key become upserts by
    it, so a retry after a lost answer never creates a second record."""
    poll_seconds: float = 10.0
    """How often changes are read for the event feed."""
    timeout_seconds: float = 30.0
    sandbox: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SalesforceSettings | None:
        """The configured org, or None when no credentials are configured (the sandbox runs instead)."""
        client_id = environ.get("STATESET_SALESFORCE_CLIENT_ID")
        if not client_id:
            return None
        login_url = environ.get("STATESET_SALESFORCE_LOGIN_URL", "").rstrip("/")
        if not re.fullmatch(r"https?://[^\s/]+", login_url):
            raise ConfigError(
                f"STATESET_SALESFORCE_LOGIN_URL={login_url!r} is not a base URL; use e.g. https://acme.my.salesforce.com"
            )
        version = environ.get("STATESET_SALESFORCE_API_VERSION", DEFAULT_VERSION).removeprefix("v")
        if not re.fullmatch(r"\d{2,3}\.0", version):
            raise ConfigError(f"STATESET_SALESFORCE_API_VERSION={version!r} is not an API version such as 58.0")
        secret = environ.get("STATESET_SALESFORCE_CLIENT_SECRET") or None
        key_file = environ.get("STATESET_SALESFORCE_PRIVATE_KEY_FILE") or None
        private_key = _private_key(Path(key_file)) if key_file else None
        auth: Literal["client_credentials", "jwt"] = "jwt" if private_key else "client_credentials"
        username = environ.get("STATESET_SALESFORCE_USERNAME") or None
        if auth == "jwt" and username is None:
            raise ConfigError("the JWT bearer flow needs STATESET_SALESFORCE_USERNAME, the user the app acts as")
        if auth == "client_credentials" and secret is None:
            raise ConfigError(
                "set STATESET_SALESFORCE_CLIENT_SECRET (client credentials flow) or "
                "STATESET_SALESFORCE_PRIVATE_KEY_FILE and STATESET_SALESFORCE_USERNAME (JWT bearer flow)"
            )
        for value in (secret, private_key):
            if value:
                register_secret(value)
        return cls(
            login_url=login_url,
            auth=auth,
            client_id=client_id,
            client_secret=SecretStr(secret) if secret else None,
            username=username,
            private_key=SecretStr(private_key) if private_key else None,
            audience=environ.get("STATESET_SALESFORCE_AUDIENCE", "https://login.salesforce.com"),
            api_version=version,
            idempotency_field=environ.get("STATESET_SALESFORCE_IDEMPOTENCY_FIELD") or None,
            poll_seconds=env_int(environ, "STATESET_SALESFORCE_POLL_SECONDS", 10, minimum=1),
        )

    @classmethod
    def sandbox_for(cls, url: str, *, poll_seconds: float = 2.0) -> SalesforceSettings:
        """Settings that reach the built-in emulator at `url`."""
        return cls(
            login_url=url,
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SecretStr(SANDBOX_CLIENT_SECRET),
            idempotency_field="StateSet_Request_Id__c",
            poll_seconds=poll_seconds,
            sandbox=True,
        )


def _private_key(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"STATESET_SALESFORCE_PRIVATE_KEY_FILE={path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{path} has permissions {mode:o}; a private key must be 0600 (run: chmod 600 {path})")
    if "PRIVATE KEY" not in text:
        raise ConfigError(f"{path} holds no PEM private key")
    return text
