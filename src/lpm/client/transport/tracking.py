"""Tracking parameters LivePerson asks SDKs to put on socket URLs (``intid``, ``intvn``...)."""

from __future__ import annotations

from urllib.parse import urlencode


def tracking_query(app_id: str | None, app_version: str | None) -> str:
    """``intid=lpm-python-sdk&intvn=<version>&appid=<app_id|unknown>&appvn=<app_version|unknown>``."""
    from lpm._version import __version__

    return urlencode(
        {
            "intid": "lpm-python-sdk",
            "intvn": __version__,
            "appid": app_id or "unknown",
            "appvn": app_version or "unknown",
        }
    )
