"""What checking a mesh token adds to a call.

    .venv/bin/python bench/auth_tokens.py [--calls 400] [--rounds 5]

Prints, side by side in one run:
- verifying a token: the first time (ES256 signature and claims, PyJWT) and every later time (kept claims, expiry
  and revocation checked), medians of many;
- a trivial tool call over streamable HTTP on loopback (2026-07-28 era), with a bearer token checked by the
  server against the mesh authority, and the same server with `--no-auth`: p50 of each, interleaved round by
  round so load from other processes falls on both alike, and their difference (target: at most 0.1 ms);
- opening a connection with the token and its first call, with the server proving who it is first (the pin:
  servers.common.pinning) and without, interleaved: what pinning adds once per connection.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from servers.common.auth import LOCAL_OPERATOR, Authority, set_process_principal
from servers.common.clients import Target, connect
from servers.common.feed import ChangeFeed
from servers.common.logging import configure_logging
from servers.common.pinning import Pin, ServerIdentity
from servers.common.scopes import ALL_SCOPES
from servers.common.surface import new_server
from servers.common.transports import http_app, serving

SUBJECT = "did:stateset:operator:bench"


def per_call_us(work: Any, count: int) -> float:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        work()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1e6


async def timed_calls(client: Client, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        await client.call_tool("ping", {})
        samples.append(time.perf_counter() - began)
    return samples


async def main(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        home.mkdir(mode=0o700)
        authority = Authority.load(home, {"STATESET_KEYSTORE_PASSWORD": "bench-password"})
        trust = authority.trust_root()
        tokens = [authority.issue(SUBJECT, ALL_SCOPES, 3600).token for _ in range(2000)]
        fresh = iter(tokens)
        cold = per_call_us(lambda: trust.verify(next(fresh), ("stateset-mesh",)), 1000)
        kept = tokens[0]
        trust.verify(kept, ("stateset-mesh",))
        warm = per_call_us(lambda: trust.verify(kept, ("stateset-mesh",)), 20000)
        print(f"verify a token: first time {cold:.1f} us, later {warm:.2f} us (median)")

        def server() -> Any:
            built = new_server(
                "bench", title="bench", instructions="one tool", feed=ChangeFeed(), scopes={"ping": None}
            )

            @built.tool()
            async def ping() -> str:
                return "pong"

            return built

        set_process_principal(LOCAL_OPERATOR)  # the server without tokens acts for the local operator
        identity = ServerIdentity.certified(authority, ["bench"])
        with socket.socket() as probe:  # the server proves the URL it is reached at: chosen before it starts
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with_auth: list[float] = []
        without: list[float] = []
        async with (
            serving(
                http_app(server(), "http", base_url=f"http://127.0.0.1:{port}", trust=trust, identity=identity),
                port=port,
                lifespan=True,
            ) as secured,
            serving(http_app(server(), "http"), lifespan=True) as open_url,
        ):
            header = {"Authorization": f"Bearer {kept}"}
            async with (
                connect(Target(url=f"{secured}/mcp", headers=header, mode="2026-07-28"), timeout_seconds=60) as a,
                connect(Target(url=f"{open_url}/mcp", mode="2026-07-28"), timeout_seconds=60) as b,
            ):
                await timed_calls(a, 50)
                await timed_calls(b, 50)
                for _ in range(rounds):
                    with_auth += await timed_calls(a, calls)
                    without += await timed_calls(b, calls)
            pinned: list[float] = []
            unpinned: list[float] = []
            for _ in range(rounds * 10):
                for pin, samples in ((Pin(trust, "bench"), pinned), (None, unpinned)):
                    target = Target(url=f"{secured}/mcp", headers=header, mode="2026-07-28", pin=pin)
                    began = time.perf_counter()
                    async with connect(target, timeout_seconds=60) as client:
                        await client.call_tool("ping", {})
                    samples.append(time.perf_counter() - began)
        p50_auth, p50_open = statistics.median(with_auth) * 1e3, statistics.median(without) * 1e3
        print(f"trivial tool call over streamable HTTP, p50 of {len(with_auth)}:")
        print(f"  with a token checked  {p50_auth:.3f} ms")
        print(f"  --no-auth             {p50_open:.3f} ms")
        print(f"  added by the token    {p50_auth - p50_open:+.3f} ms ({p50_auth / p50_open:.3f}x)")
        p50_pinned, p50_unpinned = statistics.median(pinned) * 1e3, statistics.median(unpinned) * 1e3
        print(f"connect with a token and call once, p50 of {len(pinned)}:")
        print(f"  the server proves who it is first  {p50_pinned:.2f} ms")
        print(f"  without that proof                 {p50_unpinned:.2f} ms")
        print(f"  added by the pin, per connection   {p50_pinned - p50_unpinned:+.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    configure_logging("WARNING")
    anyio.run(main, options.calls, options.rounds)
