"""Connection tokens (CONTRACT §3, §7): an HS256 JWT signed with AUTH_SECRET.

Claims used: `exp` (checked when present), optional `projects`, a list of the project ids
this connection may talk to (no claim: every project), and `role: "admin"` for the
broadcast route.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jwt


@dataclass(frozen=True, slots=True)
class Grant:
    subject: str | None
    projects: frozenset[str] | None  # None: every project
    admin: bool = False

    def allows(self, project_id: str) -> bool:
        return self.projects is None or project_id in self.projects


OPEN_GRANT = Grant(subject=None, projects=None)  # no AUTH_SECRET: no authentication


class InvalidToken(Exception):
    pass


def verify_token(secret: str, token: str) -> Grant:
    try:
        with warnings.catch_warnings():
            # a short secret is the operator's choice, told once at start-up (`weak_secret`)
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            claims = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    projects = claims.get("projects")
    if projects is not None and not (
        isinstance(projects, list) and all(isinstance(p, str) for p in projects)
    ):
        raise InvalidToken("the projects claim must be a list of strings")
    subject = claims.get("sub")
    return Grant(
        subject=subject if isinstance(subject, str) else None,
        projects=frozenset(projects) if projects is not None else None,
        admin=claims.get("role") == "admin",
    )


def weak_secret(secret: str | None) -> bool:
    """Shorter than the 32 bytes RFC 7518 asks of an HS256 key."""
    return secret is not None and 0 < len(secret.encode()) < 32
