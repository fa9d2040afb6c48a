"""Segment's analytics-node and RudderStack's rudder-sdk-node, unchanged, against the collector.

The packages are pinned in tests/sdk/node/package-lock.json and installed from the lock on first use.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.server import ServerProcess

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_sdks() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are required for the SDK compatibility tests")
    if not (NODE_DIR / "node_modules" / "@segment" / "analytics-node").exists():
        subprocess.run(
            # `npm install`, not `ci`: it installs the locked versions but tolerates the platform-specific
            # optional packages (msgpackr-extract-*) that npm leaves out of a lock written on Linux.
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return NODE_DIR


def _send(node_dir: Path, sdk: str, server: ServerProcess, write_key: str, run_id: str) -> None:
    result = subprocess.run(["node", "send.mjs", sdk, server.url, write_key, run_id], cwd=node_dir,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0 and "sent" in result.stdout, result.stderr


def _events_of(server: ServerProcess, source_id: str, count: int) -> list[dict[str, object]]:
    return server.wait_for_events(source_id, count)


def test_segment_analytics_node(node_sdks: Path, server: ServerProcess) -> None:
    source = server.create_source("analytics-node")
    run_id = uuid.uuid4().hex[:8]
    _send(node_sdks, "segment", server, source["write_key"], run_id)
    events = _events_of(server, source["id"], 3)
    kinds = sorted(str(e["type"]) for e in events)
    assert kinds == ["identify", "page", "track"]
    track = next(e for e in events if e["type"] == "track")
    assert track["userId"] == f"node-{run_id}" and track["properties"] == {"total": 7}
    assert track["context"]["library"]["name"] == "@segment/analytics-node"  # type: ignore[index]


def test_rudderstack_node_sdk(node_sdks: Path, server: ServerProcess) -> None:
    source = server.create_source("rudder-node")
    run_id = uuid.uuid4().hex[:8]
    _send(node_sdks, "rudder", server, source["write_key"], run_id)
    events = _events_of(server, source["id"], 2)
    track = next(e for e in events if e["type"] == "track")
    assert track["event"] == "Rudder Order" and track["userId"] == f"rudder-{run_id}"
