"""Who may use the admin routes and `/admin` (privacy, lists, the console).

- With AUTH_SECRET: a JWT signed with it whose `role` (or `roles`) includes `admin`.
- With ADMIN_TOKEN: that static token (with or without AUTH_SECRET).
- With neither: loopback clients only (127.0.0.1, ::1), never the network.

The credential comes as `Authorization: Bearer <token>`, or as the console's cookie (set by
`POST /admin/login`, HttpOnly, SameSite=Strict). Every admin action is logged at INFO with
who did it, what, and on which id (`audit`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from aiohttp import web

from server.auth import (
    AUTH_FAILED,
    AUTH_REQUIRED,
    InvalidToken,
    Refused,
    Unauthenticated,
    bearer_token,
    verify_token,
)
from server.config import Settings
from server.keys import SETTINGS
from server.texts import ADMIN_LOOPBACK_ONLY, ADMIN_REQUIRED

log = logging.getLogger("server.admin")

ADMIN_COOKIE = "mobok_admin"


class NotAdmin(Refused):
    status = 403


def presented_token(request: web.Request) -> str | None:
    return bearer_token(request.headers.get("Authorization")) or request.cookies.get(ADMIN_COOKIE)


def admin_identity(request: web.Request) -> str:
    """Who the administrator is (for the log), or `Refused` (401/403) with the reason."""
    settings = request.app[SETTINGS]
    return identify(settings, presented_token(request), request.remote)


def identify(settings: Settings, token: str | None, remote: str | None) -> str:
    if settings.admin_token and token and _same(token, settings.admin_token):
        return "admin-token"
    if settings.auth_secret:
        if not token:
            raise Unauthenticated(AUTH_REQUIRED)
        try:
            grant = verify_token(settings.auth_secret, token)
        except InvalidToken:
            raise Unauthenticated(AUTH_FAILED) from None
        if not grant.admin:
            raise NotAdmin(ADMIN_REQUIRED)
        return f"jwt:{grant.user or '-'}"
    if settings.admin_token:
        raise Unauthenticated(AUTH_FAILED if token else AUTH_REQUIRED)
    if is_loopback(remote):
        return f"loopback:{remote}"
    raise NotAdmin(ADMIN_LOOPBACK_ONLY)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:  # a unix socket or nothing: not a network client we can place
        return False


def mode(settings: Settings) -> str:
    """How admins are recognised, said once at start-up."""
    ways = []
    if settings.auth_secret:
        ways.append("a JWT with role admin")
    if settings.admin_token:
        ways.append("ADMIN_TOKEN")
    if not ways:
        return "loopback clients only (set ADMIN_TOKEN or AUTH_SECRET to open them to others)"
    return " or ".join(ways)


def audit(who: str, action: str, target: str | None = None, **details: object) -> None:
    log.info("admin action", extra={"who": who, "action": action, "target": target, **details})
