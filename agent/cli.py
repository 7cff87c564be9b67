"""The `stateset` command: the product's entry point and its composition roots.

    stateset serve <server> [--transport stdio|http|sse] [--host 127.0.0.1] [--port N] [--peer-port N] [--home DIR]
    stateset demo [procurement|wallet] [--home DIR]
    stateset audit verify [--home DIR]
    stateset address governance|reputation [--home DIR]
    stateset keys status|rotate governance|reputation [--revoke]|migrate-password [--to file|keyring] [--home DIR]
    stateset emulate salesforce|sap [--host 127.0.0.1] [--port N]
    stateset up [--host 127.0.0.1] [--port 8765] [--config configs/mesh.yaml] [--home DIR]
    stateset gateway [--transport stdio|http] [--host 127.0.0.1] [--port 8765] [--config FILE] [--home DIR]
    stateset claude-config [--gateway] [--home DIR]
    stateset agent run configs/agents/procurement.yaml [--cycles N] [--interval S] [--url URL] [--cosigner ADDR]
    stateset agent serve configs/agents/procurement.yaml [--url URL] [--cosigner ADDR]

It sits in the top layer, above `agent`, `gateway`, `adapters` and `servers` (docs/architecture.md): every
import it makes points down, and nothing imports it. A host launches `stateset serve <name>` many times,
so the parser needs only the standard library and `gateway.registry` (names, no imports); each command
imports what it runs when it runs. Logs go to stderr; over stdio, stdout carries MCP and nothing else.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters import EMULATORS
from gateway.registry import DEFAULT_PORTS, SERVERS
from servers.common.scopes import SCOPES as SCOPE_NAMES

if TYPE_CHECKING:
    from servers.common.settings import MeshSettings

SIGNING_SERVERS = ("governance", "reputation")  # servers whose own key signs what wallets trust
DEFAULT_MESH_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stateset",
        description="StateSet Agent Mesh: MCP servers for agents that hold and move USDC under governance.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser(
        "serve",
        help="run one MCP server (stdio by default, for hosts such as Claude Desktop)",
        description=(
            "Run one MCP server. stdio is for MCP hosts that launch the server themselves; http serves "
            "streamable HTTP at /mcp (both protocol eras); sse serves the legacy HTTP+SSE transport at /sse. "
            "Over HTTP every request needs a mesh token (stateset token issue); over stdio the server acts for the "
            "host that launched it (as STATESET_TOKEN's principal when set, else the local operator)."
        ),
        epilog="environment: STATESET_HOME, STATESET_KEYSTORE_PASSWORD, STATESET_CHAIN_ID, STATESET_LOG_LEVEL, "
        "STATESET_TOKEN, STATESET_PUBLIC_URL, STATESET_MAX_SESSIONS_PER_PRINCIPAL, STATESET_AUTHORITY_KEY_FILE (to "
        "check peers at STATESET_<NAME>_URL); wallet: STATESET_GOVERNANCE_ADDRESS, STATESET_SETTLEMENT; "
        "governance: STATESET_GOVERNANCE_POLICY. See README.md.",
    )
    serve_cmd.add_argument("server", choices=sorted(SERVERS), help="which server to run")
    serve_cmd.add_argument("--transport", choices=("stdio", "http", "sse"), default="stdio", help="default: stdio")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default: 127.0.0.1)")
    serve_cmd.add_argument(
        "--port",
        type=int,
        help="HTTP port (default: " + ", ".join(f"{port} {name}" for name, port in DEFAULT_PORTS.items()) + ")",
    )
    serve_cmd.add_argument(
        "--peer-port",
        type=int,
        metavar="PORT",
        help="while serving stdio, also serve streamable HTTP on 127.0.0.1:PORT, where the mesh's other "
        "servers reach this one (what `stateset claude-config` sets up)",
    )
    _add_no_auth(serve_cmd)
    _add_home(serve_cmd)

    demo_cmd = commands.add_parser(
        "demo",
        help="the main job: the procurement agent end to end, offline, in seconds",
        description="procurement (default): the whole mesh in this process and the procurement agent's cycles: "
        "low stock in SAP, suppliers found by reputation, governance approval, a multi-sig USDC payment, the SAP "
        "purchase order, the Salesforce opportunity, the supplier's rating. wallet: an MCP client drives "
        "`stateset serve wallet` over stdio through limits, idempotent retries and multi-sig.",
    )
    demo_cmd.add_argument("which", nargs="?", choices=("procurement", "wallet"), default="procurement")
    _add_home(demo_cmd, default_help="a new temporary directory")

    audit_cmd = commands.add_parser("audit", help="inspect governance's hash-chained audit log")
    audit_actions = audit_cmd.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify_cmd = audit_actions.add_parser(
        "verify",
        help="check every entry's hash and link; exit 1 naming the first tampered entry",
        description="Read governance.db in the data directory and check the audit log's hash chain offline.",
    )
    _add_home(verify_cmd)

    address_cmd = commands.add_parser(
        "address",
        help="print the address a server signs with, creating its key on first use",
        description="Print the address whose signatures wallets trust: STATESET_GOVERNANCE_ADDRESS for approval "
        "receipts, STATESET_REPUTATION_ADDRESS for slash orders. The key is created in the data directory if absent.",
    )
    address_cmd.add_argument("server", choices=SIGNING_SERVERS, help="which server's key")
    _add_home(address_cmd)

    up_cmd = commands.add_parser(
        "up",
        help="the whole mesh in one process on one port: each server and the aggregate gateway",
        description="Start every server wired to the others (the wallet trusts governance and reputation; "
        "Salesforce and SAP run against their emulators unless credentials are configured) and serve "
        "/<name>/mcp, /<name>/sse, the aggregate gateway at /mcp, /health and /ready.",
    )
    up_cmd.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    up_cmd.add_argument("--port", type=int, default=DEFAULT_MESH_PORT, help=f"default: {DEFAULT_MESH_PORT}")
    _add_no_auth(up_cmd)
    _add_config(up_cmd)
    _add_home(up_cmd)

    gateway_cmd = commands.add_parser(
        "gateway",
        help="the aggregate gateway alone, for MCP hosts: every server's tools as <server>_<tool>",
        description="Start the mesh in this process and serve only the aggregate gateway, over stdio (for "
        "hosts such as Claude Desktop) or streamable HTTP at /mcp.",
    )
    gateway_cmd.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default: stdio")
    gateway_cmd.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default: 127.0.0.1)")
    gateway_cmd.add_argument(
        "--port", type=int, default=DEFAULT_MESH_PORT, help=f"HTTP port (default: {DEFAULT_MESH_PORT})"
    )
    _add_no_auth(gateway_cmd)
    _add_config(gateway_cmd)
    _add_home(gateway_cmd)

    claude_cmd = commands.add_parser(
        "claude-config",
        help="print the mcpServers entries for Claude Desktop's claude_desktop_config.json",
        description="Print claude_desktop_config.json entries that launch this installation over stdio: one per "
        "server, wired to each other over loopback HTTP, or with --gateway one entry for the whole mesh behind "
        "the aggregate gateway.",
    )
    claude_cmd.add_argument("--gateway", action="store_true", help="one entry: the aggregate gateway")
    _add_home(claude_cmd)

    agent_cmd = commands.add_parser("agent", help="run an autonomous agent from its deployment file")
    agent_actions = agent_cmd.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    agent_run = agent_actions.add_parser(
        "run",
        help="run the agent's perceive-decide-act-learn cycles against the mesh",
        description="Load the agent from the data directory (or create it: key, wallet, discovery listing) and "
        "run its cycles: perceive through the gateway, decide per goal, act through governance first, learn. "
        "Without --url the whole mesh starts in this process.",
    )
    agent_run.add_argument("config", type=Path, help="the deployment file, e.g. configs/agents/procurement.yaml")
    agent_run.add_argument("--cycles", type=int, default=1, help="how many cycles (default: 1)")
    agent_run.add_argument("--interval", type=float, default=5.0, help="seconds between cycles (default: 5)")
    agent_run.add_argument(
        "--url",
        help="a running `stateset up`, e.g. http://127.0.0.1:8765 (token: STATESET_TOKEN; the mesh's public key, "
        "unless --home is that mesh's: STATESET_AUTHORITY_KEY_FILE)",
    )
    agent_run.add_argument(
        "--cosigner", action="append", default=[], metavar="ADDRESS", help="a multi-sig co-signer (repeatable)"
    )
    _add_home(agent_run)
    agent_serve = agent_actions.add_parser(
        "serve",
        help="the agent as an MCP server over stdio, for a host (its model can choose through sampling)",
        description="Serve the agent over stdio: run_cycle, get_state, agent://state. When the host offers "
        "sampling, its model chooses among the options that passed the agent's constraints.",
    )
    agent_serve.add_argument("config", type=Path, help="the deployment file, e.g. configs/agents/procurement.yaml")
    agent_serve.add_argument("--url", help="a running `stateset up` (default: the mesh starts in this process)")
    agent_serve.add_argument("--cosigner", action="append", default=[], metavar="ADDRESS", help="repeatable")
    _add_home(agent_serve)

    _add_keys(commands)

    emulate_cmd = commands.add_parser(
        "emulate",
        help="run a sandbox Salesforce or SAP on loopback, for the adapters and their tests",
        description="Serve an emulator of the platform's API that enforces its rules (auth, required fields, "
        "errors, paging, CSRF for SAP), in memory. `stateset serve salesforce|sap` starts one by itself when no "
        "credentials are configured. Test hooks are under /_emulator/, for loopback callers sending "
        "Authorization: Bearer $STATESET_EMULATOR_TOKEN (unset: a random token, and the hooks stay closed).",
    )
    emulate_cmd.add_argument("platform", choices=sorted(EMULATORS), help="which platform")
    emulate_cmd.add_argument(
        "--host", default="127.0.0.1", choices=("127.0.0.1", "localhost", "::1"), help="loopback only"
    )
    emulate_cmd.add_argument("--port", type=int, default=0, help="default: the adapter's port plus 100")
    _add_token_commands(commands)
    return parser


# `stateset keys`: keys at rest (servers.common.passwords, servers.common.keystore, servers.common.rotation).


def _add_keys(commands: Any) -> None:
    keys_cmd = commands.add_parser(
        "keys",
        help="the keys at rest: where their password is, rotating a server key, moving the password",
        description="Keys are keystores (v3, scrypt) in the data directory; their password never is: it comes from "
        "STATESET_KEYSTORE_PASSWORD, the file STATESET_KEYSTORE_PASSWORD_FILE names, this user's "
        "~/.config/stateset/<home id>.password, or the OS keyring. See docs/keys.md.",
    )
    actions = keys_cmd.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status",
        help="where the password comes from, and the server keys trusted now (current and retired)",
        description="Print where the keystore password is found (never the password) and each signing server's "
        "current key and retired keys still verifying. Decrypts nothing.",
    )
    _add_home(status)
    rotate = actions.add_parser(
        "rotate",
        help="a new signing key for governance or reputation; the old one verifies what it signed until it expires",
        description="Make a new key the server's signing key. The old key keeps verifying the receipts (slash "
        "orders) it signed until they expire, and no longer: wallets trust current + retired-until. A running "
        "server signs with the new key within a second, and wallets sharing the data directory follow at once. "
        "--revoke, for a key thought stolen: the old key stops verifying at once.",
    )
    rotate.add_argument("server", choices=SIGNING_SERVERS, help="which server's key")
    rotate.add_argument("--revoke", action="store_true", help="the old key verifies nothing from now on")
    rotate.add_argument(
        "--lifetime",
        type=int,
        metavar="SECONDS",
        help="the longest a receipt or slash order the old key signed lives (default: the server's setting, "
        "STATESET_GOVERNANCE_RECEIPT_TTL_SECONDS or STATESET_REPUTATION_SLASH_ORDER_TTL_SECONDS, else 600)",
    )
    _add_home(rotate)
    migrate = actions.add_parser(
        "migrate-password",
        help="move the keystore password out of the data directory (or between file and OS keyring)",
        description="Move the password from keystore.password in the data directory (where older releases kept "
        "it), or from where it is now, to this user's password file outside the data directory (or to the file "
        "STATESET_KEYSTORE_PASSWORD_FILE names), or with --to keyring to the OS keyring. It is checked against a "
        "keystore first and removed from where it was only once written where it goes.",
    )
    migrate.add_argument("--to", choices=("file", "keyring"), default="file", help="default: file")
    _add_home(migrate)


async def _token(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from datetime import UTC, datetime

    from servers.common.auth import AuthError, Authority, TrustRoot, parse_ttl
    from servers.common.home import AUTHORITY_FILE
    from servers.common.scopes import AGENT_SCOPES, ALL_SCOPES, PERSON_SCOPES

    fresh = not (mesh.data_dir() / AUTHORITY_FILE).exists()
    try:
        if args.token_command == "public-key":  # the public half only: no password needed
            print(TrustRoot.of_home(mesh.data_dir(), environ).public_pem(), end="")
            return 0
        authority = Authority.load(mesh.data_dir(), environ)
        if args.token_command == "revoke":
            if not authority.revoke(args.token_id):
                print(f"token {args.token_id} was already revoked", file=sys.stderr)
            return 0
        named = {"agent": AGENT_SCOPES, "person": PERSON_SCOPES, "all": ALL_SCOPES}
        scopes: set[str] = set()
        for scope in (part.strip() for part in args.scopes.split(",")):
            scopes |= named.get(scope, {scope} if scope else set())
        issued = authority.issue(args.subject, scopes, parse_ttl(args.ttl), audience=args.audience)
    except AuthError as exc:
        print(f"stateset: {exc}", file=sys.stderr)
        return 2
    print(issued.token)
    expires = datetime.fromtimestamp(issued.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(
        f"token {issued.token_id} for {issued.subject}, scopes {' '.join(sorted(issued.scopes))}, "
        f"audience {issued.audience}, expires {expires}",
        file=sys.stderr,
    )
    if fresh:
        print(
            f"stateset: {mesh.data_dir()} had no mesh authority: a new one was made, and its tokens are good only for "
            "a mesh on this data directory (for a running `stateset up`, pass its --home)",
            file=sys.stderr,
        )
    return 0


async def _keys(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    command: Command = {"status": _keys_status, "rotate": _keys_rotate, "migrate-password": _keys_migrate}[
        args.keys_command
    ]
    return await command(args, mesh, environ)


async def _keys_status(_: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from servers.common.home import SERVER_KEYSTORES
    from servers.common.keystore import stored_address
    from servers.common.passwords import locate_password, read_home_id
    from servers.common.rotation import lineage, read_rotations, rotations_path
    from servers.common.settings import ConfigError

    if not mesh.home.is_dir():
        print(f"data directory  {mesh.home} does not exist yet: the first start makes it")
        return 1
    home = mesh.data_dir()  # made owner-only if it was not
    print(f"data directory  {home.resolve()} (owner-only; id {read_home_id(home) or 'not set yet'})")
    try:
        print(f"password        {locate_password(home, environ, create=False)[1]}")
    except ConfigError as exc:
        print(f"password        {exc}")
    for role, name in SERVER_KEYSTORES.items():
        current = stored_address(home / name)
        trusted = (
            None if current is None else lineage(current, read_rotations(rotations_path(home / name)), mesh.chain_id)
        )
        print(f"{role + ' key':<15} {'not created yet' if trusted is None else trusted.describe()}")
    return 0


async def _keys_rotate(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    import time

    from servers.common.home import SERVER_KEYSTORES
    from servers.common.keystore import rotate_server_key
    from servers.common.rotation import utc_time

    lifetime = args.lifetime
    if lifetime is None:
        if args.server == "governance":
            from servers.governance.settings import GovernanceSettings

            lifetime = GovernanceSettings.from_env(environ).receipt_ttl_seconds
        else:
            from servers.reputation.settings import ReputationSettings

            lifetime = ReputationSettings.from_env(environ).slash_order_ttl_seconds
    home = mesh.data_dir()
    rotation = await rotate_server_key(
        home / SERVER_KEYSTORES[args.server],
        home,
        environ,
        scrypt_n=mesh.keystore_scrypt_n,
        chain_id=mesh.chain_id,
        lifetime_seconds=lifetime,
        revoke=args.revoke,
        now=int(time.time()),
    )
    what = "receipts" if args.server == "governance" else "slash orders"
    print(f"{args.server} signs with {rotation.successor} from now on.")
    if args.revoke:
        print(f"{rotation.retired} is revoked: it verifies nothing still valid.")
    else:
        until = utc_time(rotation.verifies_until)
        print(f"{rotation.retired} is retired: it still verifies the {what} it signed, which expire by {until}.")
    print(
        f"A running server signs with the new key within a second; wallets sharing {home} follow at once. "
        "A wallet configured elsewhere needs:"
    )
    prefix = f"STATESET_{args.server.upper()}"
    print(f"  {prefix}_ADDRESS={rotation.successor} {prefix}_RETIRED_KEYS={rotation.retired}@{rotation.verifies_until}")
    return 0


async def _keys_migrate(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from servers.common.home import LEGACY_PASSWORD_FILE
    from servers.common.passwords import PASSWORD_ENV, migrate_password

    move = migrate_password(mesh.data_dir(), environ, to=args.to)
    checked = f"it opens {move.checked_against}" if move.checked_against else "there is no keystore file to check it on"
    print(f"moved the keystore password from {move.source} to {move.destination} ({checked}).")
    if move.source.where.endswith(LEGACY_PASSWORD_FILE):
        print(
            "It sat beside the keys it opens: whoever could read or copy the data directory could open them. If that "
            "may have happened, rotate the server keys (stateset keys rotate governance|reputation) and move the "
            "wallets' funds to new wallets."
        )
    if environ.get(PASSWORD_ENV):
        print(f"{PASSWORD_ENV} is set, and it still comes first.")
    return 0


class _Version(argparse.Action):
    """`--version`, read from the installed package's metadata only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib import metadata

        try:
            version = metadata.version("stateset-mesh")
        except metadata.PackageNotFoundError:  # a source tree without an install
            version = "0.0.0"
        parser.exit(message=f"stateset {version}\n")


