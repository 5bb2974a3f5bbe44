"""Data Ingestion Program Members: `/subscriptions/{munchkinId}/programmembers[/delete]`.

`programs`: [{programId, status | statusName, members | input: [{leadId}]}]. The 1000-object
limit counts lead references across all programs. The status must be a progression status of
the program (case-insensitive) and never "Not in Program" (that is what delete is for).
Program-level problems are a bad request (4000801); a bad lead reference is invalid data
(4000802 naming `programs[i].members[j]`). The same lead twice in one program of one request is
refused as invalid data (Marketo fails such records; clients should dedupe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketo_sandbox.ingestion.common import (
    MAX_OBJECTS,
    bad_request,
    check_keys,
    check_priority,
    invalid_data,
)
from marketo_sandbox.storage import NOT_IN_PROGRAM, Store

if TYPE_CHECKING:
    from starlette.requests import Request


def _programs(request: Request, body: dict, *, with_status: bool) -> tuple[list[dict], int]:
    store = request.app.state.store
    check_keys(body, ("programs", "priority"))
    check_priority(body)
    programs = body.get("programs")
    if not isinstance(programs, list) or not programs:
        raise bad_request("programs must be a non-empty array")
    total = sum(
        len(members)
        for entry in programs
        if isinstance(entry, dict)
        and isinstance(members := entry.get("members", entry.get("input")), list)
    )
    if total > MAX_OBJECTS:
        raise bad_request(
            f"Too many objects: {total} lead references across programs (limit {MAX_OBJECTS})"
        )
    plan = []
    for i, entry in enumerate(programs):
        where = f"programs[{i}]"
        if not isinstance(entry, dict):
            raise bad_request(f"{where} must be an object")
        allowed = ("programId", "members", "input")
        check_keys(entry, (*allowed, "status", "statusName") if with_status else allowed)
        pid = entry.get("programId")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise bad_request(f"{where}.programId must be a positive integer")
        program = store.program(pid)
        if program is None:
            raise bad_request(f"{where}: program {pid} not found")
        status_name = _status(program, entry, where) if with_status else None
        plan.append({"programId": pid, "status": status_name, "leadIds": _lead_ids(entry, where)})
    return plan, total


def _lead_ids(entry: dict, where: str) -> list[int]:
    """The program's lead references: positive ints, each once."""
    if "members" in entry and "input" in entry:
        raise bad_request(f"{where}: give only one of members, input")
    members = entry.get("members", entry.get("input"))
    if not isinstance(members, list) or not members:
        raise bad_request(f"{where}.members must be a non-empty array")
    lead_ids: list[int] = []
    seen: set[int] = set()
    for j, member in enumerate(members):
        spot = f"{where}.members[{j}]"
        lead_id = member.get("leadId") if isinstance(member, dict) else None
        if isinstance(member, dict) and set(member) - {"leadId"}:
            raise invalid_data(spot, f"unknown field '{min(set(member) - {'leadId'})}'")
        if not isinstance(lead_id, int) or isinstance(lead_id, bool) or lead_id <= 0:
            raise invalid_data(spot, "leadId must be a positive integer")
        if lead_id in seen:
            raise invalid_data(
                spot, f"lead {lead_id} appears twice for program {entry['programId']}"
            )
        seen.add(lead_id)
        lead_ids.append(lead_id)
    return lead_ids


def _status(program: dict, entry: dict, where: str) -> str:
    if "status" in entry and "statusName" in entry and entry["status"] != entry["statusName"]:
        raise bad_request(f"{where}: status and statusName differ")
    name = entry.get("status", entry.get("statusName"))
    if not isinstance(name, str) or not name.strip():
        raise bad_request(f"{where}: status (or statusName) is required")
    if name.strip().lower() == NOT_IN_PROGRAM.lower():
        raise bad_request(f"{where}: status '{NOT_IN_PROGRAM}' is not allowed; use /delete")
    step = Store.status_step(program, name)
    if step is None:
        valid = ", ".join(s["name"] for s in program["progressionStatuses"])
        raise bad_request(
            f"{where}: status '{name}' not valid for program {program['id']}: {valid}"
        )
    return step["name"]


def validate(request: Request, body: dict) -> tuple[str, dict, int]:
    """Sync: add members or move their status."""
    plan, total = _programs(request, body, with_status=True)
    return "program_members", {"programs": plan}, total


def validate_delete(request: Request, body: dict) -> tuple[str, dict, int]:
    """Delete: remove members from programs."""
    plan, total = _programs(request, body, with_status=False)
    return "program_members_delete", {"programs": plan}, total


def apply(store: Any, plan: dict) -> list[str]:
    """Add leads to programs or move their status forward."""
    problems = []
    for entry in plan["programs"]:
        rows = [{"leadId": lead_id} for lead_id in entry["leadIds"]]
        results = store.upsert_program_members(entry["programId"], entry["status"], rows)
        problems += [r[2] for r in results if r[0] == "failed" and r[2]]
    return problems


def apply_delete(store: Any, plan: dict) -> list[str]:
    """Remove leads from programs."""
    problems = []
    for entry in plan["programs"]:
        results = store.delete_program_members(entry["programId"], entry["leadIds"])
        problems += [r[2] for r in results if r[0] != "deleted" and r[2]]
    return problems
