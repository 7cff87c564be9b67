"""Who is calling: principals, the mesh authority's tokens, and how a server learns the principal of a call.

Every principal is a DID the mesh knows: `did:stateset:agent:<uuid>` for agents, `did:stateset:person:<name>`
for the people who approve, `did:stateset:operator:<name>` for operators, `did:stateset:service:<name>` for the
mesh's own servers calling each other. A token is an ES256 JWT signed by the mesh authority's key (kept in the
data directory, encrypted with the keystore password) carrying `sub`, `aud`, `scope`, `exp`, `iat` and `jti`, and
for a call the gateway makes on someone's behalf, `act` (RFC 8693: the actor). Servers verify with the public key
alone; a revoked `jti` is refused by every server sharing the data directory from the next call on.

Where a call's principal comes from, in order:
1. the bearer token of the HTTP request (verified by `TrustRoot.verify_token` before the request reaches MCP);
2. the connection's principal, set by whoever opened it: a stdio server acts for the host that launched it, and a
   server calling a peer in the same process opens the client as its service principal (`acting_as`);
3. the process's default, which only `--no-auth` and stdio set.
A call through the gateway carries, in its `_meta`, a short-lived token for the caller minted for that backend;
it counts only when the connection's principal holds `mesh:delegate` and is the token's `act`.

Verifying a JWT costs about 0.1 ms, so a verified token's claims are kept until it expires; expiry and the
revocation list are checked on every call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mcp.server.auth.provider import AccessToken

from servers.common.clock import Clock
from servers.common.home import AUTHORITY_FILE, REVOKED_FILE
from servers.common.logging import register_secret
from servers.common.passwords import load_password, replace_secret, write_new
from servers.common.scopes import AGENT_SCOPES as AGENT_SCOPES  # re-exported: the usual sets beside tokens
from servers.common.scopes import ALL_SCOPES as ALL_SCOPES
from servers.common.scopes import PERSON_SCOPES as PERSON_SCOPES
from servers.common.scopes import SERVICE_SCOPES
from servers.common.settings import ConfigError

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"  # P-256 verifies faster than Ed25519 with PyJWT (about 0.1 ms against 0.13 ms)
ISSUER = "stateset-mesh-authority"
MESH_AUDIENCE = "stateset-mesh"
"""A token with this audience is good at every server of the mesh; otherwise `aud` names one server."""
DELEGATION_META_KEY = "io.stateset/on-behalf-of"
DELEGATION_SECONDS = 300
MAX_TTL_SECONDS = 366 * 86400
SERVER_CERTIFICATE_TYPE = "stateset-server+jwt"
"""The `typ` of the authority's statement that a key speaks for some of the mesh's servers (servers.common.pinning):
it carries no scope, so no server takes it for a token, and no token passes for it."""

DID = re.compile(r"did:stateset:(agent|person|operator|service):[A-Za-z0-9._-]{1,64}")
KINDS = ("agent", "person", "operator", "service")
AUDIENCE = re.compile(r"[a-z][a-z0-9-]{0,31}")
"""A server's or a gateway backend's name, or MESH_AUDIENCE."""


class AuthError(Exception):
    """A token could not be issued, verified or revoked; the message says why and never holds the token."""


@dataclass(frozen=True)
class Principal:
    """Who a call is from, and what it may do."""

    did: str
    scopes: frozenset[str]
    actor: str | None = None
    """Who makes the call on this principal's behalf (the gateway), from the token's `act` claim."""
    token_id: str | None = None
    expires_at: float | None = None

    @property
    def kind(self) -> str:
        return self.did.split(":")[2]

    def has(self, scope: str) -> bool:
        return scope in self.scopes


LOCAL_OPERATOR = Principal("did:stateset:operator:local", ALL_SCOPES)
"""The host that launched a stdio server, and everyone under `--no-auth`."""


def service_principal(name: str) -> Principal:
    """A mesh server calling another: `did:stateset:service:<name>` with its SERVICE_SCOPES."""
    return Principal(f"did:stateset:service:{name}", SERVICE_SCOPES.get(name, frozenset()))


def check_did(did: str) -> str:
    if not DID.fullmatch(did):
        raise AuthError(
            f"subject {did!r} is not a mesh DID: did:stateset:<kind>:<id> with kind one of {', '.join(KINDS)} "
            "and an id of 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return did


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(scopes)
    unknown = sorted(chosen - ALL_SCOPES)
    if unknown:
        raise AuthError(f"unknown scope {', '.join(unknown)}; scopes: {', '.join(sorted(ALL_SCOPES))}")
    return chosen


def parse_ttl(text: str) -> int:
    """`90s`, `30m`, `12h`, `7d` (or plain seconds) as seconds, at most a year."""
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*([smhd]?)\s*", text)
    if not match:
        raise AuthError(f"lifetime {text!r} is not a number with an optional unit s, m, h or d (e.g. 12h)")
    seconds = int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise AuthError(f"lifetime {text!r} must be between 1 second and 366 days")
    return seconds


# Where a call's principal comes from (see the module's docstring).
_request_principal: ContextVar[Principal | None] = ContextVar("stateset_request_principal", default=None)
_connection_principal: ContextVar[Principal | None] = ContextVar("stateset_connection_principal", default=None)
_process_principal: list[Principal | None] = [None]


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Open clients to in-process servers inside this block and they act as `principal`: the server's tasks
    start in this context, so every call on those connections is `principal`'s."""
    token = _connection_principal.set(principal)
    try:
        yield
    finally:
        _connection_principal.reset(token)


