"""`validate` explains the commonest YAML mistake of the docs' one-line examples: ``${VAR}`` inside a
flow mapping ``{...}`` (or a flow list ``[...]``) without quotes, which YAML reads as the start of
another mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.main import cli

ENV = {"ZILLIZ_API_KEY": "k-123456", "IMPORT_ACCESS_KEY": "a-123456", "IMPORT_SECRET_KEY": "s-123456"}
HEAD = "version: 1\n"
SOURCES = "sources:\n  - url: s3://lake/embeddings/\n    collection: articles\n"
CREDENTIALS = "credentials: {access_key: '${IMPORT_ACCESS_KEY}', secret_key: '${IMPORT_SECRET_KEY}'}\n"


def validate(tmp_path: Path, text: str) -> tuple[int, str]:
    (tmp_path / "m.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "m.yaml")], env=ENV)
    return result.exit_code, result.output


@pytest.mark.parametrize(("text", "line", "brackets"), [
    (HEAD + "target: {type: zilliz-v2, cluster_id: inxx-1, api_key: ${ZILLIZ_API_KEY}}\n" + CREDENTIALS
     + SOURCES, 2, "{...}"),
    (HEAD + "target: {type: zilliz-v2, cluster_id: inxx-1, api_key: '${ZILLIZ_API_KEY}'}\n"
     "credentials: {access_key: ${IMPORT_ACCESS_KEY}, secret_key: ${IMPORT_SECRET_KEY}}\n" + SOURCES, 3,
     "{...}"),
    (HEAD + "target: {type: zilliz-v2, cluster_id: inxx-1, api_key: '${ZILLIZ_API_KEY}'}\n" + CREDENTIALS
     + "sources:\n  - {url: s3://lake/${PREFIX}/, collection: articles}\n", 5, "{...}"),
    (HEAD + "target: {type: zilliz-v2, cluster_id: inxx-1, api_key: '${ZILLIZ_API_KEY}'}\n" + CREDENTIALS
     + SOURCES + "    include: [${PATTERN}]\n", 7, "[...]"),
])
def test_unquoted_variable_in_a_flow_collection_gets_the_hint(tmp_path: Path, text: str, line: int,
                                                               brackets: str) -> None:
    code, output = validate(tmp_path, text)
    assert code == 2
    assert f"m.yaml: line {line}: not valid YAML: " in output
    assert f"quote a value that holds ${{...}} inside {brackets}" in output
    assert len(output.strip().splitlines()) == 1


def test_the_quoted_form_is_valid(tmp_path: Path) -> None:
    code, output = validate(tmp_path, HEAD + "target: {type: zilliz-v2, cluster_id: inxx-1, "
                            "api_key: '${ZILLIZ_API_KEY}'}\n" + CREDENTIALS + SOURCES)
    assert code == 0, output


def test_other_yaml_errors_get_no_such_hint(tmp_path: Path) -> None:
    code, output = validate(tmp_path, HEAD + "target: {type: zilliz-v2, cluster_id: inxx-1 api_key: x\n"
                            + SOURCES)
    assert code == 2 and "not valid YAML" in output
    assert "quote a value" not in output
    code, output = validate(tmp_path, HEAD + "target: {type: zilliz-v2, cluster_id: inxx-1, api_key: x]\n"
                            + "# ${ZILLIZ_API_KEY}\n" + SOURCES)
    assert code == 2 and "not valid YAML" in output and "quote a value" not in output
