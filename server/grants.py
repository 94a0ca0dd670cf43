"""What a connection may do: the claims of its token (`server.auth` reads them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Grant:
    user: str | None  # None only for OPEN_GRANT (no AUTH_SECRET)
    projects: frozenset[str] | None  # None: every project
    rooms: frozenset[str] = frozenset()  # rooms the token invites its user into
    admin: bool = False

    def allows(self, project_id: str) -> bool:
        return self.projects is None or project_id in self.projects


OPEN_GRANT = Grant(user=None, projects=None)  # no AUTH_SECRET: no authentication
