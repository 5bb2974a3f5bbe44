"""Shared constants and envelope builders for the marketo_common tests."""

from __future__ import annotations

BASE = "https://123-ABC-456.mktorest.com"
TOKEN_URL = BASE + "/identity/oauth/token"
SECRET = "s3cr3t-client-secret-value"
TOKEN_PREFIX = "tok-9f8e7d6c-"


def envelope(result=None, **extra):
    return {"requestId": "e42b#1", "success": True, "result": result or [], **extra}


def failure(code, message="failed"):
    return {
        "requestId": "e42b#2",
        "success": False,
        "errors": [{"code": str(code), "message": message}],
    }
