"""Where a PostgreSQL ledger lives: ``postgresql://user@host:5432/db?sslmode=...&schema=...``, or over a
Unix socket as libpq writes it, ``postgresql://user@/db?host=/run/postgresql`` (the socket's folder), parsed
(pure: no I/O, no driver) into connection settings whose password never prints.

A password (and ``sslpassword``) is accepted only as a ``${ENV_VAR}`` reference, or from libpq's own
``PGPASSWORD`` / ``~/.pgpass``. Each part of the URL is substituted on its own, so a password with
``@``, ``/`` or ``:`` in it needs no escaping. Several manifests share one database through schemas:
``schema=`` names the ledger's schema; by default it is the manifest's file name (``nightly.yaml`` ->
``nightly``), as the SQLite ledger is ``nightly.ledger.sqlite`` by default. The caller substitutes
(:mod:`orchestrator.config.env`, the one ``${VAR}`` substitution).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from ..models import Secret
from . import env

SCHEMES = ("postgresql://", "postgres://")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq settings a URL may carry, besides ``schema`` (ours); the secret ones only as ${ENV_VAR}
OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "connect_timeout",
           "target_session_attrs")
_SECRET_OPTIONS = ("sslpassword",)
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresLedger:
    """A ledger in PostgreSQL: the server, the database, the schema, and libpq settings."""

    host: str
    port: int
    dbname: str
    schema: str
    user: str | None = None
    password: Secret | None = None
    options: tuple[tuple[str, Secret | str], ...] = ()

    @property
    def display(self) -> str:
        """How messages name the ledger: the URL without its password or secrets."""
        user = f"{urllib.parse.quote(self.user, safe='')}@" if self.user else ""
        shown = [(k, v) for k, v in self.options if k == "sslmode"]
        socket = self.host.startswith("/")  # a Unix socket's folder: libpq's ?host=
        query = urllib.parse.urlencode([*([("host", self.host)] if socket else []), *shown,
                                        ("schema", self.schema)], safe="/")
        host = "" if socket else f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{user}{host}:{self.port}/{urllib.parse.quote(self.dbname)}?{query}"

    def connect_kwargs(self) -> dict[str, str]:
        """Keyword arguments for libpq (psycopg's ``connect``), the secrets revealed."""
        out = {"host": self.host, "port": str(self.port), "dbname": self.dbname}
        if self.user:
            out["user"] = self.user
        if self.password is not None:
            out["password"] = self.password.reveal()
        for key, value in self.options:
            out[key] = value.reveal() if isinstance(value, Secret) else value
        return out

    def secrets(self) -> list[str]:
        """The revealed secrets, for scrubbing driver messages."""
        found = [self.password.reveal()] if self.password is not None else []
        return found + [v.reveal() for _, v in self.options if isinstance(v, Secret)]


def is_postgres(text: str) -> bool:
    return text.startswith(SCHEMES)


def default_schema(stem: str) -> str:
    """A schema name from a manifest's file name: lower case, other characters as ``_``."""
    name = re.sub(r"[^a-z0-9_]", "_", stem.lower())[:63]
    return name if name and not name[0].isdigit() else f"_{name}"[:63]


def _host(parts: urllib.parse.SplitResult) -> str:
    """The host as written, before ``${VAR}`` is substituted (``hostname`` would lower-case
    ``${PGHOST}``): the ``host`` query parameter where there is one (libpq's way to name a Unix socket's
    folder, ``?host=/run/postgresql``), else the URL's own (``%2Frun%2Fpostgresql`` for a folder)."""
    given = [value for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if key == "host"]
    if len(given) > 1:
        raise ValueError("the URL names its host twice (?host= once only)")
    if given:
        return given[0]
    written = parts.netloc.rpartition("@")[2]
    if written.startswith("["):  # an IPv6 address
        return parts.hostname or ""
    return urllib.parse.unquote(written.partition(":")[0])


def _port(parts: urllib.parse.SplitResult) -> int | None:
    """The port: the URL's own, or libpq's ``port`` query parameter (``?host=/run/postgresql&port=5433``,
    naming the socket file ``.s.PGSQL.5433``); raises ValueError when it is not a port number."""
    given = [value for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if key == "port"]
    if not given:
        return parts.port
    if len(given) > 1 or parts.port is not None or not given[0].isdigit() or not 0 < int(given[0]) < 65536:
        raise ValueError(given[0])
    return int(given[0])


def parse(raw: str, *, substitute: Callable[[str], str], default_schema: str | None) -> PostgresLedger:
    """Parse ``raw`` as written (``${VAR}`` not yet substituted); ``substitute`` resolves the
    references in one part. Raises ValueError with a message that never holds a secret."""
    if not is_postgres(raw):
        raise ValueError("expected postgresql://user@host:port/database")
    parts = urllib.parse.urlsplit(raw)
    if parts.password is not None and not env.SECRET_REF.fullmatch(parts.password):
        raise ValueError("a password is not accepted literally in the URL: write "
                         "postgresql://user:${ENV_VAR}@host/db and set that variable (or use PGPASSWORD "
                         "or ~/.pgpass)")
    try:
        port = _port(parts) or 5432
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    host = _host(parts)
    if not host:
        raise ValueError("the URL names no host: postgresql://user@host:5432/database, or a Unix socket's "
                         "folder as libpq takes it: postgresql://user@/database?host=/run/postgresql")
    dbname = urllib.parse.unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise ValueError("the URL names no database: postgresql://user@host:5432/database")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options: list[tuple[str, Secret | str]] = []
    schema = default_schema
    for key, value in query:
        if key in ("host", "port"):
            continue  # read by _host and _port
        if key == "schema":
            schema = substitute(value)
            if not _SCHEMA.match(schema):
                raise ValueError(f"schema {schema!r} is not a schema name (a-z, 0-9, _; up to 63)")
        elif key == "password":
            raise ValueError("a password is not accepted in the URL's query: write "
                             "postgresql://user:${ENV_VAR}@host/db")
        elif key not in OPTIONS:
            raise ValueError(f"unknown setting {key!r} (known: schema, {', '.join(OPTIONS)})")
        elif key in _SECRET_OPTIONS:
            if not env.SECRET_REF.fullmatch(value):
                raise ValueError(f"{key} is not accepted literally: write {key}=${{ENV_VAR}}")
            options.append((key, Secret(substitute(value))))
        else:
            value = substitute(value)
            if key == "sslmode" and value not in SSLMODES:
                raise ValueError(f"sslmode {value!r} is not one of {', '.join(SSLMODES)}")
            options.append((key, value))
    if schema is None:
        raise ValueError("name the ledger's schema: add ?schema=NAME (a manifest's ledger is in the "
                         "schema named after its file unless it says otherwise)")
    user = substitute(urllib.parse.unquote(parts.username)) if parts.username else None
    password = Secret(substitute(parts.password)) if parts.password is not None else None
    host = substitute(host)
    host = host if host.startswith("/") else host.lower()  # a socket's folder is a case-sensitive path
    return PostgresLedger(host=host, port=port, dbname=substitute(dbname), schema=schema,
                          user=user, password=password, options=tuple(options))
