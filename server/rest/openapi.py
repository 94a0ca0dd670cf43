"""The OpenAPI document, built from the routes as they are registered, and Swagger UI.

Schemas come from the pydantic models each route declares, so the document cannot drift
from the code. Swagger UI is served from the `swagger-ui-bundle` package: no CDN.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from swagger_ui_bundle import swagger_ui_path

from server.keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DOCS_PAGE = """<!DOCTYPE html>
<html lang="ko"><head><meta charset="utf-8"><title>API docs</title>
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/api/docs/openapi.json", dom_id: "#swagger-ui"});
</script></body></html>"""


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    tag: str
    summary: str
    responses: dict[int, type[BaseModel]]
    body: type[BaseModel] | None = None
    body_content_type: str = "application/json"


def auth_responses(app: web.Application, model: type[BaseModel]) -> dict[int, type[BaseModel]]:
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
        models = {m for op in self.operations for m in op.responses.values()}
        models |= {op.body for op in self.operations if op.body is not None}
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
                    str(status): {
                        "description": model.__doc__ or model.__name__,
                        "content": {"application/json": {"schema": refs[(model, "serialization")]}},
                    }
                    for status, model in op.responses.items()
                },
            }
            params = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in _path_params(op.path)
            ]
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
            "components": {"schemas": schema.get("$defs", {})},
        }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def add_docs_routes(app: web.Application, registry: ApiRegistry) -> None:
    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(registry.document())

    async def docs_page(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_PAGE, content_type="text/html")

    app.router.add_get("/api/docs", docs_page)
    app.router.add_get("/api/docs/", docs_page)
    app.router.add_get("/api/docs/openapi.json", openapi_json)
    app.router.add_static("/api/docs/static/", str(swagger_ui_path))
