"""Data Ingestion Program Members: `/subscriptions/{munchkinId}/programmembers[/delete]`.

`programs`: [{programId, status | statusName, members | input: [{leadId, customField...}]}]; the
body takes `programs` only (the page's table: no `priority`). Sync members may carry custom
program member fields, names case-insensitive; delete members carry only leadId. The 1000-object
limit counts lead references across all programs. The status must be a progression status of
the program (case-insensitive) and never "Not in Program" (that is what delete is for).
Program-level problems are a bad request (4000801); a bad lead reference is invalid data
(4000802 naming `programs[i].members[j]`). The same lead twice in one program of one request is
refused as invalid data (Marketo fails such records; clients should dedupe). A lead id that does
not exist fails after the 202 (assumed example), recorded with the request id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketo_sandbox.ingestion.common import (
    MAX_OBJECTS,
    bad_request,
    check_keys,
    coerce_record,
    invalid_data,
)
from marketo_sandbox.repos.programs import ProgramRepository
from marketo_sandbox.state import state_of
from marketo_sandbox.storage import NOT_IN_PROGRAM, PROGRAM_MEMBER

if TYPE_CHECKING:
    from starlette.requests import Request


def _programs(request: Request, body: dict, *, with_status: bool) -> tuple[list[dict], int]:
    store = state_of(request).store
    check_keys(body, ("programs",))
    custom = (
        {
            f["name"]: f["dataType"]
            for f in store.fields.map(PROGRAM_MEMBER).values()
            if f["isCustom"] and f["updateable"]
        }
        if with_status
        else {}
    )
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
        program = store.programs.get(pid)
        if program is None:
            raise bad_request(f"{where}: program {pid} not found")
        status_name = _status(program, entry, where) if with_status else None
        members = _members(entry, where, custom)
        plan.append({"programId": pid, "status": status_name, "members": members})
    return plan, total


def _members(entry: dict, where: str, custom: dict[str, str]) -> list[dict]:
    """The program's members: a positive leadId each, once, plus custom fields (sync)."""
    if "members" in entry and "input" in entry:
        raise bad_request(f"{where}: give only one of members, input")
    members = entry.get("members", entry.get("input"))
    if not isinstance(members, list) or not members:
        raise bad_request(f"{where}.members must be a non-empty array")
    out: list[dict] = []
    seen: set[int] = set()
    for j, member in enumerate(members):
        spot = f"{where}.members[{j}]"
        lead_id = member.get("leadId") if isinstance(member, dict) else None
        extra = {k: v for k, v in member.items() if k != "leadId"} if lead_id is not None else {}
        suffix = " (only custom program member fields)"
        values = {}
        if extra:
            values = coerce_record(spot, extra, custom, "a member", suffix, any_case=True)
        if not isinstance(lead_id, int) or isinstance(lead_id, bool) or lead_id <= 0:
            raise invalid_data(spot, "leadId must be a positive integer")
        if lead_id in seen:
            raise invalid_data(
                spot, f"lead {lead_id} appears twice for program {entry['programId']}"
            )
        seen.add(lead_id)
        out.append({**values, "leadId": lead_id})
    return out


def _status(program: dict, entry: dict, where: str) -> str:
    if "status" in entry and "statusName" in entry and entry["status"] != entry["statusName"]:
        raise bad_request(f"{where}: status and statusName differ")
    name = entry.get("status", entry.get("statusName"))
    if not isinstance(name, str) or not name.strip():
        raise bad_request(f"{where}: status (or statusName) is required")
    if name.strip().lower() == NOT_IN_PROGRAM.lower():
        raise bad_request(f"{where}: status '{NOT_IN_PROGRAM}' is not allowed; use /delete")
    step = ProgramRepository.status_step(program, name)
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


def apply(store: Any, plan: dict) -> list[tuple[str, str]]:
    """Add leads to programs or move their status forward; (where, reason) of failures."""
    problems = []
    for i, entry in enumerate(plan["programs"]):
        pid, status = entry["programId"], entry["status"]
        results = store.members.upsert(pid, status, entry["members"])
        problems += [
            (f"programs[{i}].members[{j}]", r[2] or "Failed")
            for j, r in enumerate(results)
            if r[0] == "failed"
        ]
    return problems


def apply_delete(store: Any, plan: dict) -> list[tuple[str, str]]:
    """Remove leads from programs; (where, reason) of those not removed."""
    problems = []
    for i, entry in enumerate(plan["programs"]):
        lead_ids = [m["leadId"] for m in entry["members"]]
        results = store.members.delete(entry["programId"], lead_ids)
        problems += [
            (f"programs[{i}].members[{j}]", r[2] or "Not deleted")
            for j, r in enumerate(results)
            if r[0] != "deleted"
        ]
    return problems
