"""Keys-only export files, read once for the tap's removal check and the target's mirror."""

import pytest
from marketo_common.program_member_export import ExportError, keys_file_rows


def rows(tmp_path, text, program_ids, columns=("leadId",), **kwargs):
    path = tmp_path / "keys.csv"
    path.write_bytes(text.encode("utf-8"))
    return list(keys_file_rows(path, program_ids, columns, label="keys-only export X", **kwargs))


def test_a_bom_does_not_hide_the_programid_column(tmp_path):
    """With the BOM read as text, program 2's members were given to program 1."""
    text = "\ufeffprogramId,leadId,statusName\n1,5,Member\n2,6,Invited\n"
    got = rows(tmp_path, text, [1, 2], ("leadId", "statusName"))
    assert got == [(1, 5, "Member"), (2, 6, "Invited")]


def test_no_programid_column_is_the_one_program_or_refused(tmp_path):
    assert rows(tmp_path, "leadId\n5\n6\n", [7]) == [(7, 5), (7, 6)]
    with pytest.raises(ExportError, match="no programId column in a file covering several"):
        rows(tmp_path, "leadId\n5\n", [7, 8])


def test_rows_of_programs_not_asked_for_are_skipped(tmp_path):
    assert rows(tmp_path, "programId,leadId\n1,5\n3,6\n1,7\n", [1]) == [(1, 5), (1, 7)]


def test_a_missing_column_is_named(tmp_path):
    with pytest.raises(ExportError, match="no statusName column"):
        rows(tmp_path, "programId,leadId\n1,5\n", [1], ("leadId", "statusName"))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("programId,leadId\n1,5\n1\n", 3),  # short row
        ("programId,leadId\n1,5\n1,null\n", 3),  # not a leadId
        ('programId,leadId\n1,5\n1,"6\n', 3),  # unclosed quote (strict csv)
    ],
    ids=["short", "null", "quote"],
)
def test_a_bad_row_names_the_file_and_line(tmp_path, text, line):
    with pytest.raises(ExportError, match=rf"^keys-only export X: line {line}: "):
        rows(tmp_path, text, [1])


def test_bad_utf8_is_an_export_error(tmp_path):
    path = tmp_path / "keys.csv"
    path.write_bytes(b"programId,leadId\n1,5\n\xff\xfe,6\n")
    with pytest.raises(ExportError, match="keys-only export X"):
        list(keys_file_rows(path, [1], label="keys-only export X"))


def test_nul_is_stripped_when_the_download_saw_one(tmp_path):
    text = "programId,leadId,statusName\n1,5,Mem\x00ber\n"
    got = rows(tmp_path, text, [1], ("leadId", "statusName"), has_nul=True)
    assert got == [(1, 5, "Member")]
