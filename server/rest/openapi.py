"""The OpenAPI document, built from the routes as they are registered, and Swagger UI.

Schemas come from the pydantic models each route declares, so the document cannot drift
from the code. Swagger UI 5 (it reads OpenAPI 3.1) is served from the files of the
`swagger-ui-py` package (PyPI): no CDN.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import swagger_ui
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server.keys import SETTINGS
from server.texts import method_not_allowed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SWAGGER_UI_DIR = Path(swagger_ui.__file__).parent / "static"
_DOCS_PAGE = """<!DOCTYPE html>
<html lang="ko"><head><meta charset="utf-8"><title>API docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script>
<script src="/api/docs/static/swagger-ui-standalone-preset.js"></script>
<script src="/api/docs/init.js"></script></body></html>"""
# a file of its own, not inline: a Content-Security-Policy without 'unsafe-inline' allows it
_DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/docs/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
  validatorUrl: null, tryItOutEnabled: false, persistAuthorization: false
});"""


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    tag: str
    summary: str
    responses: dict[int, type[BaseModel] | None]  # None: no body (204)
    body: type[BaseModel] | None = None
    body_content_type: str = "application/json"
    query: type[BaseModel] | None = None  # the query parameters, one field each
    admin: bool = False  # needs an administrator (`server.admin.access`)
    # a path parameter's JSON schema, where it is narrower than an id (`_path_schema`)
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)


ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"adminCookie": []}, {}]
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A JWT signed with AUTH_SECRET (admin routes: role admin) or ADMIN_TOKEN",
    },
    "adminCookie": {"type": "apiKey", "in": "cookie", "name": "mobok_admin"},
}


def admin_responses(model: type[BaseModel]) -> dict[int, type[BaseModel] | None]:
    """401 and 403 of an admin route (403 also for a network client when no credential is
    configured: admin routes then answer loopback clients only)."""
    return {401: model, 403: model}


def auth_responses(
    app: web.Application, model: type[BaseModel]
) -> dict[int, type[BaseModel] | None]:
    """401 and 403 of a route that asks for a token: documented when AUTH_SECRET is set, the
    only time the route answers them."""
    return {401: model, 403: model} if app[SETTINGS].auth_secret else {}


@dataclass
class ApiRegistry:
    title: str
    version: str
    operations: list[Operation] = field(default_factory=list)

    def add(self, app: web.Application, op: Operation, handler: Handler) -> None:
        app.router.add_route(op.method, op.path, handler)
        self.operations.append(op)

    def document(self) -> dict[str, Any]:
        models = {m for op in self.operations for m in op.responses.values() if m is not None}
        models |= {op.body for op in self.operations if op.body is not None}
        models |= {op.query for op in self.operations if op.query is not None}
        keyed = sorted(models, key=lambda m: m.__name__)
        refs, schema = models_json_schema(
            [(m, "serialization") for m in keyed], ref_template="#/components/schemas/{model}"
        )
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            item: dict[str, Any] = {
                "tags": [op.tag],
                "summary": op.summary,
                "responses": {
                    str(status): _response(model, refs) for status, model in op.responses.items()
                },
            }
            if op.admin:
                item["security"] = ADMIN_SECURITY
            params = [
                {"name": p, "in": "path", "required": True, "schema": _path_schema(op, p)}
                for p in _path_params(op.path)
            ]
            if op.query is not None:
                params += _query_params(op.query, schema.get("$defs", {}))
            if params:
                item["parameters"] = params
            if op.body is not None:
                item["requestBody"] = {
                    "required": True,
                    "content": {op.body_content_type: {"schema": refs[(op.body, "serialization")]}},
                }
            paths.setdefault(op.path, {})[op.method.lower()] = item
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": schema.get("$defs", {}),
                "securitySchemes": SECURITY_SCHEMES,
            },
        }


def _response(model: type[BaseModel] | None, refs: Any) -> dict[str, Any]:
    if model is None:
        return {"description": "Done, no content"}
    return {
        "description": (model.__doc__ or model.__name__).strip(),
        "content": {"application/json": {"schema": refs[(model, "serialization")]}},
    }


def _path_schema(op: Operation, name: str) -> dict[str, Any]:
    """Path parameters are ids: never empty, no control characters (unless the operation
    says more: a pattern, a maximum length)."""
    from server.rest.params import ID_PATTERN

    return {"type": "string", "minLength": 1, "pattern": ID_PATTERN, **op.path_params.get(name, {})}


def _query_params(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    properties = defs[model.__name__]["properties"]
    required = set(defs[model.__name__].get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in properties.items()
    ]


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent, never `null`: `anyOf [X, null]` is X."""
    options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
    if len(options) != 1:
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**options[0], **rest}


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def answer_wrong_methods(app: web.Application, registry: ApiRegistry) -> None:
    """405 with `Allow` for a method a documented path does not serve (without this, a GET
    on a POST-only path fell through to the pages' static route: 404). Added last, after
    CORS, so every declared method and the preflight match first."""
    allowed: dict[str, set[str]] = {}
    for op in registry.operations:
        allowed.setdefault(op.path, {"OPTIONS"}).add(op.method)
        if op.method == "GET":
            allowed[op.path].add("HEAD")

    for path, methods in allowed.items():
        allow = ", ".join(sorted(methods))

        async def not_allowed(request: web.Request, allow: str = allow) -> web.Response:
            return web.json_response(
                {"message": method_not_allowed(request.method)},
                status=405,
                headers={"Allow": allow},
            )

        app.router.add_route("*", path, not_allowed)


def add_docs_routes(app: web.Application, registry: ApiRegistry) -> None:
    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(registry.document())

    async def docs_page(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_PAGE, content_type="text/html")

    async def docs_init(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_INIT, content_type="text/javascript")

    app.router.add_get("/api/docs", docs_page)
    app.router.add_get("/api/docs/", docs_page)
    app.router.add_get("/api/docs/init.js", docs_init)
    app.router.add_get("/api/docs/openapi.json", openapi_json)
    app.router.add_static("/api/docs/static/", str(SWAGGER_UI_DIR))
