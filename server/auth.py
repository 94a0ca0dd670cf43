"""Who is connecting (CONTRACT §7): an HS256 JWT signed with AUTH_SECRET, for every protocol.

Without AUTH_SECRET nobody authenticates and every connection gets `OPEN_GRANT`. With it,
a Socket.IO connection brings its token in the `auth` object (`io(url, {auth: {token}})`),
a plain WebSocket as `?token=` (`/ws/chat` also as its first frame), a REST request as
`Authorization: Bearer <token>`. Claims read: the user id (`sub`, else `userId`; required),
`exp` (checked when present), `projects` (the agent projects it may use), `rooms` (rooms it
is invited to) and `role: "admin"` (the broadcast route). What a user may open is
`server.ownership`'s business.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

import jwt
import socketio
from aiohttp import web

from server.errors import ChatError
from server.grants import OPEN_GRANT, Grant
from server.keys import SETTINGS
from server.texts import AUTH_FAILED, AUTH_REQUIRED, SESSION_FORBIDDEN, TEMPORARY_FAILURE
from server.transport.websocket import APP_ENVIRON_KEY

log = logging.getLogger(__name__)


MAX_USER_ID_LENGTH = 255  # `chat_sessions.user_id`
UNAUTHORIZED_CLOSE_CODE = 4401  # WebSocket close codes: 4000 + the HTTP status
FORBIDDEN_CLOSE_CODE = 4403
TRY_AGAIN_LATER_CLOSE_CODE = 1013


class InvalidToken(Exception):
    pass


class Refused(ChatError):
    """A connection or request refused before it is served: the text, and how to say it."""

    status = 401
    close_code = UNAUTHORIZED_CLOSE_CODE


class Unauthenticated(Refused):
    pass


class Forbidden(Refused):
    """The session (call, room, ...) belongs to another user."""

    status = 403
    close_code = FORBIDDEN_CLOSE_CODE

    def __init__(self) -> None:
        super().__init__(SESSION_FORBIDDEN)


class OwnerUnknown(Refused):
    """The database did not answer the ownership question: try again later."""

    status = 503
    close_code = TRY_AGAIN_LATER_CLOSE_CODE

    def __init__(self) -> None:
        super().__init__(TEMPORARY_FAILURE)


def verify_token(secret: str, token: str) -> Grant:
    """The token's grant; `InvalidToken` for a bad signature, an expired or malformed token.
    The user may be None here (an admin token for the broadcast route needs none)."""
    try:
        with warnings.catch_warnings():
            # a short secret is the operator's choice, told once at start-up (`weak_secret`)
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            claims = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if not isinstance(claims, dict):
        raise InvalidToken("the claims are not an object")
    return Grant(
        user=_user_of(claims),
        projects=_string_set(claims, "projects"),
        rooms=_string_set(claims, "rooms") or frozenset(),
        admin=_is_admin(claims),
    )


def _is_admin(claims: Mapping[str, Any]) -> bool:
    """`role: "admin"`, or `admin` among `role`/`roles` given as a list."""
    for name in ("role", "roles"):
        value = claims.get(name)
        if value == "admin" or (isinstance(value, list) and "admin" in value):
            return True
    return False


def _user_of(claims: Mapping[str, Any]) -> str | None:
    for name in ("sub", "userId"):
        user = claims.get(name)
        if user is None or user == "":
            continue
        if not isinstance(user, str) or len(user) > MAX_USER_ID_LENGTH or not user.isprintable():
            raise InvalidToken(f"the {name} claim must be a user id of 1-255 characters")
        return user
    return None


def _string_set(claims: Mapping[str, Any], name: str) -> frozenset[str] | None:
    values = claims.get(name)
    if values is None:
        return None
    if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
        raise InvalidToken(f"the {name} claim must be a list of strings")
    return frozenset(values)


def weak_secret(secret: str | None) -> bool:
    """Shorter than the 32 bytes RFC 7518 asks of an HS256 key."""
    return secret is not None and 0 < len(secret.encode()) < 32


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other header."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate(secret: str | None, token: str | None) -> Grant:
    """The grant of a connection or request: `OPEN_GRANT` without AUTH_SECRET; with it, the
    token's, which must name a user (`Unauthenticated` otherwise)."""
    if not secret:
        return OPEN_GRANT
    if not token:
        raise Unauthenticated(AUTH_REQUIRED)
    try:
        grant = verify_token(secret, token)
    except InvalidToken as exc:
        log.info("token refused", extra={"reason": str(exc)[:100]})
        raise Unauthenticated(AUTH_FAILED) from None
    if grant.user is None:
        log.info("token refused", extra={"reason": "no sub or userId claim"})
        raise Unauthenticated(AUTH_FAILED)
    return grant


def request_grant(request: web.Request) -> Grant:
    """A REST request's grant, from `Authorization: Bearer <token>`."""
    token = bearer_token(request.headers.get("Authorization"))
    return authenticate(request.app[SETTINGS].auth_secret, token)


def websocket_token(request: web.Request) -> str | None:
    """A plain WebSocket's token: `?token=` (what a browser can send), else a bearer header."""
    return request.query.get("token") or bearer_token(request.headers.get("Authorization"))


def socket_grant(environ: Mapping[str, Any], auth: Any) -> Grant:
    """A Socket.IO connection's grant, for a namespace's `on_connect`: the token is
    `auth.token` (else a bearer header). Refused with `ConnectionRefusedError(message)`,
    which the client sees as a `connect_error` with that message."""
    # python-engineio's aiohttp driver puts the request there; a websocket connection, once
    # it has left aiohttp, the app (`server.transport.websocket`)
    request = environ.get("aiohttp.request")
    app = request.app if isinstance(request, web.Request) else environ.get(APP_ENVIRON_KEY)
    if not isinstance(app, web.Application):  # never with async_mode="aiohttp": fail closed
        log.error("Socket.IO connection without its aiohttp app: refused")
        raise socketio.exceptions.ConnectionRefusedError(AUTH_FAILED)
    secret = app[SETTINGS].auth_secret
    token = auth.get("token") if isinstance(auth, dict) else None
    if token is None:
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
    try:
        return authenticate(secret, token if isinstance(token, str) else "")
    except Unauthenticated as exc:
        raise socketio.exceptions.ConnectionRefusedError(exc.message) from None


def with_token_user(data: Any, user: str | None, field: str = "userId") -> Any:
    """A payload that names its user (`join-chat {userId}`), as the token's user: the field
    is filled in when absent; another user is `Forbidden`. Unchanged without AUTH_SECRET
    (`user` None) and for a payload that is not an object (its parser says what is wrong)."""
    if user is None or not isinstance(data, dict):
        return data
    named = data.get(field)
    if named is None:
        return {**data, field: user}
    if isinstance(named, str) and named != user:
        raise Forbidden()
    return data
