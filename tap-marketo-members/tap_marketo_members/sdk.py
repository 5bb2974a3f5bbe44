"""Every singer-sdk name this tap uses that the SDK does not export publicly, in one place.

`tests/tap/test_sdk_adapter.py` pins them, so an SDK upgrade that moves one fails that test
instead of failing a sync.
"""

from __future__ import annotations

from singer_sdk.helpers._batch import BatchConfig

__all__ = ["BatchConfig"]
