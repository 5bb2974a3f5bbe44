"""`AdminClient`: a stdlib HTTP client of the sandbox's `/_sandbox/` API, for tests and tools.

Kept apart from the server's `admin` routes, so a client never imports the server.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class AdminError(RuntimeError):
    """The admin API refused a request."""


class AdminClient:
    """Python client of `/_sandbox/` (stdlib only, so any test can use it)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 server
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def dump(self, kind: str, program_id: int | None = None) -> list[dict[str, Any]]:
        """Rows of `kind` (leads, program_members, fields, calls, and the bulk kinds)."""
        query = f"?programId={program_id}" if program_id else ""
        return self._call("GET", f"/_sandbox/dump/{kind}{query}")

    def inject_fault(
        self,
        path_glob: str,
        kind: str,
        *,
        method: str | None = None,
        count: int = 1,
        every: int | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        """Arm a fault (see `marketo_sandbox.faults.Fault` for count/every semantics)."""
        spec = {"path": path_glob, "kind": kind, "method": method, "count": count}
        spec.update(every=every, delay=delay)
        return self._call("POST", "/_sandbox/faults", spec)

    def inject_export_job(self, export_type: str, file_size: int, **fields: Any) -> dict[str, Any]:
        """A finished export job in a type's job list (leads, activities, program_members).

        `fields`: numberOfRecords, finishedAt (ISO), status, apiUser, format.
        """
        body = {"type": export_type, "fileSize": file_size, **fields}
        return self._call("POST", "/_sandbox/bulk/export_jobs", body)

    def faults(self) -> list[dict[str, Any]]:
        """Armed faults with their counters."""
        return self._call("GET", "/_sandbox/faults")

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._call("DELETE", "/_sandbox/faults")

    def arm_chaos(
        self, rate: float, seed: int | None = None, slow_seconds: float | None = None
    ) -> dict[str, Any]:
        """Chaos mode at `rate` (0..1) with `seed`; returns its state (the seed drawn if None)."""
        body: dict[str, Any] = {"rate": rate, "seed": seed}
        if slow_seconds is not None:
            body["slowSeconds"] = slow_seconds
        return self._call("POST", "/_sandbox/chaos", body)

    def disarm_chaos(self) -> dict[str, Any]:
        """Chaos mode off; returns its counts."""
        return self._call("DELETE", "/_sandbox/chaos")

    def chaos(self, log: bool = False) -> dict[str, Any]:
        """Chaos state: rate, seed, calls drawn, injected, counts by kind (`log`: each fault)."""
        return self._call("GET", "/_sandbox/chaos" + ("?log=1" if log else ""))

    def set_options(self, **changes: Any) -> dict[str, Any]:
        """Change run-time options; returns them all."""
        return self._call("POST", "/_sandbox/options", changes)

    def options(self) -> dict[str, Any]:
        """Current run-time options."""
        return self._call("GET", "/_sandbox/options")

    def touch_members(self, program_id: int, lead_ids: list[int], **field_values: Any) -> int:
        """Set member fields and bump their updatedAt to sandbox-now; returns members changed."""
        body = {"programId": program_id, "leadIds": list(lead_ids), "fields": field_values}
        return self._call("POST", "/_sandbox/members/touch", body)["updated"]

    def now(self) -> str:
        """Sandbox time, ISO-8601."""
        return self._call("GET", "/_sandbox/now")["now"]

    def advance(self, seconds: float) -> str:
        """Move sandbox time forward; returns the new time."""
        return self._call("POST", "/_sandbox/now", {"advanceSeconds": seconds})["now"]

    def limits(self) -> dict[str, Any]:
        """REST calls today (`dailyUsed`), in flight, peaks per 20 s / in flight, refusals."""
        return self._call("GET", "/_sandbox/limits")

    def expire_tokens(self) -> int:
        """Expire every issued token now."""
        return self._call("POST", "/_sandbox/tokens/expire", {})["expired"]

    def ingestion(self, request_id: str | None = None) -> dict[str, Any]:
        """Data Ingestion after the 202: `pending` requests and `failures` (all, or one id's)."""
        query = f"?requestId={request_id}" if request_id else ""
        return self._call("GET", f"/_sandbox/ingestion{query}")

    def wait_ingestion(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every accepted Data Ingestion request is applied; returns the failures.

        Requests are applied a little after their 202 (sandbox time), so a test reading what a
        target wrote waits here first.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.ingestion()
            if not state["pending"]:
                return state["failures"]
            if time.monotonic() > deadline:
                raise AdminError(f"Data Ingestion still has {state['pending']} requests pending")
            time.sleep(0.02)

    def reset(self, seed: str | None = "demo", members: int = 0) -> None:
        """Empty the db and seed it again."""
        self._call("POST", "/_sandbox/reset", {"seed": seed, "members": members})
