"""Seed data: the demo subscription (`--seed demo`) and the member generator (`--members N`)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import sqlite3
import time
from datetime import timedelta
from typing import Any

import orjson

from marketo_sandbox.clock import Clock, parse_datetime
from marketo_sandbox.storage import CORE_SCHEMA, LEAD, PROGRAM_MEMBER, Store

log = logging.getLogger("marketo_sandbox.seed")

CHANNELS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "Webinar": (
        "event",
        [
            {"name": "Invited", "step": 10, "success": False},
            {"name": "Registered", "step": 20, "success": False},
            {"name": "No Show", "step": 30, "success": False},
            {"name": "Attended On-demand", "step": 40, "success": True},
            {"name": "Attended", "step": 40, "success": True},
        ],
    ),
    "Nurture": (
        "engagement",
        [
            {"name": "Member", "step": 10, "success": False},
            {"name": "Engaged", "step": 20, "success": False},
            {"name": "Influenced", "step": 30, "success": True},
        ],
    ),
    "Event": (
        "event",
        [
            {"name": "Invited", "step": 10, "success": False},
            {"name": "Registered", "step": 20, "success": False},
            {"name": "Waitlisted", "step": 25, "success": False},
            {"name": "No Show", "step": 30, "success": False},
            {"name": "Attended", "step": 40, "success": True},
        ],
    ),
    "Email Send": (
        "program",
        [
            {"name": "Sent", "step": 10, "success": False},
            {"name": "Opened", "step": 20, "success": False},
            {"name": "Clicked", "step": 30, "success": True},
        ],
    ),
}
PROGRAMS = (
    (1001, "Q1 Product Webinar", "Webinar", "event"),
    (1002, "Customer Nurture", "Nurture", "engagement"),
    (1003, "User Conference 2026", "Event", "event"),
    (1004, "Monthly Newsletter", "Email Send", "program"),
)
#: Days before seeding that each program was created: spread over the last two years, the
#: long-running nurture and newsletter first, this year's events last.
PROGRAM_AGE_DAYS = {1001: 120, 1002: 700, 1003: 250, 1004: 540}
#: How far back the demo's leads go (two years); every member's last change is in the last 60 days.
HISTORY_DAYS = 730
RECENT_DAYS = 60
#: Engagement program members: every 13th has exhausted the content, every 7th is paused.
EXHAUSTED_EVERY = 13
PAUSED_EVERY = 7
DEMO_PM_FIELDS = (
    {"name": "myCustomField", "displayName": "My Custom Field", "dataType": "string"},
    {"name": "sessionsAttended", "displayName": "Sessions Attended", "dataType": "integer"},
    {"name": "vipAttendee", "displayName": "VIP Attendee", "dataType": "boolean"},
    {"name": "checkedInAt", "displayName": "Checked In At", "dataType": "datetime"},
    {"name": "attendeeNotes", "displayName": "Attendee Notes", "dataType": "text"},
    {"name": "feedbackScore", "displayName": "Feedback Score", "dataType": "float"},
)
DEMO_LEAD_FIELDS = (
    {"name": "industrySegment", "displayName": "Industry Segment", "dataType": "string"},
    {"name": "accountTier", "displayName": "Account Tier", "dataType": "integer"},
    {"name": "isPartner", "displayName": "Is Partner", "dataType": "boolean"},
    {"name": "lastWebinarAt", "displayName": "Last Webinar At", "dataType": "datetime"},
    {"name": "npsScore", "displayName": "NPS Score", "dataType": "float"},
    {"name": "renewalDate", "displayName": "Renewal Date", "dataType": "date"},
    {"name": "leadNotes", "displayName": "Lead Notes", "dataType": "text"},
)
FIRST = [
    "Ana",
    "Zoë",
    "Søren",
    "José",
    "Li",
    "Mary-Jane",
    "O'Brien",
    "Ærin",
    "Chloé",
    "Björn",
    "Amélie",
    "Jürgen",
    "Nuño",
    "Ivan",
    "Priya",
    "Kwame",
    "Yuki",
    "Łukasz",
    "Fatima",
    "",
]
LAST = [
    "Smith",
    "García",
    "Müller",
    "Nguyễn",
    "O'Connor",
    "Kowalski",
    "李",
    "Øster",
    "Dubois",
    "Rossi",
    "Ivanov",
    "Okafor",
    "Sato",
    "Núñez",
    "Brown, Jr.",
    "de la Cruz",
]
COMPANIES = [
    "Acme, Inc.",
    'The "Best" Company',
    "Initech",
    "Umbrella Corp.",
    "Société Générale",
    "Globex; Ltd",
    "Weyland\tYutani",
    "Stark Industries",
    "Wayne Enterprises",
    "",
    "北京科技有限公司",
    "Müller & Söhne GmbH",
]
NOTES = ["", "Prefers email", 'Said "call me later", then hung up', "line one\nline two",
         "comma, separated, words", "emoji ✅ and unicode ß", "ends with backslash \\",
         "tab\tseparated", "carriage\r\nreturn"]  # fmt: skip
SEGMENTS = ["Enterprise", "Mid-Market", "SMB", "Public Sector, EMEA", ""]


def _fields(store: Store) -> None:
    existing_pm = store.fields.map(PROGRAM_MEMBER)
    existing_lead = store.fields.map(LEAD)
    for spec in DEMO_PM_FIELDS:
        if spec["name"] not in existing_pm:
            store.fields.create(PROGRAM_MEMBER, spec, api_created=False)
    for spec in DEMO_LEAD_FIELDS:
        if spec["name"] not in existing_lead:
            store.fields.create(LEAD, spec, api_created=False)


def ensure_programs(store: Store) -> None:
    """The demo channels and programs 1001-1004 (idempotent), created over the last two years."""
    now = store.clock.now()
    for name, (program_type, statuses) in CHANNELS.items():
        if store.programs.channel(name) is None:
            store.programs.add_channel(name, program_type, statuses)
    for pid, name, channel, program_type in PROGRAMS:
        if store.programs.get(pid) is None:
            created = Clock.iso(now - timedelta(days=PROGRAM_AGE_DAYS[pid]))
            store.programs.add(
                pid, name, channel, program_type=program_type, description=f"{name} (demo)",
                status="on" if program_type == "engagement" else "", created_at=created,
            )  # fmt: skip


def engagement(program_type: str, lead_id: int) -> tuple[int, str | None]:
    """(isExhausted, nurtureCadence) of a member: set only in engagement programs."""
    if program_type != "engagement":
        return 0, None
    return int(lead_id % EXHAUSTED_EVERY == 0), "pause" if lead_id % PAUSED_EVERY == 0 else "norm"


def seed_demo(store: Store, leads: int = 2000, seed: int = 42) -> None:
    """Programs, fields, ~2,000 leads and ~5,000 members with awkward values (once per db)."""
    if store.db.get_meta("seed_demo"):
        return
    ensure_programs(store)
    _fields(store)
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    now = store.clock.now()
    history = now - timedelta(days=HISTORY_DAYS)
    recent = now - timedelta(days=RECENT_DAYS)

    def moment(after: Any = None) -> Any:
        """Uniform between `after` (default two years ago) and an hour ago."""
        base = after or history
        room = max(1, int((now - base).total_seconds()) - 3600)
        return base + timedelta(seconds=rng.randrange(room))

    def changed(after: Any) -> Any:
        """A last change after `after`, within the last 60 days.

        The history lives in createdAt and membershipDate; a sync from the oldest change still
        reads a few windows (tests and demos replay from there).
        """
        return moment(max(after, recent))

    program_created = {
        p["id"]: parse_datetime(p["createdAt"])
        for p in store.programs.all()
        if p["id"] in PROGRAM_AGE_DAYS
    }
    lead_created: dict[int, Any] = {}
    lead_rows = []
    for i in range(1, leads + 1):
        created = moment()
        lead_created[i] = created
        data = {
            "firstName": FIRST[i % len(FIRST)],
            "lastName": LAST[(i * 7) % len(LAST)],
            "company": COMPANIES[(i * 3) % len(COMPANIES)],
            "title": rng.choice(["CTO", "VP, Marketing", "Data Engineer", "", None]),
            "phone": f"+1-555-{i:04d}" if i % 5 else None,
            "leadScore": rng.randrange(0, 200),
            "numberOfEmployees": rng.choice([10, 250, 5000, None]),
            "unsubscribed": i % 17 == 0,
            "industrySegment": SEGMENTS[i % len(SEGMENTS)],
            "accountTier": rng.choice([1, 2, 3, None]),
            "isPartner": i % 9 == 0,
            "npsScore": round(rng.uniform(0, 10), 1),
            "renewalDate": (now + timedelta(days=rng.randrange(400))).date().isoformat(),
            "leadNotes": NOTES[i % len(NOTES)],
        }
        email = f"lead{i}@example.com" if i % 97 else f"Lead.{i}+tag@Example.COM"
        iso = Clock.iso(created)
        lead_rows.append((i, email, iso, Clock.iso(changed(created)), orjson.dumps(data).decode()))
    with store.db.tx() as conn:
        conn.executemany(
            "INSERT INTO leads (id, email, created_at, updated_at, data) VALUES (?, ?, ?, ?, ?)",
            lead_rows,
        )
    member_rows = []
    for pid, _, channel, program_type in PROGRAMS:
        statuses = CHANNELS[channel][1]
        share = 0.9 if pid == 1002 else 0.55  # noqa: PLR2004
        for lead_id in range(1, leads + 1):
            if rng.random() > share:
                continue
            status = rng.choice(statuses)
            joined = moment(max(program_created[pid], lead_created[lead_id]))
            updated = changed(joined)
            exhausted, cadence = engagement(program_type, lead_id)
            success = status["success"]
            data = {
                "registrationCode": f"REG-{pid}-{lead_id:05d}" if channel != "Email Send" else None,
                "webinarUrl": f"https://example.com/w/{pid}?lead={lead_id}&x=1,2"
                if channel == "Webinar"
                else None,
                "myCustomField": NOTES[(lead_id + pid) % len(NOTES)],
                "sessionsAttended": rng.randrange(0, 6) if lead_id % 4 else None,
                "vipAttendee": lead_id % 11 == 0,
                "checkedInAt": Clock.iso(updated) if success else None,
                "attendeeNotes": COMPANIES[lead_id % len(COMPANIES)],
                "feedbackScore": round(rng.uniform(1, 5), 2) if success else None,
            }
            member_rows.append(
                (pid, lead_id, status["name"], int(success), Clock.iso(updated) if success else None,  # noqa: E501
                 int(lead_id % 5 == 0), exhausted, cadence, Clock.iso(joined), None,
                 "Main Track" if channel == "Nurture" else None, None, rng.randrange(0, 100),
                 rng.randrange(0, 100), Clock.iso(joined), Clock.iso(updated),
                 orjson.dumps(data).decode())
            )  # fmt: skip
    _insert_members(store, member_rows)
    store.db.set_meta("seed_demo", Clock.iso(now))
    log.info("demo seed: %d leads, %d members", len(lead_rows), len(member_rows))


_MEMBER_SQL = (
    "INSERT OR IGNORE INTO program_members (program_id, lead_id, status_name, reached_success, "
    "reached_success_date, acquired_by, is_exhausted, nurture_cadence, membership_date, "
    "status_reason, track_name, waitlist_priority, attendance_likelihood, "
    "registration_likelihood, created_at, updated_at, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _insert_members(store: Store, rows: Any) -> None:
    with store.db.tx() as conn:
        conn.executemany(_MEMBER_SQL, rows)


def generate_members(store: Store, n: int, seed: int = 7) -> int:
    """Add `n` members spread evenly over the programs (new leads, each in every program).

    Built for benchmarks: tuples from a generator into `executemany` inside one transaction per
    chunk, values cycled from small precomputed pools. Returns the members added.
    """
    if n <= 0:
        return 0
    ensure_programs(store)
    programs = store.programs.all()
    started = time.perf_counter()
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    now = store.clock.now()
    stamps = [Clock.iso(now - timedelta(seconds=rng.randrange(1, 30 * 86400))) for _ in range(997)]
    datas = [
        orjson.dumps(
            {
                "registrationCode": f"GEN-{k:04d}",
                "myCustomField": NOTES[k % len(NOTES)],
                "sessionsAttended": k % 7,
                "vipAttendee": k % 5 == 0,
                "attendeeNotes": COMPANIES[k % len(COMPANIES)],
            }
        ).decode()
        for k in range(101)
    ]
    per_program = [(p["id"], p["progressionStatuses"], p["type"]) for p in programs]
    n_programs = len(per_program)
    n_leads = -(-n // n_programs)
    conn = store.db.conn()
    first_lead = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM leads").fetchone()[0]) + 1
    lead_data = [
        orjson.dumps(
            {"firstName": FIRST[k % len(FIRST)], "lastName": LAST[k % len(LAST)],
             "company": COMPANIES[k % len(COMPANIES)], "leadScore": k % 150}
        ).decode()
        for k in range(53)
    ]  # fmt: skip
    # Leads exist before they join (members change in the last 30 days, leads were created
    # before that), so no membership predates its lead.
    born = [Clock.iso(now - timedelta(days=31, minutes=k)) for k in range(997)]
    leads = (
        (first_lead + k, f"gen{first_lead + k}@example.com", born[k % 997], stamps[k % 997],
         lead_data[k % 53])
        for k in range(n_leads)
    )  # fmt: skip
    with store.db.tx() as tx:
        tx.executemany(
            "INSERT INTO leads (id, email, created_at, updated_at, data) VALUES (?, ?, ?, ?, ?)",
            leads,
        )

    def members() -> Any:
        # Program by program, leads ascending: appends to the primary key's B-tree.
        for j in range(n):
            i = (j % n_leads) * n_programs + j // n_leads
            pid, statuses, program_type = per_program[j // n_leads]
            status = statuses[(i // n_programs) % len(statuses)]
            success = status["success"]
            joined = stamps[i % 997]
            updated = stamps[(i * 7 + 3) % 997]
            updated = max(joined, updated)
            exhausted, cadence = engagement(program_type, i)
            yield (
                pid, first_lead + i // n_programs, status["name"], int(success),
                updated if success else None, i % 3 == 0, exhausted, cadence, joined, None, None,
                None, i % 100, (i * 3) % 100, joined, updated, datas[i % 101],
            )  # fmt: skip

    rows = members()
    # A fresh generation needs no rollback journal: without WAL every page is written once
    # instead of twice (WAL, then checkpoint). SQLite refuses the switch while another
    # connection is open (a running server), and then WAL simply stays.
    with contextlib.suppress(sqlite3.OperationalError):
        conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA cache_size = -262144")  # 256 MB while the bulk insert runs
    conn.execute("DROP INDEX IF EXISTS program_members_updated")  # rebuilt once, sorted
    try:
        while True:
            chunk = list(itertools.islice(rows, 250_000))
            if not chunk:
                break
            _insert_members(store, chunk)
    finally:
        conn.executescript(CORE_SCHEMA)
        conn.execute("PRAGMA cache_size = -2000")
        with contextlib.suppress(sqlite3.OperationalError):
            conn.execute("PRAGMA journal_mode = WAL")
    done = int(store.db.get_meta("generated_members") or 0) + n
    store.db.set_meta("generated_members", str(done))
    log.info("generated %d members in %.1f s", n, time.perf_counter() - started)
    return n


def apply(store: Store, kind: str | None, members: int = 0) -> None:
    """Seed a db as the CLI asks; re-running on the same db adds nothing (restart keeps data)."""
    if kind == "demo":
        seed_demo(store)
    elif kind:
        raise ValueError(f"unknown seed {kind!r}; the only seed is 'demo'")
    if members > int(store.db.get_meta("generated_members") or 0):
        generate_members(store, members - int(store.db.get_meta("generated_members") or 0))
