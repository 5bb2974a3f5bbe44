"""Data Ingestion bodies: 1000 objects and 1 MB, lead references counted across programs,
413 split, correlation ids, retries, fatal errors. Against a mocked Marketo (exact bodies)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time

import pytest
import requests_mock
from marketo_common import MarketoClient
from singer_sdk.plugin_base import _ConfigInput
from target_helpers import record, run_target, schema, state
from target_marketo_ingest.errors import TargetError
from target_marketo_ingest.target import TargetMarketoIngest

BASE = "https://123-ABC-456.mktorest.com"
INGEST = "https://ingest.example.com"
LEAD_SCHEMA = {"properties": {"email": {"type": "string"}, "firstName": {"type": "string"}}}
MEMBER_SCHEMA = {"properties": {"leadId": {"type": "integer"}, "programId": {"type": "integer"}}}


@pytest.fixture
def marketo():
    with requests_mock.Mocker() as mock:
        mock.post(
            f"{BASE}/identity/oauth/token", json={"access_token": "tok-123", "expires_in": 3600}
        )
        fields = [
            {"name": "email", "dataType": "email", "length": 255, "updateable": True},
            {"name": "firstName", "dataType": "string", "length": 2_000_000, "updateable": True},
        ]
        program = {
            "success": True,
            "result": [{"id": 1, "progressionStatuses": [{"name": "Member"}]}],
        }
        mock.get(requests_mock.ANY, json=program)  # any program: statuses ["Member"]
        describe = {"success": True, "result": [{"fields": fields}]}
        mock.get(f"{BASE}/rest/v1/leads/describe2.json", json=describe)
        yield mock


def _config(tmp_path, **extra):
    config = {
        "client_id": "cid",
        "client_secret": "sec",
        "base_url": BASE,
        "munchkin_id": "123-ABC-456",
        "ingestion_base_url": INGEST,
        "rejects_path": str(tmp_path / "rejects.jsonl"),
        "max_retries": 2,
        "streams": {
            # The mock models the ingestion endpoints only: no read-back (test_verify*.py).
            "people": {"method": "ingest_persons", "verify": False},
            "pm": {
                "method": "ingest_program_members",
                "status": "Member",
                "priority": "high",
                "verify": False,
            },
        },
    }
    config.update(extra)
    return config


def _bodies(mock, suffix):
    return [r for r in mock.request_history if r.url.startswith(INGEST) and r.path.endswith(suffix)]


def test_persons_packed_to_1000_objects(marketo, tmp_path):
    marketo.post(
        f"{INGEST}/subscriptions/123-ABC-456/persons",
        status_code=202,
        headers={"X-Request-Id": "r"},
    )
    lines = [schema("people", LEAD_SCHEMA)]
    lines += [record("people", {"email": f"p{i}@x.com"}) for i in range(2500)]
    run = run_target(_config(tmp_path), lines)
    sent = _bodies(marketo, "/persons")
    assert sorted(len(json.loads(r.body)["persons"]) for r in sent) == [500, 1000, 1000]
    assert run.summary("people")["accepted"] == 2500
    ids = [r.headers["X-Correlation-Id"] for r in sent]
    assert len(set(ids)) == 3
    assert all("target-marketo-ingest" in r.headers["X-Request-Source"] for r in sent)
    assert all(r.headers["X-Mkto-User-Token"] == "tok-123" for r in sent)
    assert all("tok-123" not in r.url for r in sent)


def test_persons_packed_to_one_megabyte(marketo, tmp_path):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/persons", status_code=202)
    lines = [schema("people", LEAD_SCHEMA)]
    lines += [
        record("people", {"email": f"p{i}@x.com", "firstName": "n" * 3000}) for i in range(700)
    ]
    lines.append(record("people", {"email": "huge@x.com", "firstName": "h" * 1_100_000}))
    run = run_target(_config(tmp_path), lines)
    sizes = [len(r.body) for r in _bodies(marketo, "/persons")]
    assert len(sizes) == 3
    assert all(size <= 1_000_000 for size in sizes)
    assert sorted(sizes)[-2] > 950_000  # packed tight, not by a fixed count
    summary = run.summary("people")
    assert summary["accepted"] == 700
    assert summary["rejected_by_reason"] == {"record_too_large": 1}
    assert run.rejects[0]["line"] == 702


def test_program_members_count_lead_references_across_programs(marketo, tmp_path):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/programmembers", status_code=202)
    lines = [schema("pm", MEMBER_SCHEMA)]
    for i in range(1, 601):
        lines.append(record("pm", {"leadId": i, "programId": 1001}))
        lines.append(record("pm", {"leadId": i, "programId": 1002}))
    run = run_target(_config(tmp_path), lines)
    sent = [json.loads(r.body) for r in _bodies(marketo, "/programmembers")]
    counts = [sum(len(p["members"]) for p in body["programs"]) for body in sent]
    assert sorted(counts) == [200, 1000]  # requests run in parallel: order not fixed
    full = sent[counts.index(1000)]
    assert {p["programId"] for p in full["programs"]} == {1001, 1002}
    assert all(p["status"] == "Member" for body in sent for p in body["programs"])
    assert all(set(body) == {"programs"} for body in sent)  # the page's table: no priority
    assert run.summary("pm")["accepted"] == 1200


def test_413_splits_the_batch(marketo, tmp_path):
    def reply(request, context):
        if len(request.body) > 20_000:
            context.status_code = 413
            return {"error_code": "4130801", "message": "Request Entity Too Large"}
        context.status_code = 202
        return None

    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/persons", json=reply)
    lines = [schema("people", LEAD_SCHEMA)]
    lines += [
        record("people", {"email": f"p{i}@x.com", "firstName": "n" * 100}) for i in range(500)
    ]
    run = run_target(_config(tmp_path), lines)
    assert run.summary("people")["accepted"] == 500
    assert run.summary("people")["rejected"] == 0


def test_5xx_is_retried(marketo, tmp_path, monkeypatch):
    monkeypatch.setattr(MarketoClient, "backoff_factor", 0.01)
    marketo.post(
        f"{INGEST}/subscriptions/123-ABC-456/persons",
        [
            {"status_code": 500, "json": {"error_code": "5000801", "message": "internal"}},
            {"status_code": 429, "json": {"error_code": "429001", "message": "slow down"}},
            {"status_code": 202},
        ],
    )
    lines = [schema("people", LEAD_SCHEMA), record("people", {"email": "a@x.com"}), state({"s": 1})]
    run = run_target(_config(tmp_path), lines)
    assert run.summary("people")["accepted"] == 1
    assert run.states == [{"s": 1}]


def test_permission_error_stops_without_state(marketo, tmp_path, caplog):
    marketo.post(
        f"{INGEST}/subscriptions/123-ABC-456/persons",
        status_code=403,
        json={"error_code": "4030801", "message": "no permission"},
    )
    lines = [schema("people", LEAD_SCHEMA), record("people", {"email": "a@x.com"}), state({"s": 1})]
    target = TargetMarketoIngest(config=_config(tmp_path))
    out = io.StringIO()
    data = io.BytesIO("".join(json.dumps(m) + "\n" for m in lines).encode())
    with (
        pytest.raises(TargetError, match="4030801"),
        caplog.at_level(logging.INFO),
        contextlib.redirect_stdout(out),
    ):
        target.listen(data)
    assert out.getvalue() == ""  # the record has no outcome, so STATE must not move


def _invoke(config, lines, caplog):
    data = io.BytesIO("".join(json.dumps(m) + "\n" for m in lines).encode())
    code = 0
    with caplog.at_level(logging.INFO), contextlib.redirect_stdout(io.StringIO()):
        try:
            TargetMarketoIngest.invoke(config=_ConfigInput(config=config), file_input=data)
        except SystemExit as exc:
            code = exc.code
    return code


@pytest.mark.parametrize(
    ("threshold", "expected_exit"),
    [(None, 0), (0, 1), (1, 1), (2, 0), ("2", 0), ("1", 1), (0.5, 0), (0.2, 1)],
)
def test_fail_on_rejects_threshold(marketo, tmp_path, caplog, threshold, expected_exit):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/persons", status_code=202)
    lines = [schema("people", LEAD_SCHEMA)]
    lines += [record("people", {"email": f"p{i}@x.com"}) for i in range(4)]
    lines += [record("people", {"email": ""}), record("people", {"email": None})]  # 2 of 6
    config = _config(tmp_path, fail_on_rejects=threshold)
    assert _invoke(config, lines, caplog) == expected_exit
    if expected_exit:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("2 of 6 records rejected" in e and "fail_on_rejects" in e for e in errors)


def test_summary_log_and_metric_line(marketo, tmp_path, caplog):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/persons", status_code=202)
    lines = [schema("people", LEAD_SCHEMA)]
    lines += [record("people", {"email": f"p{i % 3}@x.com"}) for i in range(5)]
    lines.append(record("people", {"email": 5}))
    assert _invoke(_config(tmp_path), lines, caplog) == 0
    metrics = [
        json.loads(r.getMessage().split("METRIC: ", 1)[1])
        for r in caplog.records
        if r.getMessage().startswith("METRIC: ") and "target_marketo_ingest" in r.getMessage()
    ]
    (metric,) = metrics
    value = metric["value"]
    assert value["received"] == 6
    assert value["accepted"] == 3
    assert value["superseded"] == 2
    assert value["rejected_by_reason"] == {"schema_mismatch": 1}
    assert value["requests"] == 1
    assert value["api_calls"] >= 1
    assert value["without_outcome"] == 0
    assert any("Summary for stream 'people'" in r.getMessage() for r in caplog.records)


def test_record_missing_a_key_property_is_rejected(marketo, tmp_path):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/persons", status_code=202)
    lines = [schema("people", LEAD_SCHEMA, ["email", "firstName"])]
    lines += [record("people", {"email": "a@x.com", "firstName": "A"})]
    lines += [record("people", {"email": "b@x.com"})]
    run = run_target(_config(tmp_path), lines)
    assert run.summary("people")["accepted"] == 1
    (reject,) = run.rejects
    assert (reject["reason"], reject["field"], reject["line"]) == (
        "missing_key_property",
        "firstName",
        3,
    )


def test_config_file_floats_arrive_as_decimal_and_are_accepted(marketo, tmp_path):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/persons", status_code=202)
    config = _config(tmp_path, poll_interval_seconds=0.05, max_import_file_mb=0.5)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    input_path = tmp_path / "input.jsonl"
    lines = [schema("people", LEAD_SCHEMA), record("people", {"email": "f@x.com"})]
    input_path.write_text("".join(json.dumps(m) + "\n" for m in lines))
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(io.StringIO()):
        TargetMarketoIngest.cli.main(
            ["--config", str(config_path), "--input", str(input_path)], standalone_mode=True
        )
    assert exit_info.value.code == 0
    assert len(_bodies(marketo, "/persons")) == 1


def test_stream_maps_take_the_generic_path(marketo, tmp_path):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/persons", status_code=202)
    config = _config(
        tmp_path,
        stream_maps={
            "people": {"firstName": "email.split('@')[0].upper()", "__filter__": "'x' not in email"}
        },
    )
    lines = [schema("people", LEAD_SCHEMA)]
    lines += [record("people", {"email": e}) for e in ("ann@a.com", "bob@b.com", "xavier@c.com")]
    run = run_target(config, lines)
    (sent,) = _bodies(marketo, "/persons")
    assert json.loads(sent.body)["persons"] == [
        {"email": "ann@a.com", "firstName": "ANN"},
        {"email": "bob@b.com", "firstName": "BOB"},
    ]
    assert run.summary("people")["accepted"] == 2


def test_a_later_request_with_the_same_member_waits_for_the_earlier(marketo, tmp_path, monkeypatch):
    events = []

    def slow_sync(request, context):
        events.append(("sync start", time.monotonic()))
        time.sleep(0.4)
        events.append(("sync end", time.monotonic()))
        context.status_code = 202

    def delete(request, context):
        events.append(("delete start", time.monotonic()))
        context.status_code = 202

    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/programmembers", json=slow_sync)
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/programmembers/delete", json=delete)
    monkeypatch.setattr(TargetMarketoIngest, "_MAX_RECORD_AGE_IN_MINUTES", 0.0)
    lines = [
        schema("pm", MEMBER_SCHEMA),
        record("pm", {"leadId": 7, "programId": 1001}),
        state({"s": 1}),  # an old pending STATE sends the open batch now
        record("pm", {"leadId": 7, "programId": 1001, "_sdc_deleted_at": "2026-01-01"}),
    ]
    run = run_target(_config(tmp_path), lines)
    assert run.summary("pm")["accepted"] == 2
    names = [name for name, _ in events]
    assert names == ["sync start", "sync end", "delete start"]


def test_sync_then_delete_in_open_batches_last_wins(marketo, tmp_path):
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/programmembers", status_code=202)
    marketo.post(f"{INGEST}/subscriptions/123-ABC-456/programmembers/delete", status_code=202)
    lines = [
        schema("pm", MEMBER_SCHEMA),
        record("pm", {"leadId": 7, "programId": 1001}),
        record("pm", {"leadId": 8, "programId": 1001}),
        record("pm", {"leadId": 7, "programId": 1001, "_sdc_deleted_at": "2026-01-01"}),
    ]
    run = run_target(_config(tmp_path), lines)
    (sync,) = _bodies(marketo, "/programmembers")
    (gone,) = _bodies(marketo, "/delete")
    assert json.loads(sync.body)["programs"][0]["members"] == [{"leadId": 8}]
    assert json.loads(gone.body)["programs"][0]["members"] == [{"leadId": 7}]
    assert run.summary("pm")["superseded"] == 1
