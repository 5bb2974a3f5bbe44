"""Singer output as a target sees it: BATCH messages expanded into the RECORDs of their files.

Shared by the tap, reliability and e2e tests (tests/ is on sys.path through its conftest).
"""

from __future__ import annotations

import gzip
import json


def read_batch_file(url: str, encoding: dict) -> list[dict]:
    """The rows of one batch file (jsonl, gzip or not, or parquet)."""
    assert url.startswith("file://"), url
    path = url.removeprefix("file://")
    if encoding["format"] == "parquet":
        import pyarrow.parquet as pq  # noqa: PLC0415

        return pq.read_table(path).to_pylist()
    opener = gzip.open if encoding.get("compression") == "gzip" else open
    with opener(path, "rb") as handle:
        return [json.loads(line) for line in handle]


def expand_batches(messages: list[dict]) -> list[dict]:
    """Each BATCH message replaced in place by its rows, as RECORDs marked `from_batch`."""
    out = []
    for message in messages:
        if message["type"] != "BATCH":
            out.append(message)
            continue
        for url in message["manifest"]:
            out.extend(
                {"type": "RECORD", "stream": message["stream"], "record": row, "from_batch": url}
                for row in read_batch_file(url, message["encoding"])
            )
    return out
