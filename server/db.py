"""The database: Tortoise set-up, idempotent schema, health, and what counts as an outage.

Three databases: SQLite (the default), MySQL/MariaDB (`mysql://`, aiomysql) and PostgreSQL
(`postgres://` or `postgresql://`, asyncpg), all through Tortoise.

An outage heals by itself: aiomysql's pool drops connections the server closed (a restart)
before handing one out, and opens new ones on demand, so requests fail while the database
is away and succeed again as soon as it is back, with no restart of this process.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import asyncpg
from pymysql import err as mysql_errors
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError, OperationalError, TransactionManagementError

from models import MODEL_MODULES
from server.db_clients import bounded_connection

log = logging.getLogger(__name__)
_connection_name = "default"

# Errors that mean "the database is not there right now", not "this request is wrong".
DB_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    DBConnectionError,
    OperationalError,
    TransactionManagementError,
    # the driver's own, where Tortoise does not translate them (a transaction's commit)
    mysql_errors.OperationalError,
    mysql_errors.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # a pool or connection that is closing
    asyncpg.exceptions.OperatorInterventionError,  # the server shutting down, admin shutdown
    ConnectionError,
    OSError,  # TimeoutError included
)
# A database host that does not answer at all (not even a refusal) fails a request within
# seconds instead of the minutes of TCP's own connect timeout.
MYSQL_CONNECT_TIMEOUT_SECONDS = 5
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
PING_TIMEOUT_SECONDS = 5.0
DEFAULT_QUERY_TIMEOUT_SECONDS = 5.0  # `DB_QUERY_TIMEOUT_SECONDS`


class DatabaseUnreachable(ConnectionError):
    """The database of DATABASE_URL could not be reached or entered at start-up: the message
    names the host, port and database and the driver's reason, never the password."""


def describe(url: str) -> str:
    """`mysql 127.0.0.1:3306/mobok` (or the SQLite file): where, without the credentials."""
    parts = urlsplit(normalized(url))
    if parts.scheme == "sqlite":
        return f"sqlite {url.removeprefix('sqlite://')}"
    default_port = 5432 if parts.scheme == "postgres" else 3306
    return f"{parts.scheme} {parts.hostname}:{parts.port or default_port}{parts.path}"


def _reason(exc: BaseException) -> str:
    """The driver's words: pymysql's `(2003, "Can't connect ...")` as its text, and the OS's
    reason (refused, timed out, name unknown) when the driver wraps it."""
    args = exc.args
    text = str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(exc)
    text = text or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text


def redact(url: str) -> str:
    """The URL with its password hidden, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _named(url: str, kind: str) -> tuple[SplitResult, str]:
    """The URL's parts and the database it names: letters, digits and `_` only (the name
    goes into a CREATE DATABASE statement)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsupported {kind} database name: {name!r}")
    return parts, name


async def _create_mysql_database(url: str) -> None:
    """MySQL needs the database to exist before Tortoise can connect to it."""
    import aiomysql

    parts, name = _named(url, "MySQL")
    conn = await aiomysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        connect_timeout=MYSQL_CONNECT_TIMEOUT_SECONDS,
    )
    try:
        async with conn.cursor() as cur:
            # look first: `CREATE ... IF NOT EXISTS` on an existing database raises a warning
            await cur.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,)
            )
            if await cur.fetchone() is None:
                await cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
    finally:
        conn.close()


async def _create_postgres_database(url: str) -> None:
    """Like MySQL, a PostgreSQL database named by the URL is made when it is not there (the
    user must be allowed to; an operator's existing database is only looked up)."""
    parts, name = _named(url, "PostgreSQL")
    conn = await asyncpg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or "") or None,
        database="postgres",
        timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS,
    )
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another instance made it first
    finally:
        await conn.close()


def normalized(url: str) -> str:
    """`postgresql://` (libpq's spelling) is `postgres://` here."""
    if url.startswith("postgresql://"):
        return "postgres://" + url.removeprefix("postgresql://")
    return url


