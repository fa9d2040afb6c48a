"""Once per deployment start, before any web process: migrations, the admin token, the default
source, and the first-start banner (stdout, shown once)."""

from __future__ import annotations

import asyncio
import sys

from activation.admin.auth import TokenStore
from activation.admin.sources import SourceStore
from activation.db import Database
from clickhouse.client import ClickHouseTarget, connect
from clickhouse.migrations import migrate
from magpie.settings import Settings


def announce(
    admin_secret: str | None, default_source: dict[str, object] | None, base_url: str, clickhouse_url: str
) -> None:
    """First start: tell a newcomer what they need, once (stdout, not the logs)."""
    if admin_secret is None and default_source is None:
        return
    lines = ["", "Magpie is ready."]
    if admin_secret:
        lines.append(f"  Admin token (shown once, stored hashed): {admin_secret}")
    if default_source:
        sid = default_source["id"]
        lines += [
            f"  Default source write key: {default_source['write_key']}",
            f"  Try it:   curl -u {default_source['write_key']}: {base_url}/v1/track "
            '-d \'{"userId":"u1","event":"Hello"}\'',
            f"  Debugger: {base_url}/admin/v1/sources/{sid}/events",
            f"  Snippet:  {base_url}/admin/v1/sources/{sid}/snippet",
        ]
    lines.append(f"  API docs: {base_url}/admin/v1/openapi.json")
    if clickhouse_url:
        lines.append(f"  ClickHouse (HTTP, database magpie; for BI tools): {clickhouse_url}")
    print("\n".join([*lines, ""]), file=sys.stdout, flush=True)


async def bootstrap(settings: Settings, clickhouse_display: str = "") -> None:
    target = ClickHouseTarget.from_url(settings.clickhouse_url, settings.clickhouse_cluster)
    await asyncio.to_thread(migrate, target)
    client = connect(target)
    try:
        db = Database(client)
        admin_secret = await TokenStore(db).bootstrap(settings.admin_token)
        default_source = await SourceStore(db).ensure_default()
    finally:
        client.close()
    announce(admin_secret, default_source, settings.base_url, clickhouse_display)
