"""Parsing a PostgreSQL ledger URL (pure): secrets only from the environment, never shown."""

from __future__ import annotations

import pytest

from orchestrator.config import pgurl

ENV = {"PW": "p@ss:w/rd", "KEYPW": "key-secret", "HOST": "db.internal"}


def parse(url: str, schema: str | None = "nightly") -> pgurl.PostgresLedger:
    return pgurl.parse(url, substitute=lambda part: part.replace("${PW}", ENV["PW"]).replace(
        "${KEYPW}", ENV["KEYPW"]), default_schema=schema)


def test_parts_secrets_and_display() -> None:
    where = parse("postgresql://loader:${PW}@Db.Example:6543/imports?sslmode=require&sslpassword=${KEYPW}"
                  "&connect_timeout=5")
    assert (where.host, where.port, where.dbname, where.user, where.schema) == \
        ("db.example", 6543, "imports", "loader", "nightly")
    assert where.connect_kwargs() == {"host": "db.example", "port": "6543", "dbname": "imports",
                                      "user": "loader", "password": "p@ss:w/rd", "sslmode": "require",
                                      "sslpassword": "key-secret", "connect_timeout": "5"}
    assert where.display == "postgresql://loader@db.example:6543/imports?sslmode=require&schema=nightly"
    assert sorted(where.secrets()) == ["key-secret", "p@ss:w/rd"]
    assert "p@ss" not in repr(where) and "key-secret" not in repr(where)
    bare = parse("postgres://h/d?schema=other", schema=None)
    assert (bare.port, bare.user, bare.password, bare.schema) == (5432, None, None, "other")


@pytest.mark.parametrize(("url", "problem"), [
    ("postgresql://u:hunter2@h/d", "a password is not accepted literally"),
    ("postgresql://u:${PW}x@h/d", "a password is not accepted literally"),
    ("postgresql://u@h/d?sslpassword=plain", "sslpassword is not accepted literally"),
    ("postgresql://u@h/d?password=${PW}", "not accepted in the URL's query"),
    ("postgresql://u@/d", "names no host"),
    ("postgresql://u@h/d", "name the ledger's schema"),
])
def test_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse(url, schema=None)
    assert "hunter2" not in str(caught.value) and ENV["PW"] not in str(caught.value)


def test_default_schema_from_a_file_name() -> None:
    assert [pgurl.default_schema(s) for s in ("nightly", "Night-Loads.v2", "2024")] == \
        ["nightly", "night_loads_v2", "_2024"]