def _with_driver_options(url: str) -> str:
    """Driver options this server relies on, unless the URL sets them itself."""
    if url.startswith("postgres://"):
        if "timeout=" not in url:
            url += ("&" if "?" in url else "?") + f"timeout={POSTGRES_CONNECT_TIMEOUT_SECONDS}"
        return url
    if not url.startswith("mysql://"):
        return url
    for option in ("charset=utf8mb4", f"connect_timeout={MYSQL_CONNECT_TIMEOUT_SECONDS}"):
        if f"{option.split('=')[0]}=" not in url:
            url += ("&" if "?" in url else "?") + option
    return url


async def init_db(url: str, query_timeout: float = DEFAULT_QUERY_TIMEOUT_SECONDS) -> None:
    """Connect and create missing tables; safe to run on every start and on many instances.
    Every statement must finish within `query_timeout` seconds (`server.db_clients`)."""
    url = normalized(url)
    try:
        await _connect(url, query_timeout)
    except (*DB_UNAVAILABLE_ERRORS, asyncpg.PostgresError, mysql_errors.Error, ValueError) as exc:
        await Tortoise.close_connections()
        raise DatabaseUnreachable(
            f"cannot use the database {describe(url)}: {_reason(exc)}"
        ) from exc
    log.info("database ready", extra={"db": redact(url)})


async def _connect(url: str, query_timeout: float) -> None:
    if url.startswith("mysql://"):
        await _create_mysql_database(url)
    elif url.startswith("postgres://"):
        await _create_postgres_database(url)
    elif url.startswith("sqlite://") and url != "sqlite://:memory:":
        Path(url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    global _connection_name
    # Tortoise caches compiled statements per connection name: one name per SQL dialect keeps
    # a process that has used SQLite from sending `?` placeholders to MySQL (the test suite).
    _connection_name = url.split("://", 1)[0]
    config = {
        "connections": {
            _connection_name: bounded_connection(
                expand_db_url(_with_driver_options(url)), query_timeout
            )
        },
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": _connection_name}},
        "use_tz": True,
        "timezone": "UTC",
    }
    # Handlers run in tasks that do not inherit the start-up task's context: the global
    # fallback lets every task see the initialised ORM.
    await Tortoise.init(config=config, _enable_global_fallback=True)
    await _create_missing_tables()


async def _create_missing_tables() -> None:
    """Create the tables that are not there yet (an operator's NestJS database has some)."""
    conn = connection()
    if conn.capabilities.dialect == "mysql":
        _, rows = await conn.execute_query(
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"
        )
    elif conn.capabilities.dialect == "postgres":
        _, rows = await conn.execute_query(
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
    else:
        _, rows = await conn.execute_query("SELECT name FROM sqlite_master WHERE type='table'")
    existing = {str(r["name"]) for r in rows}
    wanted = {m._meta.db_table for app in Tortoise.apps.values() for m in app.values()}
    if wanted <= existing:
        return
    with warnings.catch_warnings():
        # `CREATE TABLE IF NOT EXISTS` warns (a MySQL note) for each table that exists
        warnings.simplefilter("ignore")
        await Tortoise.generate_schemas(safe=True)


async def close_db() -> None:
    await Tortoise.close_connections()


@asynccontextmanager
async def database(
    url: str, query_timeout: float = DEFAULT_QUERY_TIMEOUT_SECONDS
) -> AsyncIterator[None]:
    await init_db(url, query_timeout)
    try:
        yield
    finally:
        await close_db()


def connection() -> BaseDBAsyncClient:
    return Tortoise.get_connection(_connection_name)


async def ping() -> bool:
    """Whether the database answers now, within a few seconds (health checks poll this)."""
    try:
        async with asyncio.timeout(PING_TIMEOUT_SECONDS):
            await connection().execute_query("SELECT 1")
        return True
    except DB_UNAVAILABLE_ERRORS as exc:  # an outage: expected, and said in one line
        log.warning("database ping failed: %s", str(exc) or type(exc).__name__)
        return False
    except Exception:  # any other failure also means "not healthy", but may be a bug
        log.warning("database ping failed", exc_info=True)
        return False
