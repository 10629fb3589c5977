"""The S3 lister's timestamp parser: the same instants as botocore's, at a fraction of the cost."""

from __future__ import annotations

import botocore.utils
import pytest

from orchestrator.sources.s3 import parse_timestamp


@pytest.mark.parametrize("text", ["2024-01-01T00:00:00.000Z", "2024-05-06T07:08:09.123Z",
                                  "2024-05-06T07:08:09+02:00", "2024-05-06T07:08:09",
                                  "Wed, 21 Oct 2015 07:28:00 GMT", "1700000000"])
def test_same_instant_as_botocore(text: str) -> None:
    ours = parse_timestamp(text)
    assert ours.tzinfo is not None
    assert ours.timestamp() == botocore.utils.parse_timestamp(text).timestamp()
