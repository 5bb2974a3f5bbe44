"""CSV parsing: nulls, exact booleans, converters per column, hard values, NUL, bounds."""

import csv

import pytest
from marketo_common.fields import csv_bool as to_bool
from marketo_common.fields import csv_int as to_int
from tap_marketo_members.parsing import CHUNK_ROWS, ExportParseError, MemberFileParser

from .support import PARSING_PROPS, parsed

PROPS = PARSING_PROPS
HEADER = ["programId", "leadId", "updatedAt", "reachedSuccess", "score", "note"]


def write(tmp_path, rows, header=HEADER, name="f.csv"):
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def parse(path, **kw):
    parser = MemberFileParser(PROPS, {h: h for h in HEADER})
    return parsed(parser, path, label="test", **kw), parser


def test_types_nulls_and_hard_values(tmp_path):
    hard = 'a, "quoted", comma,\nnew line\r\nCRLF \u2028 sep \u00e9\u00e8 \U0001f600'
    path = write(
        tmp_path,
        [
            ["1001", "7", "2024-01-02T03:04:05Z", "false", "1.5", hard],
            ["1001", "8", "null", "TRUE", "null", "null"],
            ["1001", "9", "2024-01-02T03:04:05.000+00:00", "null", "", ""],
        ],
    )
    records, _ = parse(path)
    assert records[0] == {
        "programId": 1001,
        "leadId": 7,
        "updatedAt": "2024-01-02T03:04:05Z",
        "reachedSuccess": False,
        "score": 1.5,
        "note": hard,
    }
    assert records[1]["reachedSuccess"] is True
    assert records[1]["updatedAt"] is None
    assert records[1]["note"] is None
    assert records[1]["score"] is None
    assert records[2]["updatedAt"] == "2024-01-02T03:04:05Z"
    assert records[2]["note"] == ""
    assert records[2]["score"] is None


def test_booleans_exact():
    assert to_bool("false") is False
    assert to_bool(" False ") is False
    assert to_bool("true") is True
    with pytest.raises(ValueError):
        to_bool("yes")
    assert to_int("12.0") == 12
    with pytest.raises(ValueError):
        to_int("1.5")


def test_bad_value_names_row_and_file(tmp_path):
    path = write(tmp_path, [["1001", "x", "null", "true", "1", "a"]])
    with pytest.raises(
        ExportParseError, match=r"test: record ending on line 2, program 1001, column leadId"
    ):
        parse(path)


def test_unknown_column_named(tmp_path):
    path = write(tmp_path, [["1"]], header=["Lead Id"])
    with pytest.raises(ExportParseError, match="Lead Id"):
        parse(path)


def test_nul_stripped_and_counted(tmp_path, caplog):
    path = write(tmp_path, [["1001", "7", "null", "true", "1", "a\x00b\x00"]])
    records, parser = parse(path, has_nul=True)
    assert records[0]["note"] == "ab"
    assert parser.nul_stripped == 2
    assert "stripped 2 NUL" in caplog.text


def test_bounds_half_open(tmp_path):
    rows = [
        ["1001", "1", "2024-01-01T00:00:00Z", "null", "null", "null"],
        ["1001", "2", "2024-01-01T12:00:00Z", "null", "null", "null"],
        ["1001", "3", "2024-01-02T00:00:00Z", "null", "null", "null"],
    ]
    path = write(tmp_path, rows)
    first, _ = parse(path, lower="2024-01-01T00:00:00Z", upper="2024-01-02T00:00:00Z")
    second, _ = parse(path, lower="2024-01-02T00:00:00Z", upper="2024-01-03T00:00:00Z")
    assert [r["leadId"] for r in first] == [1, 2]
    assert [r["leadId"] for r in second] == [3]


def test_program_id_added_for_single_program_file(tmp_path):
    header = ["leadId", "updatedAt"]
    path = write(tmp_path, [["5", "null"]], header=header)
    parser = MemberFileParser(PROPS, {})
    assert parsed(parser, path, label="t", program_id=42) == [
        {"leadId": 5, "updatedAt": None, "programId": 42}
    ]
    with pytest.raises(ExportParseError, match="programId"):
        parsed(parser, path, label="t")


def test_short_row_is_a_clear_error(tmp_path):
    path = write(tmp_path, [["1001", "7"]])
    with pytest.raises(ExportParseError, match="line 2 has 2 values for 6 columns"):
        parse(path)


def test_bad_value_after_multiline_rows_names_its_own_line(tmp_path):
    """Rows are converted a chunk at a time; a bad row's line still counts the breaks before it."""
    good = ["1001", "1", "2024-01-01T00:00:00Z", "true", "1.5", "two\nlines\r\nand CRLF"]
    rows = [good] * 3 + [["1001", "x", "null", "true", "1", "a"]] + [good] * CHUNK_ROWS
    path = write(tmp_path, rows)
    # header line 1; each good row spans 3 lines; the bad row is the next line, mid-chunk
    line = 1 + 3 * 3 + 1
    with pytest.raises(ExportParseError, match=rf"record ending on line {line}, program 1001"):
        parse(path)


def test_chunk_with_bounds_nulls_and_tolerant_values_matches_row_by_row(tmp_path):
    """The column pass and the row-by-row path give the same records, filtered the same."""
    rows = []
    for i in range(3 * 256):
        stamp = "null" if i % 7 == 0 else f"2024-01-0{1 + i % 3}T00:00:00Z"
        rows.append(["1001", str(i), stamp, ["true", "null", ""][i % 3], "null", f"n{i}"])
    rows[600][1] = "600.0"  # tolerated by the row-by-row path only
    path = write(tmp_path, rows)
    records, _ = parse(path, lower="2024-01-02T00:00:00Z", upper="2024-01-03T00:00:00Z")
    expected = [
        {
            "programId": 1001,
            "leadId": i,
            "updatedAt": "2024-01-02T00:00:00Z",
            "reachedSuccess": [True, None, None][i % 3],
            "score": None,
            "note": f"n{i}",
        }
        for i in range(3 * 256)
        if i % 7 != 0 and i % 3 == 1
    ]
    assert records == expected
