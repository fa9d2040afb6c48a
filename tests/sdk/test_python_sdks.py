"""Segment's and RudderStack's Python SDKs, unchanged, pointed at the real collector."""

from __future__ import annotations

import uuid

from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.server import ServerProcess


def _expect(server: ServerProcess, source_id: str, ids: list[str]) -> dict[str, dict[str, object]]:
    events = server.wait_for_ids(source_id, ids)
    return {str(e["messageId"]): e for e in events if e["messageId"] in ids}


def test_segment_analytics_python(server: ServerProcess) -> None:
    source = server.create_source("analytics-python")
    errors: list[object] = []
    for gzip in (False, True):
        client = SegmentClient(
            source["write_key"],
            host=server.url,
            gzip=gzip,
            sync_mode=True,
            on_error=lambda e, batch: errors.append(e),
        )
        ids = [str(uuid.uuid4()) for _ in range(4)]
        client.identify("user-py", {"email": "py@example.com", "plan": "pro"}, message_id=ids[0])
        client.track("user-py", "Order Completed", {"revenue": 42.5}, message_id=ids[1])
        client.page("user-py", "Docs", "Install", {"url": "https://x.example/docs"}, message_id=ids[2])
        client.alias("old-anon", "user-py", message_id=ids[3])
        client.flush()
        stored = _expect(server, source["id"], ids)
        assert not errors
        assert stored[ids[0]]["traits"] == {"email": "py@example.com", "plan": "pro"}
        assert (
            stored[ids[1]]["properties"] == {"revenue": 42.5} and stored[ids[1]]["event"] == "Order Completed"
        )
        assert stored[ids[2]]["type"] == "page" and stored[ids[2]]["name"] == "Install"
        assert stored[ids[3]]["previousId"] == "old-anon"
        library = stored[ids[1]]["context"]["library"]  # type: ignore[index]
        assert library["name"] == "analytics-python"  # type: ignore[index]


def test_rudderstack_python_sdk(server: ServerProcess) -> None:
    source = server.create_source("rudder-python")
    errors: list[object] = []
    client = RudderClient(
        source["write_key"], host=server.url, sync_mode=True, on_error=lambda e, batch: errors.append(e)
    )
    ids = [str(uuid.uuid4()) for _ in range(3)]
    client.identify("user-rs", {"email": "rs@example.com"}, message_id=ids[0])
    client.track("user-rs", "Product Viewed", {"sku": "A1"}, message_id=ids[1])
    client.screen("user-rs", "Home", message_id=ids[2])
    client.flush()
    stored = _expect(server, source["id"], ids)
    assert not errors
    assert stored[ids[1]]["properties"] == {"sku": "A1"}
    assert stored[ids[2]]["type"] == "screen"
