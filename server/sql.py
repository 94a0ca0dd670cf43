"""Plain SQL for every database this server runs on: one text, the dialect's parameter marks.

The hot paths write their statements with `?` marks; `for_dialect` turns them into what the
driver expects: `%s` (aiomysql), `$1, $2, ...` (asyncpg), `?` (SQLite). PostgreSQL also needs
the type of a parameter that is not compared with a column (`INSERT ... SELECT ?, ?`): `typed`.
"""

from __future__ import annotations

import itertools
import re

_MARK = re.compile(r"\?")


def for_dialect(sql: str, dialect: str) -> str:
    """`sql` with its `?` marks as the driver of `dialect` wants them (no `?` in literals)."""
    if dialect == "mysql":
        return sql.replace("?", "%s")
    if dialect == "postgres":
        numbers = itertools.count(1)
        return _MARK.sub(lambda _: f"${next(numbers)}", sql)
    return sql


def typed(dialect: str, types: list[str]) -> str:
    """A comma-separated list of `?` marks, each cast to its PostgreSQL type there."""
    if dialect == "postgres":
        return ", ".join(f"?::{t}" for t in types)
    return ", ".join("?" for _ in types)
