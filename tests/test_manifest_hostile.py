"""Hostile manifests: alias bombs, odd bytes, secrets mixed with text or unfit for a header, and every
problem at once. Each ends in ``file: place: problem`` lines and exit 2, never a traceback."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli.main import cli
from orchestrator.config.manifest import FixedSizeList, Metric, OnChange, PreflightMode
from orchestrator.config.yamlfile import MAX_YAML_NODES
from orchestrator.errors import ManifestError
from orchestrator.run.wiring import load_manifest
from tests.test_manifest import ENV, base, write


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def problem(doc: Any, env: dict[str, str] = ENV) -> str:
    Path("nightly.yaml").write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    with pytest.raises(ManifestError) as info:
        load_manifest("nightly.yaml", env)
    return str(info.value)


def test_alias_bomb_is_refused_before_expanding() -> None:
    lines = ['a0: &a0 ["boom", "boom", "boom", "boom", "boom", "boom", "boom", "boom", "boom"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "version: 1\n" + "\n".join(lines) + "\nsettings: {concurrency: *a9}\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = problem(text)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert message == f"nightly.yaml: not valid YAML: aliases expand it past {MAX_YAML_NODES} values: " \
                      "refusing to expand them"
    assert grown_mb < 100


def test_recursive_alias_and_deep_nesting_are_refused() -> None:
    assert "refusing to expand" in problem("version: 1\nsources: &s [*s]\n")
    deep = "x: " + "[" * 5000 + "]" * 5000 + "\n"
    assert problem(deep) == "nightly.yaml: not a manifest: nested too deeply"


def test_shared_anchors_still_work(tmp_path: Path) -> None:
    text = """version: 1
target: {type: zilliz-v1, region: gcp-us-west1, cluster_id: inxx-1, api_key: "${ZILLIZ_API_KEY}"}
credentials: &keys {access_key: "${IMPORT_ACCESS_KEY}", secret_key: "${IMPORT_SECRET_KEY}"}
sources:
  - {url: "s3://lake/a/", collection: articles, credentials: *keys}
