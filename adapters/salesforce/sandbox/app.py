"""The org's REST API and OAuth endpoint as one ASGI app, and what every data call goes through first: the
request log, the API version, the bearer token, the daily limit, a queued fault, the content type."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.salesforce.sandbox import oauth, rest
from adapters.salesforce.sandbox.errors import EXCEPTION_HANDLERS, NOT_FOUND, ApiError
from adapters.salesforce.sandbox.org import Fault, SalesforceOrg
from adapters.sandbox.hooks import DroppedResponse, hook_routes, json_or_text

Handler = Callable[[Request, SalesforceOrg], Awaitable[Response]]
DATA = "/services/data/v{version}"


def sandbox_app(control_token: str | None = None) -> Starlette:
    """A fresh, empty sandbox org; its test hooks take `control_token`, or a random one."""
    return build_app(SalesforceOrg() if control_token is None else SalesforceOrg(control_token=control_token))


def build_app(org: SalesforceOrg) -> Starlette:
    def data(handler: Handler, *, writes: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            org.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": str(request.url.query),
                    "body": json_or_text(body),
                    "headers": {k: v for k, v in request.headers.items() if k.lower() != "authorization"},
                }
            )
            try:
                if request.path_params["version"] not in org.versions:
                    raise ApiError(404, "NOT_FOUND", NOT_FOUND)
                oauth.authorize(request, org)
                org.api_usage += 1
                if org.api_usage > org.daily_limit:
                    raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                fault = org.take_fault(request.method, request.url.path)
                if fault is not None:
                    if fault.latency_ms:
                        await asyncio.sleep(fault.latency_ms / 1000)
                    if not fault.after_commit and (fault.drop or fault.status):
                        return _fault_response(fault)
                if writes and body and "json" not in request.headers.get("content-type", ""):
                    raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
                response = await handler(request, org)
                if fault is not None and fault.after_commit:
                    return _fault_response(fault)
            except ApiError as error:
                response = error.response()
            response.headers["Sforce-Limit-Info"] = f"api-usage={org.api_usage}/{org.daily_limit}"
            return response

        return endpoint

    def route(path: str, handler: Handler, methods: list[str], *, writes: bool = False) -> list[Route]:
        """The resource with and without a trailing slash: Salesforce answers both, and clients send both."""
        endpoint = data(handler, writes=writes)
        return [Route(f"{DATA}{path}", endpoint, methods=methods), Route(f"{DATA}{path}/", endpoint, methods=methods)]

    routes = [
        Route("/services/oauth2/token", partial(oauth.token, org=org), methods=["POST"]),
        Route("/services/data/", partial(rest.versions, org=org), methods=["GET"]),
        *route("/limits", rest.limits, ["GET"]),
        *route("/query", rest.query, ["GET"]),
        Route(f"{DATA}/query/{{locator}}", data(rest.query_more), methods=["GET"]),
        *route("/sobjects", rest.describe_global, ["GET"]),
        *route("/sobjects/{sobject}/describe", rest.describe_sobject, ["GET"]),
        *route("/sobjects/{sobject}/updated", rest.updated, ["GET"]),
        *route("/sobjects/{sobject}", rest.sobject_root, ["GET", "POST"], writes=True),
        Route(
            f"{DATA}/sobjects/{{sobject}}/{{record_id}}",
            data(rest.record, writes=True),
            methods=["GET", "PATCH", "DELETE", "POST"],
        ),
        Route(f"{DATA}/sobjects/{{sobject}}/{{field}}/{{value}}", data(rest.upsert, writes=True), methods=["PATCH"]),
        *hook_routes(
            control=org,
            expire=("expire-tokens", org.expire_tokens),
            inject=lambda spec, times: org.inject(Fault(**spec), times),
            log=org.requests,
            reset=org.reset,
        ),
    ]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)


def _fault_response(fault: Fault) -> Response:
    if fault.drop:
        return DroppedResponse()
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    return JSONResponse(
        [{"message": fault.message, "errorCode": fault.code}], status_code=fault.status, headers=headers
    )
