"""singer-sdk's standard tap tests against a demo sandbox.

`get_tap_test_class` discovers streams when the module is imported, so this module starts its
own sandbox at import and stops it when the module's tests are done.
"""

from __future__ import annotations

import atexit

import pytest
from marketo_sandbox.server import SandboxServer
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from tap_marketo_members.tap import TapMarketoMembers

from .conftest import TIME_SCALE
from .support import config_for

_SANDBOX = SandboxServer(seed="demo", time_scale=TIME_SCALE).start()
atexit.register(_SANDBOX.stop)

TestTapMarketoMembers = get_tap_test_class(
    TapMarketoMembers,
    config=config_for(_SANDBOX, program_ids=[1003, 1004]),
    suite_config=SuiteConfig(max_records_limit=200),
)


@pytest.fixture(scope="module", autouse=True)
def _stop_sandbox():
    yield
    _SANDBOX.stop()
