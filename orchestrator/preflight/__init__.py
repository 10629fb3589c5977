"""The pre-flight check: a parquet file's footer and sample against its collection's schema."""
