"""A recording pass-through for Data Ingestion requests, so packing is measured on the wire.

The target is pointed at this proxy as its `ingestion_base_url`; every request is forwarded to
the sandbox unchanged and its body size and object count are kept. This measures what was
really sent, independent of the target's own logs or counters.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import requests
from typing_extensions import Self

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def count_objects(body: bytes) -> int:
    """Objects as Marketo counts them: list items, or members across programs (lead refs)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(data, dict):
        return 0
    total = 0
    for value in data.values():
        if not isinstance(value, list):
            continue
        for item in value:
            nested = item.get("members") if isinstance(item, dict) else None
            total += len(nested) if isinstance(nested, list) else 1
    return total


class IngestionRecorder:
    """Forward to `upstream`; record (path, status, bytes, objects) per request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._session = requests.Session()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                resp = recorder._session.post(
                    recorder.upstream + self.path, data=body, headers=headers, timeout=120
                )
                with recorder._lock:
                    recorder.requests.append(
                        {
                            "path": self.path.split("?")[0],
                            "status": resp.status_code,
                            "bytes": len(body),
                            "objects": count_objects(body),
                        }
                    )
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()
