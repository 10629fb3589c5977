"""Every run ends and tells the truth: lost replies that hold the job window, jobs the server forgets
while a run waits, the first claims of a run, `uncertain` looked at again, `retry --uncertain`, and
two-phase orphans. Runs that could hang go through the CLI in a subprocess with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator import api
from orchestrator.models import Action, PlanItem
from tests.fakes.base import FakeImportAPI
from tests.test_exactly_once import invoke, rows

DEADLINE_S = 90  # a run that takes longer hangs: the test fails, the suite goes on


def cli(*args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess, failed (and killed) past :data:`DEADLINE_S`."""
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"`{' '.join(args[:1])}` did not end within {DEADLINE_S} s (a hang):\n{err[-3000:]}")
    return proc.returncode, out, err


def states(manifest: Path) -> dict[str, str]:
    return {r.url: r.state.value for r in rows(manifest)}


def claim(manifest: Path, *, server_at: float | None, only: Callable[[PlanItem], bool] = lambda i: True,
          uncertain: str | None = None, job_id: str | None = None) -> list[PlanItem]:
    """Leave the ledger as a run killed during its create calls would (``submitting``, at
    ``server_at`` on the server's clock, None: unknown); ``uncertain`` marks the rows so, as an older
    release did (after recording ``job_id``: a job the server forgot since)."""
    m = api.validate(manifest)
    items: list[PlanItem] = []
    api.plan(m, on_item=items.append)
    items = [i for i in items if i.action is Action.SUBMIT and only(i)]
    with httpx.Client() as client, api.open_ledger(m) as ledger:
        target = api.make_target(m, client)
        for item in items:
            made = ledger.begin_submission(item, sent_as=target.object_ref(item.obj, api.object_url(item, m)),
                                           server_at=server_at)
            assert made is not None
            if job_id is not None:
                assert ledger.record_job(made.row, job_id)
            if uncertain is not None:
                ledger.mark_uncertain(made.row, uncertain)
    return items


def server_now(fake: FakeImportAPI) -> float:
    """The fake's clock as its Date header says it (whole seconds)."""
    date = httpx.get(fake.url + "/nowhere").headers["date"]
    import email.utils
    return email.utils.parsedate_to_datetime(date).timestamp()


# -- 8. the culprit of a failed group is named by its whole file name ------------------------------

@pytest.mark.parametrize("fake_api", ["milvus"], indirect=True)
def test_a_reason_naming_a_longer_file_blames_only_the_file_it_names(
    put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path], fake_api: FakeImportAPI,
) -> None:
    bad, good = put_objects(["embeddings/bad.parquet", "embeddings/good.parquet"])
    fake_api.fail_objects = {"good.parquet": "a column of embeddings/bad.parquet.bak was copied here"}
    manifest = write_manifest(settings={"objects_per_job": 2})
    invoke("run", str(manifest))
    invoke("run", str(manifest), "--wait", "--poll-interval", "0")
    alone = {r.url: r.alone for r in rows(manifest)}
    assert alone == {bad: False, good: True}


# -- 9. plan says what is true of a version whose import is unresolved ----------------------------

def test_plan_does_not_call_an_unresolved_import_imported(
    s3: Any, bucket: str, put_objects: Callable[..., list[str]], write_manifest: Callable[..., Path],
    fake_api: FakeImportAPI,
) -> None:
    put_objects(["embeddings/a.parquet"])
    manifest = write_manifest(settings={"on_change": "skip"})
    claim(manifest, server_at=None)
    s3.put_object(Bucket=bucket, Key="embeddings/a.parquet", Body=b"another version")
    out = invoke("plan", str(manifest), "-v").output
    assert "since it was imported" not in out and "still `submitting`" in out, out
