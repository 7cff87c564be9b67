"""What the gateway adds to one tool call: the same call direct and through each gateway path.

    .venv/bin/python bench/gateway_overhead.py [--calls 600]

The call: the wallet's `get_balance` on a funded wallet, a cheap read (one SQLite read on the database
thread, about 0.3 ms in-process), so the gateway's fixed cost per call is as large a share of the
figure as it gets; a payment (about 1.1 ms) would dilute it. Measured, one caller at a time:

- in-process: the SDK `Client` on the wallet server (direct); `Gateway.call_tool("wallet_get_balance")`
  with the wallet in-process (the library); the SDK `Client` on `build_aggregate(gateway)`; the SDK
  `Client` on FastMCP's proxy of the same wallet server. Each era end to end (host and backend).
- stdio: `stateset serve wallet` (direct) against `stateset gateway --transport stdio` (the whole mesh in
  the child, the wallet in-process behind the aggregate, which reaches it in the 2026-07-28 era), and a
  FastMCP proxy of the wallet server served over stdio by a child of this script.
- streamable HTTP: `stateset up` on a free loopback port, `/wallet/mcp` (direct) against `/mcp` (the
  aggregate), one process; and a child of this script serving, in one process, the wallet server at
  `/wallet/mcp` and FastMCP proxies of it at `/fastmcp/mcp` and `/fastmcp-shared/mcp`.

FastMCP (PyPI `fastmcp`, in the dev extras; 4.2 speaks mcp 2.3) is measured as documented,
`create_proxy(server)`: a new backend session per call, in the era the host spoke ("fresh"), and as
`create_proxy(connected_client)`, which reuses one backend session ("shared"; in the children it speaks
2026-07-28, as the aggregate's does); FastMCP logs that the latter may mix request context under
concurrency. Its per-call session is slow, so those rows take a
quarter of the calls.

The targets in a group are measured in interleaved blocks so that load from other processes falls on
all of them alike; the machine's load during the run is printed at the end. Everything runs offline on
loopback with a temporary home and cheap keystores (STATESET_KEYSTORE_SCRYPT_N=1024).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from gateway.aggregate import Gateway, build_aggregate
from gateway.backends import Backend, Target
from servers.common.logging import configure_logging
from servers.common.settings import MeshSettings
from servers.common.transports import MCP_PATH, listen, run_app
from servers.wallet import app as wallet_app

ERAS = {"2026-07-28": "auto", "2025-11-25": "legacy"}
STATESET = str(Path(sys.executable).parent / "stateset")
THIS = str(Path(__file__).resolve())
BLOCKS = 10  # interleaved blocks per group
FRESH_SHARE = 0.25  # FastMCP's per-call backend session costs ~2-5 ms: a quarter of the calls
BEHIND = " (wallet 2026-07-28)"  # the era between a child's aggregate or shared proxy and its in-process wallet


@dataclass
class Entry:
    """One way to reach the wallet's tools, and what was measured through it."""

    transport: str
    label: str
    call: Callable[[str, dict[str, Any]], Awaitable[types.CallToolResult]]
    era: str
    prefix: str = ""  # "wallet_" through a gateway
    share: float = 1.0
    address: str = ""
    latencies: list[float] = field(default_factory=list)

    async def tool(self, name: str, **arguments: Any) -> types.CallToolResult:
        return await self.call(self.prefix + name, arguments)