"""
    m = load_manifest(write(tmp_path, text), ENV)
    assert m.credentials == m.sources[0].credentials and m.credentials is not None


def test_errors_show_only_an_excerpt_of_a_value() -> None:
    doc = base()
    doc["settings"] = {"concurrency": "x" * 100_000}
    message = problem(doc)
    assert message.startswith("nightly.yaml: settings.concurrency: expected a whole number from 1 to 256, "
                              "got 'xxxx") and len(message) < 200
    doc = base()
    doc["settings"] = {"timeout_s": [list(range(1000))] * 1000}
    assert len(problem(doc)) < 200


def test_not_utf8_names_the_byte() -> None:
    text = b"version: 1\n# caf\xe9\n"
    Path("nightly.yaml").write_bytes(text)
    result = CliRunner().invoke(cli, ["validate", "nightly.yaml"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == "error: nightly.yaml: byte 16: not UTF-8 text: save the manifest as UTF-8\n"


@pytest.mark.parametrize("value", ["abc${EMPTY}", "${ZILLIZ_API_KEY}x", "$${ZILLIZ_API_KEY}",
                                   "${ZILLIZ_API_KEY}${EMPTY}"])
def test_a_secret_is_one_variable_and_nothing_else(value: str) -> None:
    doc = base()
    doc["target"]["api_key"] = value
    message = problem(doc, {**ENV, "EMPTY": ""})
    assert message.startswith("nightly.yaml: target.api_key: secrets are not accepted literally"), message
    assert "k-123456" not in message


def test_empty_secret_names_the_variable() -> None:
    doc = base()
    doc["target"]["api_key"] = "${EMPTY}"
    assert problem(doc, {**ENV, "EMPTY": ""}) == \
        "nightly.yaml: target.api_key: environment variable EMPTY is set but empty"


def test_double_dollar_is_a_literal_reference(tmp_path: Path) -> None:
    doc = base()
    doc["ledger"] = "state-$${HOME}-${AREA}.sqlite"
    m = load_manifest(write(tmp_path, doc), {**ENV, "AREA": "x"})
    assert m.ledger_path.name == "state-${HOME}-x.sqlite"


@pytest.mark.parametrize("credentials", ["AKIAXXSECRETVALUE:wJalrSECRETVALUE", ["AKIAXXSECRETVALUE"],
                                         {"AKIAXXSECRETVALUE": "wJalrSECRETVALUE"}, 4711])
def test_wrong_type_under_credentials_is_not_echoed(credentials: Any) -> None:
    doc = base()
    doc["credentials"] = credentials
    message = problem(doc)
    assert message.startswith("nightly.yaml: credentials"), message
    assert "SECRETVALUE" not in message and "4711" not in message


def test_typo_under_credentials_is_suggested_without_the_value() -> None:
    doc = base()
    doc["credentials"]["acces_key"] = doc["credentials"].pop("access_key")
    message = problem(doc)
    assert "nightly.yaml: credentials: unknown key: did you mean access_key?" in message


@pytest.mark.parametrize("value", ["k-1\n", "k-1\r\nX-Evil: 1", "k\x1b[2J", "k\x7f", "clé", "k\tk"])
def test_secret_that_cannot_go_into_a_header_names_the_variable(value: str) -> None:
    doc = base()
    write(Path.cwd(), doc)
    result = CliRunner().invoke(cli, ["validate", "nightly.yaml"],
                                env={**ENV, "ZILLIZ_API_KEY": value})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: nightly.yaml: target.api_key: environment variable "
                                    "ZILLIZ_API_KEY holds a line break, a control character or a "
                                    "non-ASCII character")
    assert value not in result.output and "Traceback" not in result.output


def test_every_problem_is_reported_in_one_pass() -> None:
    doc = base()
    doc["target"]["api_key"] = "${NO_API_KEY}"
    doc["credentials"] = {"access_key": "${NO_ACCESS}", "secret_key": "${NO_SECRET}"}
    doc["sources"][0]["colection"] = doc["sources"][0].pop("collection")
    doc["sources"].append({"url": "ftp://x", "collection": "ok"})
    doc["settings"] = {"concurrency": 0, "on_change": "reimprot", "timeout_s": -1}
    Path("nightly.yaml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["validate", "nightly.yaml"], env={})
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert sorted(lines[:3]) == [
        "error: nightly.yaml: credentials.access_key: environment variable NO_ACCESS is not set",
        "error: nightly.yaml: credentials.secret_key: environment variable NO_SECRET is not set",
        "error: nightly.yaml: target.api_key: environment variable NO_API_KEY is not set",
    ]
    assert ("error: nightly.yaml: sources[0].colection: unknown key: did you mean collection? (known keys: "
            in result.stderr)
    assert "error: nightly.yaml: sources[0].collection: required key is missing" in lines
    assert any(line.startswith("error: nightly.yaml: sources[1].url: expected s3://") for line in lines)
    assert "error: nightly.yaml: settings.concurrency: expected a whole number from 1 to 256, got 0" in lines
    assert ("error: nightly.yaml: settings.on_change: expected one of skip, reimport, got 'reimprot' "
            "(did you mean reimport?)") in lines
    assert ("error: nightly.yaml: settings.timeout_s: expected a number above 0 and at most 3600, got -1"
            in lines)
    assert len(lines) == 9, lines


def test_unknown_setting_suggests_the_closest() -> None:
    doc = base()
    doc["settings"] = {"concurency": 2}
    assert problem(doc).startswith(
        "nightly.yaml: settings.concurency: unknown key: did you mean concurrency?")


def test_choice_settings_are_enums(tmp_path: Path) -> None:
    doc = base()
    doc["settings"] = {"on_change": "reimport", "preflight": "warn", "fixed_size_list": "allow"}
    s = load_manifest(write(tmp_path, doc), ENV).settings
    assert (s.on_change, s.preflight, s.fixed_size_list) == (
        OnChange.REIMPORT, PreflightMode.WARN, FixedSizeList.ALLOW)
    assert load_manifest(write(tmp_path, base()), ENV).target.metric is Metric.COSINE


def test_every_setting_is_documented() -> None:
    from dataclasses import fields

    from orchestrator.config.manifest import Settings
    page = (Path(__file__).parent.parent / "docs" / "reference" / "manifest.md").read_text()
    assert "<!-- generated: settings -->" in page  # the table of every setting (tests/test_docs_reference.py)
    for spec in fields(Settings):
        assert spec.metadata["doc"], spec.name


@pytest.mark.parametrize("place", ["ledger", "url", "uri"])
def test_control_characters_in_values_are_refused(place: str) -> None:
    text = 'version: 1\ntarget: {type: milvus-lite, uri: "x.db"}\nsources: [{url: "lake", collection: c}]\n'
    text = text.replace({"ledger": "sources:", "url": '"lake"', "uri": '"x.db"'}[place],
                        {"ledger": 'ledger: "l\\0.sqlite"\nsources:', "url": '"la\\0ke"',
                         "uri": '"x\\0.db"'}[place])
    message = problem(text)
    assert "holds a control character (\\x00)" in message, message
