"""MarketoBearerAuth as a singer-sdk authenticator; marketo_common itself never imports the SDK."""

from __future__ import annotations

import subprocess
import sys

import singer_sdk.typing as th
from marketo_common import MarketoBearerAuth, TokenManager
from singer_sdk import Tap
from singer_sdk.streams import RESTStream

from common.common_fakes import BASE, TOKEN_PREFIX, envelope


def make_tap(settings):
    auth = MarketoBearerAuth(TokenManager(settings))

    class LeadFields(RESTStream):
        name = "lead_fields"
        path = "/rest/v1/leads/describe2.json"
        url_base = BASE
        records_jsonpath = "$.result[*]"
        schema = th.PropertiesList(th.Property("name", th.StringType)).to_dict()

        @property
        def authenticator(self):
            return auth

    class DemoTap(Tap):
        name = "tap-demo"
        config_jsonschema = th.PropertiesList().to_dict()

        def discover_streams(self):
            return [LeadFields(self)]

    return DemoTap(config={}, validate_config=False)


def test_bearer_auth_plugs_into_a_singer_sdk_stream(settings, tokens, requests_mock):
    api = requests_mock.get(
        BASE + "/rest/v1/leads/describe2.json", json=envelope([{"name": "email"}])
    )
    stream = make_tap(settings).streams["lead_fields"]
    assert list(stream.get_records(None)) == [{"name": "email"}]
    assert api.last_request.headers["Authorization"] == f"Bearer {TOKEN_PREFIX}1"
    assert TOKEN_PREFIX not in api.last_request.url
    assert tokens.call_count == 1


def test_marketo_common_does_not_import_singer_sdk():
    code = "import sys, marketo_common; assert 'singer_sdk' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
