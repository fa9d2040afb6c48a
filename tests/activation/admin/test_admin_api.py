"""The admin API basics over HTTP: tokens and scopes, sources CRUD, errors, OpenAPI, health."""

from __future__ import annotations

from tests.server import ServerProcess


def test_no_admin_route_without_a_valid_token(server: ServerProcess) -> None:
    for method, path in [
        ("GET", "/sources"),
        ("POST", "/sources"),
        ("GET", "/tokens"),
        ("GET", "/sources/x/events"),
    ]:
        response = server.http.request(method, "/admin/v1" + path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        wrong = server.http.request(method, "/admin/v1" + path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_scoped_tokens_and_revocation(server: ServerProcess) -> None:
    created = server.admin("POST", "/tokens", json={"name": "reader", "scopes": ["read"]})
    assert created.status_code == 201
    secret = created.json()["token"]
    reader = {"Authorization": f"Bearer {secret}"}
    assert server.http.get("/admin/v1/sources", headers=reader).status_code == 200
    forbidden = server.http.post("/admin/v1/sources", headers=reader, json={"name": "x"})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    listed = server.admin("GET", "/tokens").json()["data"]
    assert secret not in str(listed) and any(t["name"] == "reader" for t in listed)
    assert server.admin("DELETE", f"/tokens/{created.json()['id']}").status_code == 204
    assert server.http.get("/admin/v1/sources", headers=reader).status_code == 401
    bad = server.admin("POST", "/tokens", json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 400 and "scopes" in bad.json()["error"]["fields"]


def test_sources_crud_and_validation(server: ServerProcess) -> None:
    source = server.create_source("crud", ip_policy="truncate", allowed_origins=["https://a.example"])
    assert source["ip_policy"] == "truncate" and source["enabled"] is True and len(source["write_key"]) >= 24
    fetched = server.admin("GET", f"/sources/{source['id']}").json()
    assert fetched["allowed_origins"] == ["https://a.example"]
    patched = server.admin(
        "PATCH", f"/sources/{source['id']}", json={"name": "renamed", "rate_limit_per_s": 50}
    )
    assert patched.json()["name"] == "renamed" and patched.json()["rate_limit_per_s"] == 50
    invalid = server.admin("POST", "/sources", json={"name": "", "ip_policy": "hide", "bogus": 1})
    assert invalid.status_code == 400
    assert set(invalid.json()["error"]["fields"]) == {"name", "ip_policy", "bogus"}
    assert server.admin("DELETE", f"/sources/{source['id']}").status_code == 204
    assert server.admin("GET", f"/sources/{source['id']}").status_code == 404
    assert server.admin("POST", "/sources", content=b"{oops").status_code == 400


def test_sources_list_cursor_walks_everything_once(server: ServerProcess) -> None:
    made = {server.create_source(f"list-{i}")["id"] for i in range(7)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = server.admin("GET", "/sources", params=params).json()
        seen += [s["id"] for s in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))


def test_openapi_health_and_metrics(server: ServerProcess) -> None:
    spec = server.http.get("/admin/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/admin/v1/sources/{id}/events" in spec["paths"]
    assert {"post", "get"} <= set(spec["paths"]["/admin/v1/audiences"])
    assert "get" in spec["paths"]["/admin/v1/audiences/{audience_id}/explain"]
    assert server.http.get("/healthz").json() == {"status": "ok"}
    assert server.http.get("/readyz").json() == {"status": "ready"}
    metrics = server.http.get("/metrics").text
    assert "magpie_spool_depth_bytes" in metrics and "magpie_flush_latency_seconds_count" in metrics


def test_snippet_is_html_with_the_write_key(server: ServerProcess) -> None:
    source = server.create_source("snippet")
    response = server.admin("GET", f"/sources/{source['id']}/snippet")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert source["write_key"] in response.text and server.url in response.text


def test_tag_is_served_with_hash_etag_and_gzip(server: ServerProcess) -> None:
    plain = server.http.get("/tag.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.headers["etag"]
    zipped = server.http.get("/tag.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content
    cached = server.http.get("/tag.js", headers={"If-None-Match": plain.headers["etag"]})
    assert cached.status_code == 304
    digest = plain.headers["etag"].strip('"')
    immutable = server.http.get(f"/tag.{digest}.js")
    assert immutable.status_code == 200 and "immutable" in immutable.headers["cache-control"]
    assert server.http.get("/tag.0000.js").status_code == 404
