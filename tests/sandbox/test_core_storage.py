"""Store data access used by every API family, the demo seed and the member generator."""

from __future__ import annotations

import math

import pytest
from marketo_sandbox import seed
from marketo_sandbox.clock import Clock
from marketo_sandbox.envelope import MarketoHTTPError
from marketo_sandbox.server import demo_template
from marketo_sandbox.storage import LEAD, PROGRAM_MEMBER, Store, coerce


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("demo") / "demo.db", Clock(1.0))
    seed.apply(store, "demo")
    return store


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "s.db", Clock(1.0))
    seed.apply(s, "demo")
    return s


def test_demo_seed_shape(demo: Store) -> None:
    programs = demo.programs.all()
    assert [p["id"] for p in programs] == [1001, 1002, 1003, 1004]
    assert all(p["statuses"][0] == "Not in Program" and len(p["statuses"]) > 2 for p in programs)
    leads = demo.leads.dump()
    members = demo.members.dump()
    assert len(leads) == 2000
    assert 4500 <= len(members) <= 5500
    customs = {
        f["name"]: f["dataType"] for f in demo.fields.describe(PROGRAM_MEMBER) if f["isCustom"]
    }
    assert {"string", "integer", "boolean", "datetime"} <= set(customs.values())
    assert any(f["isCustom"] for f in demo.fields.describe(LEAD))
    values = [v for row in members + leads for v in row.values() if isinstance(v, str)]
    assert any("," in v for v in values)
    assert any('"' in v for v in values)
    assert any("\n" in v for v in values)
    assert any(not v.isascii() for v in values)
    assert "" in values
    assert any(v is None for row in members for v in row.values())


def test_seed_is_applied_once(store: Store) -> None:
    before = len(store.members.dump())
    seed.apply(store, "demo")
    assert len(store.members.dump()) == before
    with pytest.raises(ValueError, match="unknown seed"):
        seed.apply(store, "nope")


