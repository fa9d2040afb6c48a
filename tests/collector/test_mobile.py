"""Mobile SDK payloads (gzip batches, their headers, lifecycle events, context.app/device/os/network)
are accepted and land in the right typed columns of the events table."""

from __future__ import annotations

import base64
import gzip
import uuid
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest

from tests.collector.mobile_payloads import SDKS, batch_for
from tests.processes import StoreProcess
from tests.server import ServerProcess

COLUMNS = (
    "app_version, app_build, os_name, os_version, device_type, device_model, device_manufacturer, "
    "device_id, advertising_id, ad_tracking_enabled, network_wifi, network_carrier, screen_width, library_name"
)


@pytest.fixture(scope="module")
def mobile_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Send every SDK's batch to a dedicated server, stop it, and read the typed columns back."""
    server = ServerProcess(tmp_path_factory.mktemp("mobile") / "data").start()
    source = server.create_source("mobile")
    prefixes: dict[str, str] = {}
    for name, sdk in SDKS.items():
        prefixes[name] = f"{name}-{uuid.uuid4().hex[:6]}"
        body = orjson.dumps(batch_for(name, source["write_key"], prefixes[name]))
        headers = {
            **sdk["headers"],
            "Authorization": "Basic " + base64.b64encode(f"{source['write_key']}:".encode()).decode(),
        }
        if sdk["gzip"]:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        response = server.http.post(sdk["path"], content=body, headers=headers)
        assert response.status_code == 200 and response.json() == {"success": True}, (name, response.text)
    server.wait_for_events(source["id"], 5 * len(SDKS))
    server.stop()
    return {"rows": _read_columns(server.data_dir, source["id"]), "prefixes": prefixes}


def _read_columns(data_dir: Path, source_id: str) -> dict[str, dict[str, Any]]:
    """Read the stopped server's data back through a fresh `magpie clickhouse` on its data dir."""
    store = StoreProcess(data_dir).start()
    try:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=store.port, database="magpie")
        result = client.query(
            f"SELECT message_id, type, event, {COLUMNS} FROM events WHERE source_id = {{s:String}}",
            parameters={"s": source_id},
        )
        return {row[0]: dict(zip(result.column_names, row, strict=True)) for row in result.result_rows}
    finally:
        store.stop()


@pytest.mark.parametrize("name", list(SDKS))
def test_mobile_sdk_batches_fill_typed_columns(mobile_run: dict[str, Any], name: str) -> None:
    rows, prefix = mobile_run["rows"], mobile_run["prefixes"][name]
    context = SDKS[name]["context"]()
    mine = {k: v for k, v in rows.items() if k.startswith(prefix)}
    assert sorted(mine) == [f"{prefix}-{i}" for i in range(1, 6)]
    assert [mine[f"{prefix}-{i}"]["event"] for i in (1, 2, 5)] == [
        "Application Installed",
        "Application Opened",
        "Application Backgrounded",
    ]
    assert mine[f"{prefix}-3"]["type"] == "screen"
    row = mine[f"{prefix}-2"]
    device, app, os_ = context["device"], context["app"], context["os"]
    assert (row["app_version"], row["app_build"]) == (app["version"], app["build"])
    assert (row["os_name"], row["os_version"]) == (os_["name"], os_["version"])
    assert (row["device_type"], row["device_model"]) == (device["type"], device["model"])
    assert (row["device_id"], row["advertising_id"]) == (device["id"], device["advertisingId"])
    assert row["ad_tracking_enabled"] == int(device["adTrackingEnabled"])
    assert row["network_wifi"] == int(context["network"]["wifi"])
    assert row["screen_width"] == context["screen"]["width"]
    assert row["library_name"] == context["library"]["name"]
