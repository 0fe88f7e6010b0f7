"""`GET /admin/openapi.json`: an OpenAPI 3.1 document generated from the route table and its structs.

Schemas come from `msgspec.json.schema_components` over the very structs that decode requests and
encode responses, so the document cannot drift from what the server accepts. Built once per process.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec

from .routes import ROUTES
from .schemas import ErrorBody

_REF = "#/components/schemas/{name}"
_ERRORS = {
    "400": "Malformed body or query: unknown field, wrong type, negative limit, bad date (`param` names it)",
    "401": "Missing, invalid, revoked or expired key",
    "403": "The key is not an admin key",
    "404": "No such object",
    "409": "Conflicts with the stored state",
}


def document() -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for route in ROUTES:
        types.append(route.response)
        if route.body is not None:
            types.append(route.body)
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    ref_of = dict(zip(types, refs, strict=True))
    error_ref = ref_of[ErrorBody]
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": _operation_id(route.method, route.template),
            "tags": [route.template.split("/")[2]],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in route.regex.groupindex
            ]
            + [
                {
                    "name": p.name,
                    "in": "query",
                    "required": False,
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in route.query
            ],
            "responses": {
                str(route.status): {
                    "description": "OK",
                    "content": {"application/json": {"schema": ref_of[route.response]}},
                },
                **{
                    status: {"description": text, "content": {"application/json": {"schema": error_ref}}}
                    for status, text in _ERRORS.items()
                },
            },
        }
        if route.body is not None:
            operation["requestBody"] = {
                "required": route.method == "POST" and route.body.__name__ != "RotateIn",
                "content": {"application/json": {"schema": ref_of[route.body]}},
            }
        paths.setdefault(route.template, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sluicegate admin API",
            "version": _version(),
            "description": "Virtual keys, teams, users, spend, request log and audit log. "
            "Authenticate with the master key or a key whose role is admin.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@functools.cache
def document_bytes() -> bytes:
    return msgspec.json.encode(document())


def _operation_id(method: str, template: str) -> str:
    words = [w.strip("{}") for w in template.split("/")[2:]]
    return method.lower() + "_" + "_".join(words)


def _version() -> str:
    try:
        return version("sluicegate")
    except PackageNotFoundError:
        return "0"
