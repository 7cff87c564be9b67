"""SAP Gateway's V2 error envelope, everywhere the sandbox answers with an error: error.code,
error.message.{lang,value}, innererror.{application, transactionid, timestamp, Error_Resolution,
errordetails}. Unknown paths (404), verbs a resource does not take (405), a malformed test-hook request
(400) and anything unexpected (500) come in it too."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.sandbox.hooks import BadHookRequest
from adapters.sap.models import SERVICE, STOCK_SERVICE, STOCK_SERVICE_PATH

logger = logging.getLogger(__name__)

COMPONENTS = {SERVICE: "MM-PUR-PO", STOCK_SERVICE: "MM-IM"}  # innererror.application.component_id
ERROR_LOG = (
    'For backend administrators: use ADT feed reader "SAP Gateway Error Log" or run transaction /IWFND/ERROR_LOG '
    "on SAP Gateway hub system and search for entries with the timestamp above for more details"
)
NOTE = "See SAP Note 1797736 for error analysis (https://service.sap.com/sap/support/notes/1797736)"


def detail(code: str, message: str, target: str) -> dict[str, str]:
    """One entry of innererror.errordetails; `target` names the property (propertyref)."""
    return {"code": code, "message": message, "propertyref": target, "severity": "error", "target": target}


class ODataError(Exception):
    """An answer in the SAP Gateway V2 error envelope."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []

    def response(self, service: str = SERVICE) -> JSONResponse:
        body = {
            "error": {
                "code": self.code,
                "message": {"lang": "en", "value": self.message},
                "innererror": {
                    "application": {
                        "component_id": COMPONENTS.get(service, ""),
                        "service_namespace": "/SAP/",
                        "service_id": service,
                        "service_version": "0001",
                    },
                    "transactionid": uuid.uuid4().hex.upper(),
                    "timestamp": datetime.now(UTC).strftime("%Y%m%d%H%M%S.%f")[:-3],
                    "Error_Resolution": {"SAP_Transaction": ERROR_LOG, "SAP_Note": NOTE},
                    "errordetails": self.details or [detail(self.code, self.message, "")],
                },
            }
        }
        return JSONResponse(body, status_code=self.status)


def not_found(segment: str) -> ODataError:
    return ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{segment}'.")


def _service(request: Request) -> str:
    return STOCK_SERVICE if request.url.path.startswith(STOCK_SERVICE_PATH) else SERVICE


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return not_found(request.url.path.rstrip("/").rsplit("/", 1)[-1]).response(_service(request))
    if exc.status_code == 405:
        error = ODataError(405, "/IWBEP/CM_MGW_RT/036", f"Method '{request.method}' is not allowed on this resource")
        response = error.response(_service(request))
        response.headers["allow"] = (exc.headers or {}).get("Allow", "")
        return response
    return ODataError(exc.status_code, "/IWBEP/CM_MGW_RT/000", exc.detail).response(_service(request))


async def _bad_hook(request: Request, exc: Exception) -> Response:
    return ODataError(400, "/IWBEP/CM_MGW_RT/010", str(exc)).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("the SAP emulator failed on %s %s", request.method, request.url.path, exc_info=exc)
    return ODataError(500, "/IWBEP/CM_MGW_RT/000", "Runtime error in the service").response(_service(request))


EXCEPTION_HANDLERS = {HTTPException: _http_error, BadHookRequest: _bad_hook, Exception: _unexpected}
