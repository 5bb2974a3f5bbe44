"""The private singer-sdk names the tap relies on (tap_marketo_members/sdk.py) still exist and
still behave as the tap expects: an SDK upgrade that moves one fails here, not in a sync."""

from __future__ import annotations

from tap_marketo_members import sdk


def test_batch_config_parses_the_standard_setting(tmp_path):
    config = sdk.BatchConfig.from_dict(
        {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": tmp_path.as_uri(), "prefix": "pm-"},
            "batch_size": 7,
        }
    )
    assert config.encoding.format == "jsonl"
    assert config.encoding.compression == "gzip"
    assert config.batch_size == 7
    assert config.storage.prefix == "pm-"
    with config.storage.open("probe.json", "wb") as handle:
        handle.write(b"{}\n")
    url = config.storage.get_url("probe.json")
    assert url.startswith("file://")
    assert url.endswith("/probe.json")
    assert (tmp_path / "probe.json").read_bytes() == b"{}\n"