def child_env(home: Path) -> dict[str, str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "PYTHONPATH") if key in os.environ}
    return env | {
        "STATESET_HOME": str(home),
        "STATESET_KEYSTORE_SCRYPT_N": "1024",
        "STATESET_LOG_LEVEL": "ERROR",  # the sandbox warnings would land amid the table
        "FASTMCP_LOG_LEVEL": "ERROR",
        "FASTMCP_SHOW_SERVER_BANNER": "false",
        "FASTMCP_CHECK_FOR_UPDATES": "off",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client_call(client: Client) -> Callable[[str, dict[str, Any]], Awaitable[types.CallToolResult]]:
    return client.call_tool


async def prepare(entry: Entry) -> None:
    """A funded wallet to read; through a gateway, wait until its wallet backend is up."""
    wallet = {"label": "bench", "daily_limit": "9", "per_transaction_limit": "9"}
    deadline = time.monotonic() + 30
    while True:
        result = await entry.tool("create_wallet", **wallet)
        if not result.is_error:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{entry.label}: {result.content}")
        await anyio.sleep(0.1)  # the aggregate serves before its backends are connected
    assert result.structured_content is not None
    entry.address = result.structured_content["address"]
    funded = await entry.tool("fund_wallet", address=entry.address, amount="5")
    assert not funded.is_error, funded.content


async def measure(entries: list[Entry], calls: int, warmup: int) -> None:
    """Interleaved blocks: every entry takes its turn in each block, in alternating order."""
    for entry in entries:
        await prepare(entry)
        for _ in range(max(1, round(warmup * entry.share))):
            await entry.tool("get_balance", address=entry.address)
    for block in range(BLOCKS):
        for entry in entries if block % 2 == 0 else reversed(entries):
            for _ in range(max(1, round(calls * entry.share / BLOCKS))):
                started = time.perf_counter()
                result = await entry.call(entry.prefix + "get_balance", {"address": entry.address})
                entry.latencies.append(time.perf_counter() - started)
                assert not result.is_error and result.structured_content is not None, result.content
                assert result.structured_content["available"] == "5", result.structured_content


@dataclass
class Row:
    transport: str
    label: str
    era: str
    calls: int
    p50: float
    p99: float
    rate: float


def summarize(entry: Entry) -> Row:
    cuts = statistics.quantiles(entry.latencies, n=100)
    return Row(
        entry.transport,
        entry.label,
        entry.era,
        len(entry.latencies),
        cuts[49] * 1000,
        cuts[98] * 1000,
        len(entry.latencies) / sum(entry.latencies),
    )


def show(row: Row) -> None:
    print(
        f"{row.transport:<10}{row.label:<48}{row.era:<32}{row.calls:>6}{row.rate:>9.0f}{row.p50:>9.2f}{row.p99:>9.2f}",
        flush=True,
    )


# in-process


async def in_process(environ: dict[str, str], home: Path, mode: str, calls: int, warmup: int) -> list[Row]:
    from fastmcp import Client as FastMCPClient
    from fastmcp.server import create_proxy

    mesh = MeshSettings.from_env(environ, home=home)
    async with wallet_app.running(mesh, environ) as wallet, AsyncExitStack() as stack:
        server = wallet.server
        direct = await stack.enter_async_context(Client(server, mode=mode))
        era = direct.protocol_version
        gateway = Gateway({"wallet": Backend("wallet", Target(server=server, mode=mode))})
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(gateway.run)
        assert await gateway.wait_ready(10)
        aggregate = await stack.enter_async_context(Client(build_aggregate(gateway), mode=mode))
        # the SDK Client hosts FastMCP's lowlevel server in-process, as it does ours: the same host side
        fresh = await stack.enter_async_context(Client(create_proxy(server)._mcp_server, mode=mode))
        backend = await stack.enter_async_context(FastMCPClient(server, mode=mode))
        shared = await stack.enter_async_context(Client(create_proxy(backend)._mcp_server, mode=mode))
        entries = [
            Entry("in-proc", "direct: SDK Client on the wallet server", client_call(direct), era),
            Entry("in-proc", "library: Gateway.call_tool", gateway.call_tool, era, "wallet_"),
            Entry("in-proc", "aggregate: SDK Client on build_aggregate", client_call(aggregate), era, "wallet_"),
            Entry("in-proc", "FastMCP create_proxy(server), fresh", client_call(fresh), era, share=FRESH_SHARE),
            Entry("in-proc", "FastMCP create_proxy(client), shared", client_call(shared), era),
        ]
        await measure(entries, calls, warmup)
        tasks.cancel_scope.cancel()
    return [summarize(entry) for entry in entries]


# stdio


def stdio_params(home: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=args[0], args=list(args[1:]), env=child_env(home))


async def over_stdio(home: Path, mode: str, calls: int, warmup: int) -> list[Row]:
    this = (sys.executable, THIS)
    # (label, tool prefix, share of the calls, the wallet's era behind a proxy when fixed, command)
    children = [
        ("direct: stateset serve wallet", "", 1.0, "", (STATESET, "serve", "wallet", "--home", str(home / "serve"))),
        (
            "aggregate: stateset gateway --transport stdio",
            "wallet_",
            1.0,
            BEHIND,
            (STATESET, "gateway", "--transport", "stdio", "--home", str(home / "gateway")),
        ),
        (
            "FastMCP create_proxy(server), fresh",
            "",
            FRESH_SHARE,
            "",  # the host's era, mirrored
            (*this, "--serve-fastmcp", "stdio", "--proxy", "fresh", "--home", str(home / "fresh")),
        ),
        (
            "FastMCP create_proxy(client), shared",
            "",
            1.0,
            BEHIND,
            (*this, "--serve-fastmcp", "stdio", "--proxy", "shared", "--home", str(home / "shared")),
        ),
    ]
    async with AsyncExitStack() as stack:
        entries = []
        for label, prefix, share, behind, command in children:
            client = await stack.enter_async_context(
                Client(stdio_params(home, *command), mode=mode, read_timeout_seconds=60)
            )
            era = client.protocol_version + behind
            entries.append(Entry("stdio", label, client_call(client), era, prefix, share))
        await measure(entries, calls, warmup)
    return [summarize(entry) for entry in entries]


# streamable HTTP


def child_log(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    return home / "child.log"


@asynccontextmanager
async def child_process(command: list[str], home: Path, ready_url: str) -> AsyncIterator[None]:
    log = child_log(home)
    with log.open("ab") as sink:
        process = await anyio.open_process(command, env=child_env(home), stdout=sink, stderr=subprocess.STDOUT)
    try:
        async with httpx2.AsyncClient() as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get(ready_url)).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(command)} did not become ready:\n{log.read_text()[-2000:]}")
                await anyio.sleep(0.05)
        yield
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def over_http(home: Path, calls: int, warmup: int) -> list[Row]:
    up_port, fastmcp_port = free_port(), free_port()
    up, ours = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{fastmcp_port}"
    this = [sys.executable, THIS]
    rows: list[Row] = []
    async with (
        child_process([STATESET, "up", "--port", str(up_port), "--home", str(home / "up")], home / "up", f"{up}/ready"),
        child_process(
            [*this, "--serve-fastmcp", "http", "--port", str(fastmcp_port), "--home", str(home / "fastmcp")],
            home / "fastmcp",
            f"{ours}/health",
        ),
    ):
        for mode in ERAS.values():
            async with AsyncExitStack() as stack:
                entries = []
                for label, url, prefix, share, behind in (
                    ("direct: stateset up /wallet/mcp", f"{up}/wallet/mcp", "", 1.0, ""),
                    ("aggregate: stateset up /mcp", f"{up}/mcp", "wallet_", 1.0, BEHIND),
                    ("direct: FastMCP child's /wallet/mcp", f"{ours}/wallet/mcp", "", 1.0, ""),
                    ("FastMCP create_proxy(server), fresh", f"{ours}/fastmcp/mcp", "", FRESH_SHARE, ""),
                    ("FastMCP create_proxy(client), shared", f"{ours}/fastmcp-shared/mcp", "", 1.0, BEHIND),
                ):
                    client = await stack.enter_async_context(Client(url, mode=mode, read_timeout_seconds=60))
                    era = client.protocol_version + behind
                    entries.append(Entry("HTTP", label, client_call(client), era, prefix, share))
                await measure(entries, calls, warmup)
            for entry in entries:
                rows.append(summarize(entry))
                show(rows[-1])
    return rows


