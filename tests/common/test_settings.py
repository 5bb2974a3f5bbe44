from __future__ import annotations

import pytest
from marketo_common import ConfigError, MarketoSettings

from common.common_fakes import SECRET

GOOD = {"base_url": "https://123-abc-456.mktorest.com", "client_id": "cid", "client_secret": SECRET}


def make(**overrides):
    return MarketoSettings.from_config({**GOOD, **overrides})


@pytest.mark.parametrize(
    "given",
    [
        "https://123-ABC-456.mktorest.com",
        "https://123-ABC-456.mktorest.com/",
        "https://123-ABC-456.mktorest.com/rest",
        "https://123-ABC-456.mktorest.com/rest/",
        "https://123-ABC-456.mktorest.com/identity",
        " https://123-ABC-456.mktorest.com/identity/ ",
    ],
)
def test_base_url_normalised(given):
    assert make(base_url=given).base_url == "https://123-ABC-456.mktorest.com"


def test_munchkin_id_derived_from_host():
    assert make().munchkin_id == "123-ABC-456"


def test_munchkin_id_given_is_normalised_and_checked_against_host():
    assert make(munchkin_id="123-abc-456").munchkin_id == "123-ABC-456"
    with pytest.raises(ConfigError, match="munchkin_id"):
        make(munchkin_id="999-XYZ-999")
    with pytest.raises(ConfigError, match="munchkin_id"):
        make(munchkin_id="not-an-id")


def test_localhost_may_have_no_munchkin_id_or_take_one_from_config():
    local = make(base_url="http://127.0.0.1:8123")
    assert local.munchkin_id is None
    assert (
        make(base_url="http://localhost:9", munchkin_id="123-ABC-456").munchkin_id == "123-ABC-456"
    )


def test_defaults():
    s = make()
    assert s.ingestion_base_url == "https://mkto-ingestion-api.adobe.io"
    assert (s.rate_limit_calls, s.rate_limit_period, s.max_concurrent_calls) == (100, 20.0, 10)
    assert s.request_timeout[0] > 0
    assert s.request_timeout[1] > 0


@pytest.mark.parametrize(
    "url",
    ["http://123-ABC-456.mktorest.com", "http://example.com/rest", "http://10.0.0.5:8000"],
)
def test_plain_http_refused_for_remote_hosts(url):
    with pytest.raises(ConfigError) as info:
        make(base_url=url)
    text = str(info.value)
    assert "base_url" in text
    assert "https" in text
    assert "\n" not in text
    assert info.value.setting == "base_url"


def test_plain_http_refused_for_remote_ingestion_url():
    with pytest.raises(ConfigError, match="ingestion_base_url"):
        make(ingestion_base_url="http://mkto-ingestion-api.adobe.io")
    assert make(ingestion_base_url="http://127.0.0.1:9/").ingestion_base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("base_url", None),
        ("base_url", "ftp://x.mktorest.com"),
        ("base_url", "123-ABC-456.mktorest.com"),
        ("base_url", 42),
        ("client_id", ""),
        ("client_secret", None),
        ("max_retries", -1),
        ("max_retries", "many"),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("request_timeout_seconds", 0),
        ("request_timeout", [1]),
        ("max_concurrent_calls", 0),
        ("rate_limit_period", "soon"),
    ],
)
def test_each_bad_setting_is_one_line_naming_it(key, value):
    with pytest.raises(ConfigError) as info:
        make(**{key: value})
    text = str(info.value)
    assert key in text
    assert "\n" not in text
    assert SECRET not in text


def test_secret_not_in_repr_nor_in_errors():
    s = make()
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    with pytest.raises(ConfigError) as info:
        make(client_secret=["not", "a", "string", SECRET])
    assert SECRET not in str(info.value)


def test_timeouts_and_numbers_parsed():
    assert make(request_timeout_seconds=45).request_timeout == (10.0, 45.0)
    assert make(request_timeout_seconds=3).request_timeout == (3.0, 3.0)
    assert make(request_timeout=[2, 30]).request_timeout == (2.0, 30.0)
    assert make(max_retries="4").max_retries == 4
    assert make(max_retries=0).max_retries == 0


def test_unknown_keys_belong_to_the_connector():
    assert make(start_date="2024-01-01", streams={}).client_id == "cid"


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{SECRET}@example.com",
        f"https://123-ABC-456.mktorest.com/rest?access_token={SECRET}",
        f"ftp://u:{SECRET}@x",
        "http://[::1",
    ],
)
def test_url_with_credentials_or_query_refused_without_echo(url):
    with pytest.raises(ConfigError) as info:
        make(base_url=url)
    assert "base_url" in str(info.value)
    assert SECRET not in str(info.value)
