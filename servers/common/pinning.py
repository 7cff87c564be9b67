"""Whom a token goes to: a server proves it is the mesh's before a client of the mesh sends it a bearer token.

A bearer token opens whatever it was issued for, to whoever holds it; a process that squats a mesh server's port
(the server restarting, or not started yet) would collect the tokens of every client that calls. So the mesh's
clients (the gateway, a server calling its peers, the agent runtime) pin whom they talk to:
1. A server listening over HTTP makes a fresh P-256 key at start, kept in memory only, and the mesh authority
   certifies it for the server's names (`Authority.certify`: a JWT carrying the key as RFC 7800's `cnf`).
2. Before it sends a token, the client asks `/.well-known/stateset-server-identity/<path of the endpoint>` (beside
   RFC 9728's metadata, and without a token) with a fresh nonce. The server answers with its certificate and a
   JWS by its key over the nonce and its own URL.
3. The client checks the certificate against the authority's public key, that it names the server the token is
   for, the proof's signature, the nonce, and that the URL signed is the one it calls. Only then does the token go.
A squatter cannot sign (the key never left the real server), and one that relays the challenge to the real
server elsewhere gets a proof for the other URL. A client checks each time it connects; TLS with a pinned
certificate would bind the proof to each TCP connection as well, where the mesh is served beyond loopback.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from servers.common.auth import ALGORITHM, MAX_TTL_SECONDS, MESH_AUDIENCE, AuthError, Authority, TrustRoot
from servers.common.home import AUTHORITY_FILE
from servers.common.settings import ConfigError

IDENTITY_PREFIX = "/.well-known/stateset-server-identity"
PROOF_TYPE = "stateset-proof+jwt"
NONCE = re.compile(r"[A-Za-z0-9_-]{32,128}")
AUTHORITY_KEY_VARIABLE = "STATESET_AUTHORITY_KEY_FILE"
"""A file holding the mesh authority's public key (`stateset token public-key`), for a client whose data
directory is not the mesh's."""


class ServerIdentityError(Exception):
    """The server at a URL did not prove it is the mesh server a token is for; the token was not sent."""


def identity_url(resource_url: str) -> str:
    """Where the server of `https://host/path` proves who it is: `https://host/.well-known/stateset-server-identity/path`
    (the shape of RFC 9728's metadata URL)."""
    scheme, _, rest = resource_url.partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}{IDENTITY_PREFIX}/{path}".rstrip("/")


@dataclass(frozen=True)
class ServerIdentity:
    """A serving process's key and the authority's certificate that it speaks for `servers`."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: str = field(repr=False)

    @classmethod
    def certified(cls, authority: Authority, servers: Iterable[str]) -> ServerIdentity:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, authority.certify(servers, key.public_key(), MAX_TTL_SECONDS))

    def prove(self, nonce: str, resource_url: str) -> dict[str, str]:
        claims = {"nonce": nonce, "resource": resource_url, "iat": int(time.time())}
        proof = jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"typ": PROOF_TYPE})
        return {"certificate": self.certificate, "proof": proof}

    def route(self, resource_url: str) -> Route:
        """The route that answers a client's challenge for the endpoint at `resource_url`."""

        async def identity(request: Request) -> JSONResponse:
            nonce = request.query_params.get("nonce", "")
            if not NONCE.fullmatch(nonce):
                return JSONResponse(
                    {"error": "invalid_request", "error_description": "nonce must be 32 to 128 URL-safe characters"},
                    status_code=400,
                )
            return JSONResponse(self.prove(nonce, resource_url), headers={"Cache-Control": "no-store"})

        path = "/" + identity_url(resource_url).split("/", 3)[3]
        return Route(path, identity, methods=["GET"])


@dataclass(frozen=True)
class Pin:
    """What a client expects of the server at a URL before it sends a token: a key the mesh authority of `trust`
    certified for `server` (the token's audience; MESH_AUDIENCE accepts any server of the mesh)."""

    trust: TrustRoot = field(repr=False)
    server: str

    async def check(self, http: httpx2.AsyncClient, url: str) -> None:
        """Challenge the server at `url` over `http` (which must not carry the token yet).

        Raises:
            ServerIdentityError: it did not prove it is the mesh's `server` at `url`.
            httpx2.HTTPError: it could not be reached.
        """
        nonce = secrets.token_urlsafe(32)
        where = identity_url(url)
        response = await http.get(where, params={"nonce": nonce})
        if response.status_code != 200:
            raise self._refusal(url, f"{where} answered HTTP {response.status_code}")
        try:
            body: Any = json.loads(response.content)
            certificate, proof = body["certificate"], body["proof"]
            servers, jwk = self.trust.certified_key(certificate)
            key = ECAlgorithm.from_jwk(jwk)
            if (
                not isinstance(key, ec.EllipticCurvePublicKey)
                or jwt.get_unverified_header(proof).get("typ") != PROOF_TYPE
            ):
                raise AuthError("the proof is not a server's proof")
            claims = jwt.decode(proof, key, algorithms=[ALGORITHM], options={"require": ["nonce", "resource"]})
        except (ValueError, KeyError, TypeError, AuthError, jwt.PyJWTError) as exc:
            raise self._refusal(url, f"its proof does not hold: {exc}") from None
        if self.server != MESH_AUDIENCE and self.server not in servers:
            raise self._refusal(url, f"the mesh authority certified it for {', '.join(sorted(servers))}")
        if claims["nonce"] != nonce:
            raise self._refusal(url, "it signed another nonce than the one it was sent")
        if str(claims["resource"]).rstrip("/") != url.rstrip("/"):
            raise self._refusal(url, f"it proves it is the server at {claims['resource']}, not at {url}")

    def _refusal(self, url: str, why: str) -> ServerIdentityError:
        wanted = "a server of the mesh" if self.server == MESH_AUDIENCE else f"the mesh's {self.server} server"
        return ServerIdentityError(f"{url} did not prove it is {wanted} ({why}); its token was not sent")


def pinning_trust(data_dir: Path, environ: Mapping[str, str], *, needed_for: str) -> TrustRoot:
    """The authority whose certificates a client accepts: the public key in `STATESET_AUTHORITY_KEY_FILE`, else
    the authority of the data directory.

    Raises:
        ConfigError: neither is there (what `needed_for` needs it for, and what to do).
    """
    named = environ.get(AUTHORITY_KEY_VARIABLE)
    path = Path(named) if named else data_dir / AUTHORITY_FILE
    if not path.exists():
        raise ConfigError(
            f"{needed_for} needs the mesh authority's public key, to check that the server it sends its token to is "
            f"the mesh's: set {AUTHORITY_KEY_VARIABLE} to a file holding what `stateset token public-key` prints "
            "on the mesh's host, or share the mesh's --home"
        )
    return TrustRoot.of_public_key(path, data_dir)