def _add_config(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config",
        type=Path,
        help="which backends and how to reach them (default: $STATESET_MESH_CONFIG or configs/mesh.yaml)",
    )


def _add_no_auth(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-auth",
        action="store_true",
        help="take no tokens over HTTP: every caller acts as the local operator (for local experiments; logged; "
        "loopback only)",
    )


def _add_token_commands(commands: Any) -> None:
    token_cmd = commands.add_parser(
        "token",
        help="issue and revoke the tokens the mesh's servers accept; print the authority's public key",
        description="Tokens are ES256 JWTs signed by the mesh authority key in the data directory (created on first "
        "use, locked with the keystore password). Every server of the mesh checks them with the public key, and "
        "refuses a revoked one from its next call on.",
    )
    actions = token_cmd.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    issue = actions.add_parser(
        "issue",
        help="print a new token (its id on stderr)",
        description="Print a token for SUBJECT carrying SCOPES on stdout, and its id (for revoke) on stderr. "
        "Scopes: " + ", ".join(sorted(SCOPE_NAMES)) + "; or 'agent' for an agent's usual scopes, 'person' for an "
        "approver's, 'all' for an operator's.",
    )
    issue.add_argument("--subject", required=True, metavar="DID", help="did:stateset:<agent|person|operator>:<id>")
    issue.add_argument("--scopes", required=True, help="comma-separated scopes, or agent, person, all")
    issue.add_argument("--ttl", default="30d", help="lifetime: 90s, 30m, 12h, 7d (default 30d, at most 366d)")
    issue.add_argument("--audience", default="stateset-mesh", help="a server's name, or the whole mesh (default)")
    _add_home(issue)
    revoke = actions.add_parser(
        "revoke",
        help="revoke a token by its id; every server refuses it from its next call on",
        description="Add the token id (printed by issue) to the data directory's revocation list.",
    )
    revoke.add_argument("token_id", metavar="ID", help="the token's id (32 hex digits)")
    _add_home(revoke)
    public_key = actions.add_parser(
        "public-key",
        help="print the mesh authority's public key (for STATESET_AUTHORITY_KEY_FILE)",
        description="Print the authority's public key (PEM). A client of the mesh whose data directory is not the "
        "mesh's (an agent run elsewhere with STATESET_TOKEN) checks with it, through STATESET_AUTHORITY_KEY_FILE, "
        "that a server proves it is the mesh's before it sends that server its token.",
    )
    _add_home(public_key)


