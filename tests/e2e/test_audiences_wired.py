"""The audience API is mounted in `magpie serve`, behind the admin tokens, and its run job executes
in the in-process worker."""

from __future__ import annotations

import time

from tests.server import ServerProcess


def test_audience_lifecycle_through_the_server(server: ServerProcess) -> None:
    assert server.http.get("/admin/v1/audiences").status_code == 401
    query = "event('Order Completed').within(30 days).count() >= 2 and trait('plan') = 'nobody-has-this-plan'"
    created = server.admin(
        "POST", "/audiences", json={"name": "Pro buyers", "key": "pro_buyers", "query": query}
    )
    assert created.status_code == 201, created.text
    audience = created.json()
    bad = server.admin(
        "POST", "/audiences", json={"name": "x", "key": "bad_one", "query": "trait('plan') =="}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_definition"
    assert server.admin("POST", f"/audiences/{audience['id']}/run").status_code in (200, 202)
    deadline = time.monotonic() + 30
    runs: list[object] = []
    while not runs and time.monotonic() < deadline:
        runs = server.admin("GET", f"/audiences/{audience['id']}/runs").json()["data"]
        time.sleep(0.5)
    assert runs, "the compute job never ran in the in-process worker"
    members = server.admin("GET", f"/audiences/{audience['id']}/members").json()
    assert members["data"] == [] and members["next_cursor"] is None