@pytest.mark.parametrize("n", [1, 7, 1001])
def test_generator_makes_exactly_n_members(tmp_path, n: int) -> None:
    store = Store(tmp_path / "g.db")
    seed.apply(store, None, n)
    members = store.members.dump()
    assert len(members) == n
    assert len({(m["programId"], m["leadId"]) for m in members}) == n
    assert len(store.leads.dump()) == math.ceil(n / 4)
    assert {m["programId"] for m in members} <= {1001, 1002, 1003, 1004}
    if n >= 4:
        assert {m["programId"] for m in members} == {1001, 1002, 1003, 1004}
    program_statuses = {p["id"]: p["statuses"] for p in store.programs.all()}
    assert all(m["statusName"] in program_statuses[m["programId"]] for m in members)
    assert all(m["membershipDate"] <= m["updatedAt"] for m in members)
    seed.apply(store, None, n)  # restart with the same flags adds nothing
    assert len(store.members.dump()) == n
    assert store.db.conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_iter_program_members_fields_and_updated_window(demo: Store) -> None:
    rows = list(
        demo.members.iter(
            [1001, 1003],
            ["programId", "leadId", "email", "firstName", "updatedAt", "vipAttendee", "leadScore"],
        )
    )
    assert {r["programId"] for r in rows} == {1001, 1003}
    assert all(isinstance(r["vipAttendee"], bool) for r in rows)
    assert all(r["email"] for r in rows)
    assert all(isinstance(r["leadScore"], int) for r in rows)
    stamps = sorted(r["updatedAt"] for r in rows)
    low, high = stamps[len(stamps) // 4], stamps[len(stamps) // 2]
    window = list(demo.members.iter([1001, 1003], ["updatedAt"], low, high))
    assert len(window) == sum(1 for s in stamps if low <= s <= high)
    with pytest.raises(MarketoHTTPError) as exc:
        list(demo.members.iter([1001], ["nope"]))
    assert exc.value.code == "1006"
    assert list(demo.members.iter([], ["leadId"])) == []


def test_upsert_leads(store: Store) -> None:
    results = store.leads.upsert(
        [
            {
                "email": "new@example.com",
                "firstName": "Zoë",
                "isPartner": "false",
                "accountTier": "2",
            },
            {"email": "lead2@example.com", "company": 'Acme, "Inc"'},
            {"email": ""},
            {"email": "not-an-email"},
            {"email": "x@example.com", "noSuchField": 1},
            {"email": "y@example.com", "accountTier": "two"},
        ],
        "email",
    )
    assert results[0][0] == "created"
    assert results[1] == ("updated", 2, None)
    assert [r[0] for r in results[2:]] == ["failed"] * 4
    assert "lookup" in results[2][2]
    assert "email" in results[3][2].lower()
    assert "noSuchField" in results[4][2]
    assert "accountTier" in results[5][2]
    leads = {lead["id"]: lead for lead in store.leads.dump()}
    new = leads[results[0][1]]
    assert new["firstName"] == "Zoë"
    assert new["isPartner"] is False
    assert new["accountTier"] == 2
    assert leads[2]["company"] == 'Acme, "Inc"'
    assert leads[2]["firstName"]  # other fields kept
    by_id = store.leads.upsert([{"id": 2, "title": "CEO"}, {"id": 99999, "title": "x"}], "id")
    assert by_id[0] == ("updated", 2, None)
    assert by_id[1][0] == "failed"
    with pytest.raises(MarketoHTTPError):
        store.leads.upsert([{"email": "a@b.co"}], "nope")


def test_upsert_program_members(store: Store) -> None:
    current = {m["leadId"]: m for m in store.members.dump(1001)}
    attended = next(lead for lead, m in current.items() if m["statusName"] == "Attended")
    attended_email = next(lead["email"] for lead in store.leads.dump() if lead["id"] == attended)
    results = store.members.upsert(
        1001,
        "Registered",
        [
            {"email": "brand.new@example.com", "firstName": "Brand", "myCustomField": "hi, there"},
            {"email": attended_email, "sessionsAttended": "3"},
            {"firstName": "no email"},
            {"email": "z@example.com", "membershipDate": "2024-01-01"},
            {"email": "z@example.com", "vipAttendee": "maybe"},
            {"leadId": 1, "vipAttendee": True},
        ],
    )
    assert results[0][0] == "created"
    assert results[1][0] == "updated"
    assert "already in or past" in results[1][2]
    assert [r[0] for r in results[2:5]] == ["failed"] * 3
    assert results[5][0] in ("created", "updated")
    rows = {m["leadId"]: m for m in store.members.dump(1001)}
    assert rows[results[0][1]]["statusName"] == "Registered"
    assert rows[results[0][1]]["acquiredBy"] is True
    assert rows[results[0][1]]["myCustomField"] == "hi, there"
    assert rows[attended]["statusName"] == "Attended"
    assert rows[attended]["sessionsAttended"] == 3
    with pytest.raises(MarketoHTTPError) as exc:
        store.members.upsert(1001, "Not in Program", [{"email": "a@b.co"}])
    assert exc.value.code == "1003"
    with pytest.raises(MarketoHTTPError) as exc:
        store.members.upsert(9999, "Registered", [{"email": "a@b.co"}])
    assert exc.value.code == "1013"


def test_delete_program_members(store: Store) -> None:
    lead = store.members.dump(1002)[0]["leadId"]
    assert store.members.delete(1002, [lead, lead]) == [
        ("deleted", lead, None),
        ("skipped", None, "Lead not in program"),
    ]


def test_coerce() -> None:
    assert coerce("boolean", "false") is False
    assert coerce("boolean", "TRUE") is True
    assert coerce("boolean", "") is None
    with pytest.raises(ValueError):
        coerce("boolean", "null-ish")
    assert coerce("integer", "42") == 42
    assert coerce("integer", 3.0) == 3
    with pytest.raises(ValueError):
        coerce("integer", True)
    assert coerce("datetime", "2024-01-02T03:04:05+01:00") == "2024-01-02T02:04:05Z"
    assert coerce("date", "2024-01-02") == "2024-01-02"
    assert coerce("currency", "1.5") == 1.5
    with pytest.raises(ValueError):
        coerce("string", "x" * 5, 4)


def test_family_schema_is_created_and_survives_reset(tmp_path) -> None:
    sql = "CREATE TABLE IF NOT EXISTS core_test_family (id INTEGER PRIMARY KEY);"
    store = Store(tmp_path / "r.db", schemas=[sql])
    store.db.conn().execute("INSERT INTO core_test_family VALUES (1)")
    store.reset()
    assert store.db.conn().execute("SELECT COUNT(*) FROM core_test_family").fetchone()[0] == 0


def test_member_upsert_without_changes_keeps_updated_at(store: Store) -> None:
    rows = {m["leadId"]: m for m in store.members.dump(1001)}
    lead = next(lead for lead, m in rows.items() if m["statusName"] == "Attended")
    email = next(x["email"] for x in store.leads.dump() if x["id"] == lead)
    lead_before = next(x for x in store.leads.dump() if x["id"] == lead)["updatedAt"]
    store.clock.advance(3600)
    [(status, lead_id, why)] = store.members.upsert(1001, "Invited", [{"email": email}])
    assert (status, lead_id) == ("updated", lead)
    assert "already in or past" in why
    after = {m["leadId"]: m for m in store.members.dump(1001)}[lead]
    assert after["updatedAt"] == rows[lead]["updatedAt"]
    assert after["statusName"] == "Attended"
    assert next(x for x in store.leads.dump() if x["id"] == lead)["updatedAt"] == lead_before


def test_demo_template_holds_the_demo_seed(tmp_path) -> None:
    template = demo_template()
    assert template == demo_template()  # built once per key
    copy = tmp_path / "copy.db"
    copy.write_bytes(template.read_bytes())
    store = Store(copy)
    assert store.db.get_meta("seed_demo")
    assert len(store.leads.dump()) == 2000
    seed.apply(store, "demo")  # what the server does next: nothing to add
    assert len(store.leads.dump()) == 2000
