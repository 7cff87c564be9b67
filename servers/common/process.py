"""How a `stateset` process starts and ends: settings, logging, and one line for what a user can fix.

A command is an async function of the settings and the environment. A mistake the user can fix (a bad
setting, a data directory that is a file or in use, a port taken) ends the process with one line on
stderr naming it and exit status 2; Ctrl-C at any moment ends it quietly with 130. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio

from servers.common.logging import configure_logging
from servers.common.settings import ConfigError, MeshSettings

Command = Callable[[MeshSettings, Mapping[str, str]], Awaitable[int]]


def run_command(command: Command, environ: Mapping[str, str], *, home: Path | None = None) -> int:
    """Run `command` to its exit status."""
    try:
        mesh = MeshSettings.from_env(environ, home=home)
        configure_logging(mesh.log_level)
        return anyio.run(command, mesh, environ)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        return _refuse(exc)
    except BaseExceptionGroup as group:  # raised inside a task group; the first user-fixable cause speaks
        interrupted, rest = group.split(KeyboardInterrupt)
        if interrupted is not None and rest is None:
            return 130
        config, others = group.split(ConfigError)
        if config is not None and others is None:
            return _refuse(_leaves(config)[0])
        raise


def _refuse(exc: BaseException) -> int:
    print(f"stateset: {exc}", file=sys.stderr)
    return 2


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves
