"""The REST API's resources: versions, describe, records (create, read, update, delete, upsert by external
ID), SOQL with paging, changed IDs and limits. Each handler answers one resource; the checks every data
call shares (version, token, limits, faults) are in app.py."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.salesforce.sandbox import soql
from adapters.salesforce.sandbox.errors import ApiError
from adapters.salesforce.sandbox.org import SalesforceOrg
from adapters.salesforce.sandbox.schema import SCHEMA, SObjectType, describe, sobject_named, summary

LABELS = {"58.0": "Summer '23", "59.0": "Winter '24", "60.0": "Spring '24", "61.0": "Summer '24",
          "62.0": "Winter '25", "63.0": "Spring '25", "64.0": "Summer '25", "65.0": "Winter '26",
          "66.0": "Spring '26", "67.0": "Summer '26"}  # fmt: skip


def _sobject(request: Request) -> SObjectType:
    return sobject_named(request.path_params["sobject"])


def _version(request: Request) -> str:
    return str(request.path_params["version"])


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body(), parse_constant=_no_constant)  # NaN and Infinity are not JSON
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sobject from a non-object value")
    return body


async def versions(request: Request, org: SalesforceOrg) -> Response:
    return JSONResponse(
        [{"label": LABELS.get(v, v), "url": f"/services/data/v{v}", "version": v} for v in org.versions]
    )


# describe


async def describe_global(request: Request, org: SalesforceOrg) -> Response:
    version = _version(request)
    return JSONResponse(
        {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [summary(s, version) for s in SCHEMA.values()]}
    )


async def describe_sobject(request: Request, org: SalesforceOrg) -> Response:
    return JSONResponse(describe(_sobject(request), _version(request)))


# records


async def sobject_root(request: Request, org: SalesforceOrg) -> Response:
    """GET: the sObject's basic information and recent items; POST: create a record."""
    sobject = _sobject(request)
    if request.method == "GET":
        recent = list(org.records[sobject.name].values())[-5:]
        return JSONResponse(
            {
                "objectDescribe": summary(sobject, _version(request)),
                "recentItems": [_shaped(sobject, r, ["Id", "Name"], _version(request)) for r in recent],
            }
        )
    record_id = org.create(sobject, await _json_body(request))
    return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)


async def record(request: Request, org: SalesforceOrg) -> Response:
    sobject, record_id = _sobject(request), request.path_params["record_id"]
    method = request.method
    if method == "POST":
        method = request.query_params.get("_HttpMethod", "")
        if method != "PATCH":
            raise ApiError(405, "METHOD_NOT_ALLOWED", "HTTP Method 'POST' not allowed. Allowed are GET,PATCH,DELETE")
    if method == "PATCH":
        org.update(sobject, record_id, await _json_body(request))
        return Response(status_code=204)
    found = org.find(sobject, record_id)
    if method == "DELETE":
        del org.records[sobject.name][found["Id"]]
        return Response(status_code=204)
    fields = request.query_params.get("fields")
    return JSONResponse(_shaped(sobject, found, fields.split(",") if fields else None, _version(request)))


async def upsert(request: Request, org: SalesforceOrg) -> Response:
    sobject = _sobject(request)
    found = sobject.field(request.path_params["field"])
    if found is None or not found[1].external_id:
        raise ApiError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {request.path_params['field']}",
        )
    name, value = found[0], request.path_params["value"]
    body = await _json_body(request)
    matches = [r for r in org.records[sobject.name].values() if r.get(name) == value]
    if len(matches) > 1:
        return JSONResponse(
            [f"/services/data/v{_version(request)}/sobjects/{sobject.name}/{r['Id']}" for r in matches],
            status_code=300,
        )
    if matches:
        org.update(sobject, matches[0]["Id"], body)
        return JSONResponse({"id": matches[0]["Id"], "success": True, "errors": [], "created": False}, status_code=200)
    record_id = org.create(sobject, body | {name: value})
    return JSONResponse({"id": record_id, "success": True, "errors": [], "created": True}, status_code=201)


def _shaped(sobject: SObjectType, record: dict[str, Any], fields: list[str] | None, version: str) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "attributes": {"type": sobject.name, "url": f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}"}
    }
    for name in fields or list(sobject.fields):
        found = sobject.field(name.strip())
        if found is None:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on entity '{sobject.name}'")
        shaped[found[0]] = record.get(found[0])
    return shaped


# queries, changes, limits


async def query(request: Request, org: SalesforceOrg) -> Response:
    text = request.query_params.get("q")
    if not text:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        parsed = soql.parse(text)
    except soql.MalformedQuery as exc:
        raise ApiError(400, "MALFORMED_QUERY", str(exc)) from None
    sobject = next((s for s in SCHEMA.values() if s.name.lower() == parsed.sobject.lower()), None)
    if sobject is None:
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{parsed.sobject}' is not supported.")
    for name in parsed.referenced_fields():
        if sobject.field(name) is None:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject.name}'")
    selected = soql.run(parsed, list(org.records[sobject.name].values()))
    version = _version(request)
    if parsed.count_only:
        return JSONResponse({"totalSize": len(selected), "done": True, "records": []})
    return JSONResponse(org.page([_shaped(sobject, r, list(parsed.fields), version) for r in selected], version))


async def query_more(request: Request, org: SalesforceOrg) -> Response:
    locator = request.path_params["locator"].split("-")[0]
    cursor = org.cursors.pop(locator, None)
    if cursor is None:
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    records, version, total = cursor
    return JSONResponse(org.page(records, version, total))


async def updated(request: Request, org: SalesforceOrg) -> Response:
    sobject = _sobject(request)
    try:
        start = datetime.fromisoformat(request.query_params["start"])
        end = datetime.fromisoformat(request.query_params["end"])
    except (KeyError, ValueError):
        raise ApiError(400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 date-times") from None
    ids = []
    for row in org.records[sobject.name].values():
        stamp = datetime.strptime(row["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
        if start <= stamp <= end:
            ids.append(row["Id"])
    return JSONResponse({"ids": ids, "latestDateCovered": end.isoformat()})


async def limits(request: Request, org: SalesforceOrg) -> Response:
    return JSONResponse({"DailyApiRequests": {"Max": org.daily_limit, "Remaining": org.daily_limit - org.api_usage}})
