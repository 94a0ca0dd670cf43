"""The admin console at `/admin` (docs/operations.md): the page, its sign-in, its files and
its chart data. Who may open it: `server.admin.access` (JWT role admin, ADMIN_TOKEN, or a
loopback client when neither is set)."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server.admin.access import ADMIN_COOKIE, admin_identity, audit, identify, mode
from server.admin.samples import METRICS_HISTORY
from server.auth import Refused
from server.keys import SETTINGS
from server.rest.chat import ErrorMessage
from server.rest.openapi import ApiRegistry, Operation, admin_responses
from server.texts import ADMIN_TOKEN_MISSING

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent.parent / "admin" / "static"
COOKIE_MAX_AGE = 8 * 3600  # a working day

_SIGN_IN = """<!DOCTYPE html>
<html lang="ko"><head><meta charset="utf-8"><title>관리자 로그인</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/fonts/korean.css">
<style>body{{font-family:system-ui,"mobok Korean",sans-serif;max-width:28rem;margin:4rem auto}}
input,button{{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box;margin:.3rem 0}}
.error{{color:#b00020}}</style></head>
<body><h1>관리자 콘솔</h1><p class="error" role="alert">{message}</p>
<form method="post" action="/admin/login">
<label for="token">관리자 토큰 (ADMIN_TOKEN 또는 role=admin JWT)</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">로그인</button></form></body></html>"""


class AdminMetrics(BaseModel):
    """The console's figures: the last hour's samples, oldest first, and the current ones"""

    intervalSeconds: float
    points: list[dict[str, Any]]
    current: dict[str, Any]


def _sign_in(message: str, status: int) -> web.Response:
    body = _SIGN_IN.format(message=html.escape(message))
    return web.Response(text=body, content_type="text/html", status=status)


async def console(request: web.Request) -> web.StreamResponse:
    try:
        who = admin_identity(request)
    except Refused as exc:
        return _sign_in(exc.message, exc.status)
    audit(who, "open console")
    return web.FileResponse(STATIC / "admin.html", headers={"Cache-Control": "no-store"})


async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not token.strip():
        return _sign_in(ADMIN_TOKEN_MISSING, 400)
    try:
        who = identify(request.app[SETTINGS], token.strip(), remote=None)  # the token alone
    except Refused as exc:
        log.info("admin sign-in refused", extra={"status": exc.status})
        return _sign_in(exc.message, exc.status)
    audit(who, "sign in")
    response = web.Response(status=303, headers={"Location": "/admin"})
    response.set_cookie(
        ADMIN_COOKIE,
        token.strip(),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": "/admin"})
    response.del_cookie(ADMIN_COOKIE, path="/")
    return response


async def static_file(request: web.Request) -> web.StreamResponse:
    try:
        admin_identity(request)
    except Refused as exc:
        return web.json_response({"message": exc.message}, status=exc.status)
    name = request.match_info["name"]
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


async def metrics(request: web.Request) -> web.Response:
    try:
        admin_identity(request)
    except Refused as exc:
        return web.json_response({"message": exc.message}, status=exc.status)
    history = request.app[METRICS_HISTORY]
    return web.json_response(
        {
            "intervalSeconds": history.interval,
            "points": list(history.points),
            "current": history.current(),
        }
    )


async def _announce(app: web.Application) -> None:
    log.info("admin routes and /admin: %s", mode(app[SETTINGS]))


def add_admin_console(app: web.Application, api: ApiRegistry) -> None:
    app.router.add_get("/admin", console)
    app.router.add_post("/admin/login", sign_in)
    app.router.add_post("/admin/logout", sign_out)
    app.router.add_get("/admin/static/{name:.+}", static_file)
    api.add(
        app,
        Operation(
            "GET",
            "/api/v1/admin/metrics",
            "privacy",
            "The admin console's figures over the last hour (admin)",
            {200: AdminMetrics, **admin_responses(ErrorMessage)},
            admin=True,
        ),
        metrics,
    )
    app.on_startup.append(_announce)