# the FastMCP child


async def serve_fastmcp(transport: str, proxy_kind: str, port: int) -> None:
    """The wallet server in this process behind FastMCP's proxy, over stdio or HTTP (with the wallet too)."""
    from fastmcp import Client as FastMCPClient
    from fastmcp.server import create_proxy

    environ = dict(os.environ)
    mesh = MeshSettings.from_env(environ)
    configure_logging(mesh.log_level)
    async with wallet_app.running(mesh, environ) as wallet:
        server: MCPServer[Any] = wallet.server
        async with FastMCPClient(server, mode="auto") as backend:
            fresh, shared = create_proxy(server, name="fresh"), create_proxy(backend, name="shared")
            if transport == "stdio":
                await (fresh if proxy_kind == "fresh" else shared).run_stdio_async(show_banner=False)
                return
            streamable = server.streamable_http_app(streamable_http_path=MCP_PATH, host="127.0.0.1")
            fresh_app, shared_app = fresh.http_app(path=MCP_PATH), shared.http_app(path=MCP_PATH)

            async def health(_: Request) -> JSONResponse:
                return JSONResponse({"status": "ok"})

            @asynccontextmanager
            async def lifespan(_: Starlette) -> AsyncIterator[None]:
                async with (
                    server.session_manager.run(),
                    fresh_app.lifespan(fresh_app),
                    shared_app.lifespan(shared_app),
                ):
                    yield

            app = Starlette(
                routes=[
                    Route("/health", health),
                    Mount("/wallet", app=Starlette(routes=streamable.routes)),
                    Mount("/fastmcp-shared", app=shared_app),
                    Mount("/fastmcp", app=fresh_app),
                ],
                lifespan=lifespan,
            )
            await run_app(app, listen("127.0.0.1", port))


