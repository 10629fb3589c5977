"""Secrets in URLs: every URL printed or logged shows neither its user-info nor its query values
(:func:`orchestrator.redact.shown_url`), and a manifest never carries a literal secret in a URL's
user-info (``validate`` refuses it, naming the place)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli.main import cli
from orchestrator.redact import shown_url
from tests.conftest import SECRETS, free_port
from tests.fakes.base import FakeImportAPI

PASSWORD = "hunter2-PASSWORD-do-not-print"


@pytest.mark.parametrize(("url", "shown"), [
    ("http://AK:pw@host:9000/p", "http://***@host:9000/p"),
    ("http://AK:pa/ss@host:9000/p", "http://***@host:9000/p"),  # a password holding a slash
    ("http://host/?token=abc&x=1", "http://host/?token=***&x=***"),
    ("http://host/?token", "http://host/?***"),
    ("https://h/p#access_token=x", "https://h/p#***"),
    ("AK:pw@host", "***@host"),
    ("https://h/p", "https://h/p"),
    ("postgresql://u:p@/db?host=/run/pg", "postgresql://***@/db?host=***"),
])
def test_shown_url_hides_user_info_query_values_and_fragments(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def manifest_with(tmp_path: Path, fake: FakeImportAPI, bucket: str, *, target: dict[str, Any] | None = None,
                  source: dict[str, Any] | None = None) -> Path:
    doc = {"version": 1, "target": {**fake.manifest_target(), **(target or {})},
           "credentials": {"access_key": "${IMPORT_ACCESS_KEY}", "secret_key": "${IMPORT_SECRET_KEY}"},
           "sources": [{"url": f"s3://{bucket}/embeddings/", "collection": "articles", **(source or {})}],
           "settings": {"min_age_s": 0, "max_attempts": 1, "timeout_s": 5, "preflight": "off"}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(("place", "target", "source"), [
    ("target.endpoint", {"endpoint": "http://root:{pw}@127.0.0.1:9"}, None),
    ("target.cluster_endpoint", {"cluster_endpoint": "https://user:{pw}@c.example"}, None),
    ("target.endpoint", {"endpoint": "http://{pw}@127.0.0.1:9"}, None),  # a token as the user
    ("sources[0].endpoint_url", None, {"endpoint_url": "http://AK:{pw}@127.0.0.1:9"}),
    ("sources[0].url", None, {"url": "s3://AK:{pw}@lake/x/"}),
])
def test_a_literal_secret_in_a_urls_user_info_is_refused_naming_the_place(
    tmp_path: Path, fake_api: FakeImportAPI, bucket: str, place: str, target: dict[str, str] | None,
    source: dict[str, str] | None,
) -> None:
    """Accepted before (only the ledger's PostgreSQL URL refused it), and printed whole in errors."""
    fill = {k: v.format(pw=PASSWORD) for k, v in (target or source or {}).items()}
    manifest = manifest_with(tmp_path, fake_api, bucket, target=fill if target else None,
                             source=fill if source else None)
    result = CliRunner().invoke(cli, ["validate", str(manifest)])
    assert result.exit_code == 2, result.output
    assert f"{place}: the URL's user-info holds a literal secret" in result.output, result.output
    assert PASSWORD not in result.output


@pytest.mark.parametrize("url", [
    "https://acct.blob.core.windows.net/container/emb/?sv=2022-11-02&sig={pw}",
    "s3://lake/emb/?X-Amz-Signature={pw}", "gs://lake/emb/#{pw}"])
def test_a_token_after_a_sources_url_is_refused_and_never_shown(
    tmp_path: Path, fake_api: FakeImportAPI, bucket: str, url: str,
) -> None:
    """An Azure SAS URL pasted whole was taken for a prefix holding ``?sv=...&sig=...``, and the
    signature printed in every error (``no Azure credentials found`` under ``az://container/emb/?sv=``)."""
    manifest = manifest_with(tmp_path, fake_api, bucket, source={"url": url.format(pw=PASSWORD)})
    result = CliRunner().invoke(cli, ["validate", str(manifest)])
    assert result.exit_code == 2, result.output
    assert "sources[0].url:" in result.output and "sas_token" in result.output, result.output
    assert PASSWORD not in result.output


@pytest.mark.parametrize("command", ["validate", "ls", "run"])
def test_a_sources_endpoint_password_never_reaches_the_output(
    tmp_path: Path, fake_api: FakeImportAPI, bucket: str, env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, command: str,
) -> None:
    """``endpoint_url: http://AK:${P}@host`` that cannot be reached: the error printed it whole."""
    monkeypatch.setenv("S3_PASSWORD", PASSWORD)
    manifest = manifest_with(tmp_path, fake_api, bucket,
                             source={"endpoint_url": f"http://AK:${{S3_PASSWORD}}@127.0.0.1:{free_port()}"})
    result = CliRunner().invoke(cli, [command, str(manifest)])
    assert result.exit_code in ((0,) if command == "validate" else (1,)), result.output
    assert PASSWORD not in result.output and "Traceback" not in result.output
    if command != "validate":
        assert "http://***@127.0.0.1" in result.output, result.output


def test_a_metrics_push_urls_token_is_never_printed(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    """``--metrics-push 'http://host/?token=...'`` printed its token in the error."""
    gateway = f"http://u:{PASSWORD}@127.0.0.1:{free_port()}/?token=TOKEN-do-not-print"
    result = CliRunner().invoke(cli, ["run", str(write_manifest()), "--metrics-push", gateway])
    assert result.exit_code == 1, result.output
    assert "cannot push the metrics" in result.output
    assert f"http://***@127.0.0.1:{gateway.rsplit(':', 1)[1].split('/')[0]}/?token=***" in result.output
    assert "TOKEN-do-not-print" not in result.output and PASSWORD not in result.output
    assert not any(s in result.output for s in SECRETS)
