"""Failures a test queues on the sandbox (POST /_emulator/faults, or `SapSystem.inject`): an HTTP status and
error code, latency, a connection dropped mid-answer; before or after the change is committed."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.responses import Response

from adapters.sandbox.hooks import DroppedResponse
from adapters.sap.sandbox.errors import ODataError


@dataclass
class Fault:
    status: int = 503
    code: str = "/IWFND/CM_BEC/026"
    message: str = "No work process is available"
    latency_ms: int = 0
    drop: bool = False
    after_commit: bool = False
    method: str | None = None

    def matches(self, method: str) -> bool:
        return self.method is None or self.method == method

    def response(self, service: str) -> Response:
        if self.drop:
            return DroppedResponse()
        return ODataError(self.status, self.code, self.message).response(service)


@dataclass
class Faults:
    faults: list[Fault] = field(default_factory=list)

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend(Fault(**vars(fault)) for _ in range(times))

    def take_fault(self, method: str) -> Fault | None:
        fault = next((f for f in self.faults if f.matches(method)), None)
        if fault is not None:
            self.faults.remove(fault)
        return fault