# the run


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def ratio_lines(rows: list[Row]) -> None:
    def find(transport: str, prefix: str, era: str) -> Row:
        return next(
            r for r in rows if r.transport == transport and r.label.startswith(prefix) and r.era.startswith(era)
        )

    print("\nper-call overhead (p50):")
    for era in ERAS:
        direct, library = find("in-proc", "direct", era), find("in-proc", "library", era)
        aggregate = find("in-proc", "aggregate", era)
        fresh, shared = (
            find("in-proc", "FastMCP create_proxy(server)", era),
            find("in-proc", "FastMCP create_proxy(c", era),
        )
        verdict = "met" if library.p50 <= direct.p50 * 1.10 else "MISSED"
        print(
            f"  {era} in-process: library {library.p50 / direct.p50 - 1:+.0%} over direct "
            f"({library.p50 - direct.p50:+.3f} ms; target at most +10 %: {verdict}); "
            f"aggregate {aggregate.p50 - direct.p50:+.3f} ms; "
            f"FastMCP fresh {fresh.p50 - direct.p50:+.3f} ms, shared {shared.p50 - direct.p50:+.3f} ms"
        )
    for era in ERAS:
        direct, aggregate = find("stdio", "direct", era), find("stdio", "aggregate", era)
        fresh, shared = find("stdio", "FastMCP create_proxy(server)", era), find("stdio", "FastMCP create_proxy(c", era)
        print(
            f"  {era} stdio: gateway x{aggregate.p50 / direct.p50:.2f} of serve wallet "
            f"({aggregate.p50 - direct.p50:+.3f} ms); FastMCP fresh x{fresh.p50 / direct.p50:.2f}, "
            f"shared x{shared.p50 / direct.p50:.2f}"
        )
    for era in ERAS:
        direct, aggregate = find("HTTP", "direct: stateset", era), find("HTTP", "aggregate", era)
        theirs = find("HTTP", "direct: FastMCP", era)
        fresh, shared = find("HTTP", "FastMCP create_proxy(server)", era), find("HTTP", "FastMCP create_proxy(c", era)
        verdict = "met" if aggregate.p50 - direct.p50 <= 1.0 else "MISSED"
        print(
            f"  {era} HTTP: aggregate {aggregate.p50 - direct.p50:+.3f} ms over /wallet/mcp "
            f"(target at most +1 ms: {verdict}); FastMCP fresh {fresh.p50 - theirs.p50:+.3f} ms, "
            f"shared {shared.p50 - theirs.p50:+.3f} ms over its process's /wallet/mcp"
        )


async def main(calls: int, warmup: int) -> None:
    from importlib.metadata import version

    os.environ.setdefault("FASTMCP_LOG_LEVEL", "ERROR")  # before fastmcp is imported
    began, (busy0, total0) = time.perf_counter(), cpu_jiffies()
    load0 = os.getloadavg()
    print(
        f"wallet get_balance, {calls} calls per row (FastMCP fresh: {round(calls * FRESH_SHARE)}), 1 caller, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, mcp {version('mcp')}, fastmcp {version('fastmcp')}"
    )
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    print(f"{'transport':<10}{'path':<48}{'era':<32}{'calls':>6}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as directory:
        home = Path(directory)
        environ = child_env(home / "in-process")
        for mode in ERAS.values():
            for row in await in_process(environ, home / f"in-process-{mode}", mode, calls, warmup):
                rows.append(row)
                show(row)
        for mode in ERAS.values():
            for row in await over_stdio(home / f"stdio-{mode}", mode, calls, warmup):
                rows.append(row)
                show(row)
        rows += await over_http(home / "http", calls, warmup)
    elapsed = time.perf_counter() - began
    busy1, total1 = cpu_jiffies()
    ours = sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    cores = os.cpu_count() or 1
    machine = (busy1 - busy0) / (total1 - total0) * cores
    others = max(0.0, machine - ours / elapsed)
    load1 = os.getloadavg()
    ratio_lines(rows)
    print(
        f"\n{elapsed:.0f} s; cores busy on average: {machine:.2f} of {cores}, of which this benchmark and its "
        f"children {ours / elapsed:.2f} and other processes {others:.2f}; "
        f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="measured calls per row (default: 600)")
    parser.add_argument("--warmup", type=int, default=60, help="unmeasured calls per row first (default: 60)")
    parser.add_argument("--serve-fastmcp", choices=("stdio", "http"), help=argparse.SUPPRESS)
    parser.add_argument("--proxy", choices=("fresh", "shared"), default="fresh", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fastmcp:
        os.environ["STATESET_HOME"] = str(args.home)
        anyio.run(serve_fastmcp, args.serve_fastmcp, args.proxy, args.port)
    else:
        configure_logging("WARNING")
        anyio.run(main, args.calls, args.warmup)