def set_process_principal(principal: Principal | None) -> None:
    """The principal of calls that bring no token and come on no connection of known principal: the host of a
    stdio server, or everyone under `--no-auth`. None (the default) refuses them."""
    _process_principal[0] = principal


def connection_principal() -> Principal | None:
    """The principal an in-process connection was opened as (`acting_as`), if any."""
    return _connection_principal.get()


def process_principal() -> Principal | None:
    return _process_principal[0]


def current_principal() -> Principal | None:
    """The principal of the call being served (set by the server's gate), or None outside a call."""
    return _request_principal.get()


@contextlib.contextmanager
def serving(principal: Principal | None) -> Iterator[None]:
    token = _request_principal.set(principal)
    try:
        yield
    finally:
        _request_principal.reset(token)


def principal_of(access: AccessToken) -> Principal:
    claims = access.claims or {}
    actor = claims.get("act", {}).get("sub") if isinstance(claims.get("act"), dict) else None
    return Principal(
        access.subject or access.client_id, frozenset(access.scopes), actor, claims.get("jti"), access.expires_at
    )


class Revocations:
    """The revoked token ids of a data directory (`revoked.json`), re-read whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._revoked: frozenset[str] = frozenset()

    def __contains__(self, jti: object) -> bool:
        try:
            stat = self.path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            version = (0, 0)
        if version != self._seen:
            self._revoked = frozenset(entry["jti"] for entry in self._entries())
            self._seen = version
        return jti in self._revoked

    def _entries(self) -> list[dict[str, Any]]:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise AuthError(f"{self.path} cannot be read as the list of revoked tokens: {exc}") from None
        return [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("jti"), str)]

    def add(self, jti: str, expires_at: int, now: float) -> bool:
        """Revoke `jti` until `expires_at`; entries past their expiry are dropped. False if already revoked."""
        entries = [entry for entry in self._entries() if entry.get("exp", 0) > now]
        if any(entry["jti"] == jti for entry in entries):
            return False
        entries.append({"jti": jti, "exp": expires_at})
        replace_secret(self.path, json.dumps(entries, indent=1) + "\n")
        return True


@dataclass
class TrustRoot:
    """What every server needs to check a token: the authority's public key and the revocation list."""

    public_key: ec.EllipticCurvePublicKey
    key_id: str
    revocations: Revocations
    clock: Clock = time.time
    _verified: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    CACHE_SIZE = 4096

    @classmethod
    def of_home(cls, data_dir: Path, environ: Mapping[str, str], clock: Clock = time.time) -> TrustRoot:
        """The data directory's trust root, creating the authority on first use."""
        Authority.ensure(data_dir, environ)
        return cls.of_public_key(data_dir / AUTHORITY_FILE, data_dir, clock)

    @classmethod
    def of_public_key(cls, path: Path, data_dir: Path, clock: Clock = time.time) -> TrustRoot:
        """The authority whose public key (PEM) is in `path` (an `authority.pem` or what `stateset token
        public-key` prints), with the revocation list of `data_dir`."""
        try:
            key = serialization.load_pem_public_key(_pem_block(path, "PUBLIC KEY"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} does not hold the mesh authority's public key ({exc})") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ConfigError(f"{path} does not hold a P-256 public key")
        return cls(key, _key_id(key), Revocations(data_dir / REVOKED_FILE), clock)

    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verify(self, token: str, audiences: Iterable[str]) -> Principal | None:
        """The token's principal if it is ours, unexpired, unrevoked and for one of `audiences`; else None."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if claims is None:
                return None
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        if claims["exp"] <= self.clock() or claims["jti"] in self.revocations:
            return None
        audience = claims["aud"]
        if not (set(audience) if isinstance(audience, list) else {audience}) & set(audiences):
            return None
        act = claims.get("act")
        return Principal(
            claims["sub"],
            frozenset(claims["scope"].split()),
            act.get("sub") if isinstance(act, dict) else None,
            claims["jti"],
            claims["exp"],
        )

    def refusal(self, token: str | None, audiences: Iterable[str]) -> str:
        """Why `verify` refuses `token` (None: no bearer token was sent), in words fit for a 401's description:
        no secret in it, and nothing but printable characters other than quotes and backslashes."""
        return re.sub(r'[^\x20-\x7e]|["\\]', "?", self._refusal(token, audiences))

    def _refusal(self, token: str | None, audiences: Iterable[str]) -> str:
        if not token:
            return "a mesh token is required: send Authorization: Bearer <token> (stateset token issue)"
        claims = self._verified.get(token) or self._decode(token)
        if claims is None:
            return "not a token of this mesh: malformed, or not signed by its authority"
        wanted = list(audiences)
        audience = claims["aud"]
        if claims["jti"] in self.revocations:
            return f"token {claims['jti']} was revoked"
        if claims["exp"] <= self.clock():
            return (
                f"token {claims['jti']} expired at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(claims['exp']))}"
            )
        if not (set(audience) if isinstance(audience, list) else {audience}) & set(wanted):
            return f"token {claims['jti']} is for {audience}, not for {' or '.join(wanted)}"
        return "the token was refused"

    def _decode(self, token: str) -> dict[str, Any] | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # expiry is checked on every use against this trust root's clock (below), not once here
                options={
                    "require": ["exp", "iat", "jti", "sub", "aud", "scope"],
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            return None
        if not DID.fullmatch(str(claims["sub"])) or not isinstance(claims["scope"], str):
            return None
        return claims

    def verifier(self, audience: str) -> MeshTokenVerifier:
        return MeshTokenVerifier(self, audience)

    def certified_key(self, certificate: str) -> tuple[frozenset[str], dict[str, Any]]:
        """The servers a certificate from `Authority.certify` names, and the key it certifies (a JWK).

        Raises:
            AuthError: not a current server certificate of this authority.
        """
        try:
            if jwt.get_unverified_header(certificate).get("typ") != SERVER_CERTIFICATE_TYPE:
                raise AuthError("not a server certificate")
            claims = jwt.decode(
                certificate,
                self.public_key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                audience=SERVER_CERTIFICATE_TYPE,
                options={"require": ["exp", "servers", "cnf"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"the certificate is not the mesh authority's ({exc})") from None
        servers, key = claims["servers"], claims["cnf"].get("jwk") if isinstance(claims["cnf"], dict) else None
        if claims["exp"] <= self.clock() or not isinstance(servers, list) or not isinstance(key, dict):
            raise AuthError("the certificate has expired or is malformed")
        return frozenset(map(str, servers)), key


@dataclass(frozen=True)
class MeshTokenVerifier:
    """The SDK's `TokenVerifier` for one server (or the gateway): tokens for it or for the whole mesh."""

    trust: TrustRoot
    audience: str

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = self.trust.verify(token, (self.audience, MESH_AUDIENCE))
        if principal is None:
            return None
        act = {"act": {"sub": principal.actor}} if principal.actor else {}
        return AccessToken(
            token=token,
            client_id=principal.did,
            scopes=sorted(principal.scopes),
            expires_at=None if principal.expires_at is None else int(principal.expires_at),
            subject=principal.did,
            claims={"iss": ISSUER, "jti": principal.token_id, **act},
        )


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    token_id: str
    subject: str
    scopes: frozenset[str]
    audience: str
    expires_at: int


class Authority:
    """The mesh authority: the key that signs tokens. Only composition roots (the command line, `stateset up`,
    the gateway) load it; servers hold only its public half."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, data_dir: Path, clock: Clock = time.time) -> None:
        self._key = key
        self.key_id = _key_id(key.public_key())
        self.data_dir = data_dir
        self.clock = clock
        self.revocations = Revocations(data_dir / REVOKED_FILE)

    @classmethod
    def ensure(cls, data_dir: Path, environ: Mapping[str, str]) -> None:
        """Create the authority's key pair in `data_dir` unless it exists."""
        if (data_dir / AUTHORITY_FILE).exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(load_password(data_dir, environ).encode()),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # one file created whole: servers started together race to create it, and exactly one wins
        if write_new(data_dir / AUTHORITY_FILE, (private + public).decode()):
            logger.info("created the mesh authority key in %s", data_dir / AUTHORITY_FILE)

    @classmethod
    def load(cls, data_dir: Path, environ: Mapping[str, str], clock: Clock = time.time) -> Authority:
        cls.ensure(data_dir, environ)
        try:
            key = serialization.load_pem_private_key(
                _pem_block(data_dir / AUTHORITY_FILE, "ENCRYPTED PRIVATE KEY"),
                load_password(data_dir, environ).encode(),
            )
        except ValueError:
            raise ConfigError(
                f"the mesh authority key in {data_dir} does not open with the keystore password"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{data_dir / AUTHORITY_FILE} is not a P-256 key")
        return cls(key, data_dir, clock)

    def trust_root(self) -> TrustRoot:
        return TrustRoot(self._key.public_key(), self.key_id, self.revocations, self.clock)

    def issue(
        self,
        subject: str,
        scopes: Iterable[str],
        ttl_seconds: int,
        *,
        audience: str = MESH_AUDIENCE,
        actor: str | None = None,
    ) -> IssuedToken:
        chosen = check_scopes(scopes)
        if not AUDIENCE.fullmatch(audience):
            raise AuthError(
                f"audience {audience!r} is not a server's name (lowercase letters, digits and '-', up to 32) nor "
                f"{MESH_AUDIENCE}"
            )
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": check_did(subject),
            "aud": audience,
            "scope": " ".join(sorted(chosen)),
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_hex(16),
        }
        if actor is not None:
            claims["act"] = {"sub": check_did(actor)}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})
        register_secret(token)
        return IssuedToken(token, claims["jti"], subject, chosen, audience, claims["exp"])

    def certify(self, servers: Iterable[str], key: ec.EllipticCurvePublicKey, ttl_seconds: int) -> str:
        """A statement, signed by the authority, that `key` speaks for `servers` (RFC 7800's `cnf`): what a server
        shows its clients before they send it a token (servers.common.pinning)."""
        now = int(self.clock())
        claims = {
            "iss": ISSUER,
            "aud": SERVER_CERTIFICATE_TYPE,
            "servers": sorted(servers),
            "cnf": {"jwk": json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))},
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(
            claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id, "typ": SERVER_CERTIFICATE_TYPE}
        )

    def revoke(self, token_id: str, expires_at: int | None = None) -> bool:
        """Revoke a token by its id (kept on the list until `expires_at`, a year when unknown)."""
        if not re.fullmatch(r"[0-9a-f]{32}", token_id):
            raise AuthError(f"token id {token_id!r} is not 32 hex digits (the `jti` printed when it was issued)")
        now = self.clock()
        return self.revocations.add(token_id, expires_at or int(now) + MAX_TTL_SECONDS, now)


def _key_id(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _pem_block(path: Path, label: str) -> bytes:
    text = path.read_bytes()
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < 0:
        raise ConfigError(f"{path} has no {label.lower()}; it is damaged")
    return text[start : stop + len(end)] + b"\n"
