"""After `make demo`: count the rows of each collection the demo loaded and run one vector search in each."""

from __future__ import annotations

import random
import sys

from pymilvus import MilvusClient

from orchestrator.api import validate
from orchestrator.targets.milvus_lite import JOBS, open_client


def main(manifest_path: str) -> None:
    manifest = validate(manifest_path)
    assert manifest.target.uri is not None, "the demo manifest names a milvus-lite database"
    client: MilvusClient = open_client(manifest.target.uri)
    rng = random.Random(7)
    for name in sorted(c for c in client.list_collections() if c != JOBS):
        client.load_collection(name)
        count = client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
        vector_field = next(f for f in client.describe_collection(name)["fields"]
                            if f["type"].name == "FLOAT_VECTOR")
        query = [rng.random() for _ in range(vector_field["params"]["dim"])]
        hits = client.search(name, data=[query], anns_field=vector_field["name"], limit=3)[0]
        nearest = ", ".join(f"id {hit['id']} ({hit['distance']:.3f})" for hit in hits)
        print(f"{name}: {count} rows; nearest to a random vector: {nearest}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "manifests/demo.yaml")
