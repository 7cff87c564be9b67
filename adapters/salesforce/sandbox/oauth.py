"""OAuth 2.0 as the emulated org does it: the token endpoint (client credentials, by form fields or HTTP
Basic, and the JWT bearer flow checked against the configured public key), and the bearer check on every
data call.

Refusals at the token endpoint come in OAuth's shape, {"error", "error_description"}; a data call without a
live token is 401 INVALID_SESSION_ID in Salesforce's error array. Token answers carry `instance_url` on
another host name than the token URL (127.0.0.1 and localhost swap), and no `expires_in`.
"""

from __future__ import annotations

import base64
import secrets
import time

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.salesforce.sandbox.errors import ApiError
from adapters.salesforce.sandbox.org import SalesforceOrg

JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def authorize(request: Request, org: SalesforceOrg) -> None:
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").removeprefix("OAuth ").strip()
    if not token or token not in org.tokens:
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def _refuse(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def token(request: Request, org: SalesforceOrg) -> Response:
    form = await request.form()
    grant = str(form.get("grant_type", ""))
    # logged without the secret or the assertion: the request log is readable by anyone who can reach it
    org.requests.append({"method": "POST", "path": request.url.path, "query": "", "body": {"grant_type": grant}})
    if grant == "client_credentials":
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return _refuse("invalid_client", "invalid client credentials")
        if client_id not in org.clients:
            return _refuse("invalid_client_id", "client identifier invalid")
        if not secrets.compare_digest(org.clients[client_id], secret):
            return _refuse("invalid_client", "invalid client credentials")
    elif grant == JWT_GRANT:
        refusal = _check_assertion(str(form.get("assertion", "")), org)
        if refusal is not None:
            return refusal
    elif grant:
        return _refuse("unsupported_grant_type", "grant type not supported")
    else:
        return _refuse("invalid_request", "grant type not specified")
    access_token = f"{org.org_id[:15]}!{secrets.token_urlsafe(48)}"
    org.tokens[access_token] = time.time()
    host = request.url.hostname
    instance_host = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host or "", host)
    port = f":{request.url.port}" if request.url.port else ""
    return JSONResponse(
        {
            "access_token": access_token,
            "instance_url": f"{request.url.scheme}://{instance_host}{port}",
            "id": f"https://login.salesforce.com/id/{org.org_id}/{org.user_id}",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": "api",
        }
    )


def _check_assertion(assertion: str, org: SalesforceOrg) -> Response | None:
    """None when the JWT bearer assertion is good; else the refusal Salesforce answers."""
    if org.jwt_public_key is None:
        return _refuse("invalid_grant", "user hasn't approved this consumer")
    try:
        claims = jwt.decode(
            assertion,
            org.jwt_public_key,
            algorithms=["RS256"],
            audience=list(JWT_AUDIENCES),
            issuer=org.jwt_consumer_key,
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        return _refuse("invalid_grant", "expired authorization code")
    except jwt.InvalidAudienceError:
        return _refuse("invalid_grant", "audience is invalid")
    except jwt.InvalidIssuerError:
        return _refuse("invalid_client_id", "client identifier invalid")
    except jwt.PyJWTError:
        return _refuse("invalid_grant", "invalid assertion")
    if claims["sub"] != org.jwt_username:
        return _refuse("invalid_grant", "user hasn't approved this consumer")
    return None
