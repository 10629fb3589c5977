"""The data plane's ``POST /v2/vectordb/collections/describe`` (Zilliz Cloud cluster endpoint, Milvus):
what the pre-flight check compares each parquet file with."""

from __future__ import annotations

import httpx

from ..models import Secret
from ..preflight.schema import CollectionSchema, from_describe
from .http import call

DESCRIBE = "/v2/vectordb/collections/describe"
GB = 1000**3


def describe(client: httpx.Client, base_url: str, collection: str, *, token: Secret | None,
             db_name: str | None = None) -> CollectionSchema:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.reveal()}"
    body = {"collectionName": collection, **({"dbName": db_name} if db_name else {})}
    data = call(client, "POST", f"{base_url.rstrip('/')}{DESCRIBE}", headers=headers, json=body,
                success_codes=frozenset({0, 200}))
    return from_describe(data, where=f"describe {collection}")
