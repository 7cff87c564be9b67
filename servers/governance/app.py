"""The governance server assembled from settings: data file, signing key, active policy, service, MCP server."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from servers.common.db import Database
from servers.common.errors import MeshError
from servers.common.feed import ChangeFeed
from servers.common.keystore import server_key
from servers.common.settings import ConfigError, MeshSettings
from servers.governance.audit import report, verify
from servers.governance.models import AuditReport
from servers.governance.policy import Policy, compile_policy
from servers.governance.policy_text import parse_document
from servers.governance.server import build_server
from servers.governance.service import GovernanceService
from servers.governance.settings import GovernanceSettings
from servers.governance.store import MIGRATIONS, GovernanceStore, GovernanceTx

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GovernanceApp:
    service: GovernanceService
    server: MCPServer[Any]


@asynccontextmanager
async def running(
    mesh: MeshSettings, environ: Mapping[str, str], *, clock: Callable[[], float] = time.time
) -> AsyncIterator[GovernanceApp]:
    """Open governance's data, key and policy, and serve them until the block exits."""
    settings = GovernanceSettings.from_env(environ)
    data_dir = mesh.data_dir()
    signer = await server_key(
        data_dir / settings.keystore_file, data_dir, environ, scrypt_n=mesh.keystore_scrypt_n, role="governance"
    )
    async with Database.open(data_dir / settings.database_file, MIGRATIONS) as db:
        store = GovernanceStore(db)
        policy, activated_at = await _active_policy(store, settings, clock())
        feed = ChangeFeed()
        service = GovernanceService(
            store, signer, settings, feed, policy, activated_at, chain_id=mesh.chain_id, clock=clock
        )
        logger.info("governance signs receipts as %s under policy %s", signer.address, policy.version)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.run_expiry)
            tasks.start_soon(signer.follow)  # `stateset keys rotate` takes effect without a restart
            yield GovernanceApp(service, build_server(service, feed))
            tasks.cancel_scope.cancel()


async def verify_audit_file(mesh: MeshSettings) -> AuditReport:
    """Check the hash chain of the audit log in `mesh.home`, without starting a server."""
    path = mesh.home / GovernanceSettings().database_file
    if not path.is_file():
        raise ConfigError(f"there is no governance data at {path}")
    async with Database.open_readonly(path, MIGRATIONS) as db:  # beside a running governance server, too
        entries = await GovernanceStore(db).read(lambda tx: tx.audit_entries())
    return report(verify(entries))


async def _active_policy(store: GovernanceStore, settings: GovernanceSettings, now: float) -> tuple[Policy, float]:
    """The stored active policy; the configured file's instead when the operator named one, or none is stored."""
    stored = await store.read(lambda tx: tx.active_policy())
    if stored is not None and not settings.policy_explicit:
        return compile_policy(stored.document), stored.activated_at
    try:
        configured = compile_policy(parse_document(settings.policy_file.read_text(encoding="utf-8")))
    except MeshError as exc:
        raise ConfigError(f"{settings.policy_file}: {exc}") from None
    if stored is not None and stored.version == configured.version:
        return configured, stored.activated_at

    def activate(tx: GovernanceTx) -> None:
        tx.activate_policy(configured.version, configured.name, configured.document, now)
        tx.append_audit("policy", configured.version, {"name": configured.name, "file": str(settings.policy_file)}, now)

    await store.write(activate)
    logger.info("activated policy %s from %s", configured.version, settings.policy_file)
    return configured, now
