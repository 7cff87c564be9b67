"""The sandbox system (`SapSystem`: its sessions, purchase orders, stock and queued faults, in memory) and
its HTTP surface: both OData services, the OAuth token endpoint, the Event Mesh queue and the test hooks.

Every OData request goes through one guard, in Gateway's order: the request log, logon, the client, the
session and its CSRF token, a queued fault, the content type; then the service answers, and the guard adds
the session's cookies, the fetched token and `DataServiceVersion: 2.0`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.sandbox.hooks import HookControl, RequestLog, hook_routes, json_or_text, request_log
from adapters.sap.models import SERVICE, SERVICE_PATH, STOCK_SERVICE, STOCK_SERVICE_PATH
from adapters.sap.sandbox import material_stock, purchase_orders
from adapters.sap.sandbox.errors import EXCEPTION_HANDLERS, ODataError
from adapters.sap.sandbox.faults import Fault, Faults
from adapters.sap.sandbox.material_stock import MaterialStock
from adapters.sap.sandbox.purchase_orders import PurchaseOrders
from adapters.sap.sandbox.sessions import MODIFYING, GatewaySessions, token, with_cookies

ODATA_METHODS = ["GET", "POST", "PUT", "PATCH", "MERGE", "DELETE"]


@dataclass
class SapSystem(GatewaySessions, PurchaseOrders, MaterialStock, Faults, HookControl):
    """The emulated system's state, in memory: a sandbox starts empty. Its test hooks need `control_headers`."""

    requests: RequestLog = field(default_factory=request_log)


Handler = Callable[[Request, SapSystem, str], Awaitable[Response]]


def sandbox_app(control_token: str | None = None) -> Starlette:
    """A fresh, empty sandbox system; its test hooks take `control_token`, or a random one."""
    return build_app(SapSystem() if control_token is None else SapSystem(control_token=control_token))


def build_app(system: SapSystem) -> Starlette:
    def guarded(handler: Handler, service: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            method = request.headers.get("x-http-method", request.method).upper()
            system.requests.append(
                {
                    "method": method,
                    "path": request.url.path,
                    "query": str(request.url.query),
                    "body": json_or_text(body),
                    "headers": {
                        k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "cookie")
                    },
                }
            )
            try:
                request.state.user = user = system.logon(request)
                system.check_client(request)
                session, new_cookies = system.session_of(request, user)
                refusal = system.csrf_refusal(request, method, session, bool(new_cookies))
                if refusal is not None:
                    return with_cookies(refusal, new_cookies)
                fault = system.take_fault(method)
                if fault is not None:
                    if fault.latency_ms:
                        await asyncio.sleep(fault.latency_ms / 1000)
                    if not fault.after_commit and (fault.drop or fault.status):
                        return with_cookies(fault.response(service), new_cookies)
                if method in MODIFYING and body and "json" not in request.headers.get("content-type", ""):
                    raise ODataError(415, "/IWBEP/CM_MGW_RT/007", "Content-Type must be application/json")
                response = await handler(request, system, method)
                if fault is not None and fault.after_commit:
                    response = fault.response(service)
                if request.headers.get("x-csrf-token", "").lower() == "fetch":
                    system.csrf_fetches += 1
                    response.headers["x-csrf-token"] = session.token
                response.headers["dataserviceversion"] = "2.0"
                return with_cookies(response, new_cookies)
            except ODataError as error:
                return error.response(service)

        return endpoint

    def service_routes(path: str, service: str, document: Handler, metadata: Handler, resource: Handler) -> list[Route]:
        return [
            Route(f"{path}/", guarded(document, service), methods=["GET", "HEAD"]),
            Route(f"{path}/$metadata", guarded(metadata, service), methods=["GET", "HEAD"]),
            Route(f"{path}/{{path:path}}", guarded(resource, service), methods=ODATA_METHODS),
        ]

    orders, stock = purchase_orders, material_stock

    routes = [
        Route("/sap/bc/sec/oauth2/token", partial(token, gateway=system), methods=["POST"]),
        *service_routes(SERVICE_PATH, SERVICE, orders.service_document, orders.metadata_document, orders.resource),
        *service_routes(
            STOCK_SERVICE_PATH, STOCK_SERVICE, stock.service_document, stock.metadata_document, stock.resource
        ),
        Route(
            "/messagingrest/v1/queues/{queue:path}/messages/consumption",
            partial(_consume, system=system),
            methods=["POST"],
        ),
        *hook_routes(
            control=system,
            expire=("expire-sessions", system.expire_sessions),
            inject=lambda spec, times: system.inject(Fault(**spec), times),
            log=system.requests,
            more={"stock": partial(material_stock.seed, stock=system)},
        ),
    ]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)


async def _consume(request: Request, system: SapSystem) -> Response:
    """Event Mesh REST consumption (QoS 0): the oldest message on the queue, or 204 when it is empty."""
    try:
        system.logon(request)
    except ODataError as error:
        return error.response()
    queue = system.queues.get(request.path_params["queue"])
    if queue is None:
        return JSONResponse({"message": f"queue {request.path_params['queue']} not found"}, status_code=404)
    if not queue:
        return Response(status_code=204)
    message = queue.pop(0)
    return JSONResponse(
        message, headers={"x-message-id": message["id"], "content-type": "application/cloudevents+json"}
    )
