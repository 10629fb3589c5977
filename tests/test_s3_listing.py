"""Reading ListObjectsV2 replies: timestamps, entities, URL-encoded keys, namespaces, tokens."""

from __future__ import annotations

import botocore.utils
import pytest

from orchestrator.errors import SourceError
from orchestrator.sources.s3_listing import _ROW, _parse_tree, last_key, next_token, parse_page, timestamp


@pytest.mark.parametrize("text", ["2024-01-01T00:00:00.000Z", "2024-05-06T07:08:09.123Z",
                                  "2024-05-06T07:08:09+02:00", "2024-05-06T07:08:09",
                                  "Wed, 21 Oct 2015 07:28:00 GMT", "1700000000"])
def test_same_instant_as_botocore(text: str) -> None:
    assert timestamp(text) == botocore.utils.parse_timestamp(text).timestamp()


def reply(contents: str, *, ns: str = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"',
          extra: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult{ns}><Name>b</Name>{extra}'
            f"{contents}</ListBucketResult>").encode()


def test_fields_in_any_order_with_or_without_namespace_and_pretty_printed() -> None:
    one = ("<Contents>\n  <Size>12</Size>\n  <ETag>&quot;abc&quot;</ETag>\n"
           "  <Key>p/a &amp; &lt;b&gt;.parquet</Key>\n"
           "  <LastModified>2024-01-01T00:00:00.000Z</LastModified><Owner><ID>x</ID></Owner>\n</Contents>")
    for ns in ("", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'):
        page = parse_page(reply(one, ns=ns), bucket="b", prefix="p/")
        [obj] = page.objects
        assert (obj.key, obj.relative_key, obj.url) == ("p/a & <b>.parquet", "a & <b>.parquet",
                                                        "s3://b/p/a & <b>.parquet")
        assert (obj.size, obj.version, obj.checksum, obj.modified) == (12, "abc", "abc", 1704067200.0)
        assert page.next_token is None and page.prefixes == []


@pytest.mark.parametrize("etag", ["&quot;abc&quot;", "&quot;0a1b-12&quot;", '"abc"', "&#34;abc&#34;",
                                  '&quot;"x"&quot;', "&quot;a&amp;b&quot;", "abc", "", "&quot;&quot;"])
def test_etags_read_by_the_expression_as_an_xml_parser_reads_them(etag: str) -> None:
    body = reply(f"<Contents><Key>p/k</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
                 f"<ETag>{etag}</ETag><Size>1</Size></Contents>")
    assert len(_ROW.findall(body.decode())) == 1  # the fast way reads it
    [fast] = parse_page(body, bucket="b", prefix="p/").objects
    [tree] = _parse_tree(body, bucket="b", prefix="p/").objects
    assert fast == tree and fast.version == fast.checksum


def test_url_encoded_keys_are_decoded_like_botocore_only_when_the_store_encoded_them() -> None:
    row = ("<Contents><Key>{}</Key><LastModified>2024-01-01T00:00:00Z</LastModified><ETag>e</ETag>"
           "<Size>1</Size></Contents>")
    encoded = (row.format("p/a+b%2Bc%25d%01%C3%A9.parquet")
               + "<CommonPrefixes><Prefix>p/x+y/</Prefix></CommonPrefixes>")
    page = parse_page(reply(encoded, extra="<EncodingType>url</EncodingType>"), bucket="b", prefix="p/")
    assert [o.key for o in page.objects] == ["p/a b+c%d\x01é.parquet"]
    assert page.prefixes == ["p/x y/"]
    plain = parse_page(reply(row.format("p/a+b%2B.parquet")), bucket="b", prefix="p/")
    assert [o.key for o in plain.objects] == ["p/a+b%2B.parquet"]


def test_markers_and_keys_outside_the_prefix_are_left_out() -> None:
    row = "<Contents><Key>{}</Key><LastModified>2024-01-01T00:00:00Z</LastModified><Size>0</Size></Contents>"
    page = parse_page(reply("".join(row.format(k) for k in ["p/", "p/x/", "p/1", "q/2"])), bucket="b",
                      prefix="p/")
    assert [(o.key, o.version) for o in page.objects] == [("p/1", "")]


def test_continuation_tokens() -> None:
    body = reply("", extra="<IsTruncated>true</IsTruncated>"
                           "<NextContinuationToken>1/a+b=&amp;c</NextContinuationToken>")
    assert next_token(body) == parse_page(body, bucket="b", prefix="").next_token == "1/a+b=&c"
    assert next_token(reply("")) is None
    with pytest.raises(SourceError, match="gave no continuation token"):
        parse_page(reply("", extra="<IsTruncated>true</IsTruncated>"), bucket="b", prefix="")
    for modified in ("garbageZ", "yesterday"):
        bad = reply(f"<Contents><Key>k</Key><LastModified>{modified}</LastModified><ETag>e</ETag>"
                    "<Size>1</Size></Contents>")
        with pytest.raises(SourceError, match=r"^the listing reply is not understood \("):
            parse_page(bad, bucket="b", prefix="")
    with pytest.raises(SourceError, match="not valid XML"):
        parse_page(b"<ListBucketResult><Contents>", bucket="b", prefix="")


def test_last_key_without_parsing() -> None:
    row = "<Contents><Key>{}</Key><Size>1</Size></Contents>"
    assert last_key(reply(row.format("p/a") + row.format("p/b%20c+d&amp;"),
                          extra="<EncodingType>url</EncodingType>")) == "p/b c d&"
    assert last_key(reply(row.format("p/b%20c+d"))) == "p/b%20c+d"
    assert last_key(reply("<CommonPrefixes><Prefix>p/x/</Prefix></CommonPrefixes>")) is None


@pytest.mark.parametrize("encoding", ["", "<EncodingType>url</EncodingType>"])
def test_the_fast_way_and_the_parser_read_the_same(encoding: str) -> None:
    keys = ["p/a &amp; b", "p/&#13;&#x1F642;&lt;&gt;&apos;&quot;", "p/%41+%2B", "p/é ü", "p/x/", "p/z"]
    rows = "".join(f"<Contents><Key>{k}</Key><LastModified>2024-05-06T07:08:09.{i}Z</LastModified>"
                   f"<ETag>&quot;e{i}&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
                   f"<Size>{i}</Size><StorageClass>STANDARD</StorageClass></Contents>"
                   for i, k in enumerate(keys))
    rows += "<CommonPrefixes><Prefix>p/q+r%2F/</Prefix></CommonPrefixes>"
    body = reply(rows, extra=encoding + "<IsTruncated>true</IsTruncated>"
                                        "<NextContinuationToken>t&amp;1</NextContinuationToken>")
    assert len(_ROW.findall(body.decode())) == len(keys)  # the fast way is taken
    fast = parse_page(body, bucket="b", prefix="p/")
    assert fast == _parse_tree(body, bucket="b", prefix="p/")
    assert len(fast.objects) == 5 and fast.next_token == "t&1"
    assert fast.objects[1].key == "p/\r🙂<>'\"" and fast.objects[1].version == "e1"
