"""`configs/mesh.yaml`: which servers the gateway fronts and how it reaches each.

    backends:
      wallet: {in_process: true}                         # started in this process, wired to the others
      governance: {command: [stateset, serve, governance], env: {STATESET_LOG_LEVEL: WARNING}}
      sap: {url: "http://127.0.0.1:8706/mcp", token_env: STATESET_SAP_TOKEN, era: "2025-11-25"}

A token is never written in the file: `token_env` names the variable that holds it, sent as a bearer
token. `era` pins the 2025-11-25 handshake; `auto` (the default) lets the client negotiate.
STATESET_MESH_CONFIG names another file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.backends import Target
from gateway.registry import SERVERS
from servers.common.logging import register_secret
from servers.common.settings import ConfigError, load_yaml

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mesh.yaml"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"


class BackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    in_process: bool = False
    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    era: Literal["auto", "2025-11-25"] = "auto"
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> BackendConfig:
        ways = [self.in_process, self.command is not None, self.url is not None]
        if sum(ways) != 1:
            raise ValueError("give exactly one of in_process: true, command: [...] or url: ...")
        if (self.headers or self.token_env) and self.url is None:
            raise ValueError("headers and token_env apply only to a url backend")
        if self.env and self.command is None:
            raise ValueError("env applies only to a command backend")
        return self


class MeshConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backends: dict[str, BackendConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> MeshConfig:
        for name, backend in self.backends.items():
            if not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(f"backend name {name!r} must match {NAME_PATTERN} (it prefixes tool names)")
            if backend.in_process and name not in SERVERS:
                raise ValueError(f"{name!r} cannot run in process; the servers that can: {', '.join(SERVERS)}")
        return self

    @property
    def in_process(self) -> list[str]:
        return [name for name, backend in self.backends.items() if backend.in_process]

    def targets(self, environ: Mapping[str, str]) -> dict[str, Target]:
        """The out-of-process backends' targets, tokens read from the environment.

        Raises:
            ConfigError: a `token_env` variable that is not set.
        """
        targets = {}
        for name, backend in self.backends.items():
            mode = "legacy" if backend.era == "2025-11-25" else "auto"
            if backend.command is not None:
                env = dict(environ) | backend.env
                targets[name] = Target(command=tuple(backend.command), env=env, mode=mode)
            elif backend.url is not None:
                headers = dict(backend.headers)
                if backend.token_env is not None:
                    token = environ.get(backend.token_env)
                    if not token:
                        raise ConfigError(f"backend {name}: token_env {backend.token_env} is not set")
                    register_secret(token)
                    headers["Authorization"] = f"Bearer {token}"
                targets[name] = Target(url=backend.url, headers=headers, mode=mode)
        return targets


def everything_in_process() -> MeshConfig:
    return MeshConfig(backends={name: BackendConfig(in_process=True) for name in SERVERS})


def load_mesh_config(environ: Mapping[str, str], path: Path | None = None) -> MeshConfig:
    """The file named by `path`, STATESET_MESH_CONFIG, or the shipped configs/mesh.yaml; every server in
    process when none of them exists (an installed package without the source tree)."""
    chosen = path or (Path(environ["STATESET_MESH_CONFIG"]) if environ.get("STATESET_MESH_CONFIG") else None)
    if chosen is None:
        if not DEFAULT_CONFIG.is_file():
            return everything_in_process()
        chosen = DEFAULT_CONFIG
    return load_yaml(chosen, MeshConfig)