def _add_home(command: argparse.ArgumentParser, default_help: str = "$STATESET_HOME or ./.stateset") -> None:
    command.add_argument("--home", type=Path, help=f"data directory (default: {default_help})")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while the command's modules load, before run_command takes it over
        return 130


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    if args.command == "claude-config":  # text out, nothing started: no settings, no logging, no MCP
        from gateway.hosts import claude_config, stateset_command

        home = args.home or Path(environ.get("STATESET_HOME") or ".stateset")
        print(json.dumps(claude_config(stateset_command(), home, gateway=args.gateway), indent=2))
        return 0

    from servers.common.process import run_command

    return run_command(functools.partial(COMMANDS[args.command], args), environ, home=getattr(args, "home", None))


async def _serve(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from gateway.registry import opener
    from servers.common.transports import serve_one

    port = args.port or DEFAULT_PORTS[args.server]
    await serve_one(
        opener(args.server),
        mesh,
        environ,
        name=args.server,
        no_auth=args.no_auth,
        transport=args.transport,
        host=args.host,
        port=port,
        peer_port=args.peer_port,
    )
    return 0


async def _demo(args: argparse.Namespace, _: MeshSettings, environ: Mapping[str, str]) -> int:
    if args.which == "wallet":
        from agent.wallet_tour import run_demo
    else:
        from agent.demo import run_demo
    return await run_demo(args.home, environ)


async def _audit(_: argparse.Namespace, mesh: MeshSettings, __: Mapping[str, str]) -> int:
    from servers.governance.app import verify_audit_file

    audit = await verify_audit_file(mesh)
    print(audit.model_dump_json(indent=2))
    return 0 if audit.intact else 1


async def _address(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from servers.common.home import SERVER_KEYSTORES
    from servers.common.keystore import server_key

    data_dir = mesh.data_dir()
    path = data_dir / SERVER_KEYSTORES[args.server]
    key = await server_key(path, data_dir, environ, scrypt_n=mesh.keystore_scrypt_n, role=args.server)
    print(key.address)
    return 0


async def _up(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from gateway.launcher import run_up

    await run_up(args, mesh, environ)
    return 0


async def _gateway(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from gateway.launcher import run_gateway

    await run_gateway(args, mesh, environ)
    return 0


async def _agent(args: argparse.Namespace, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    from agent.run import run_agent, serve_agent

    return await (run_agent if args.agent_command == "run" else serve_agent)(args, mesh, environ)


async def _emulate(args: argparse.Namespace, _: MeshSettings, environ: Mapping[str, str]) -> int:
    import logging
    from importlib import import_module

    from servers.common.transports import bound_url, listen, run_app

    sock = listen(args.host, args.port or DEFAULT_PORTS[args.platform] + 100)
    app = import_module(EMULATORS[args.platform]).sandbox_app(environ.get("STATESET_EMULATOR_TOKEN") or None)
    logging.getLogger("stateset").info(
        "%s emulator listening at %s (a sandbox: nothing here reaches a real system)", args.platform, bound_url(sock)
    )
    await run_app(app, sock)
    return 0


Command = Callable[[argparse.Namespace, "MeshSettings", Mapping[str, str]], Awaitable[int]]
COMMANDS: dict[str, Command] = {
    "serve": _serve,
    "demo": _demo,
    "audit": _audit,
    "address": _address,
    "up": _up,
    "gateway": _gateway,
    "agent": _agent,
    "emulate": _emulate,
    "keys": _keys,
    "token": _token,
}

if __name__ == "__main__":
    sys.exit(main())
