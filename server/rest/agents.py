"""`POST /api/v1/agents/broadcast`: an administrator's notice to the connected agent-chat
clients (as an `auto_report` frame, which every client already shows)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.agents.service import AgentChatService
from server.auth import InvalidToken, bearer_token, verify_token
from server.keys import SETTINGS
from server.rest.chat import ErrorMessage
from server.rest.openapi import ApiRegistry, Operation
from server.texts import (
    AUTH_FAILED,
    AUTH_REQUIRED,
    BROADCAST_DISABLED,
    BROADCAST_FORBIDDEN,
    invalid_field,
)


class BroadcastBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    content: str = Field(min_length=1, max_length=10_000)
    project_id: str | None = Field(default=None, min_length=1)


class BroadcastResult(BaseModel):
    """How many connected clients received the notice."""

    delivered: int


def add_agent_routes(
    app: web.Application, api: ApiRegistry, service: web.AppKey[AgentChatService]
) -> None:
    async def broadcast(request: web.Request) -> web.Response:
        secret = request.app[SETTINGS].auth_secret
        if not secret:
            return _error(403, BROADCAST_DISABLED)
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return _error(401, AUTH_REQUIRED)
        try:  # an admin token needs no user id
            grant = verify_token(secret, token)
        except InvalidToken:
            return _error(401, AUTH_FAILED)
        if not grant.admin:
            return _error(403, BROADCAST_FORBIDDEN)
        try:
            body = BroadcastBody.model_validate_json(await request.read())
        except ValidationError as exc:
            location = exc.errors()[0]["loc"]
            return _error(400, invalid_field(".".join(map(str, location)) or "body"))
        delivered = await request.app[service].broadcast(body.content, body.project_id)
        return web.json_response({"delivered": delivered})

    api.add(
        app,
        Operation(
            "POST",
            "/api/v1/agents/broadcast",
            "agents",
            "Send a notice to every connected agent-chat client (admin JWT)",
            {200: BroadcastResult, 400: ErrorMessage, 401: ErrorMessage, 403: ErrorMessage},
            body=BroadcastBody,
        ),
        broadcast,
    )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)
