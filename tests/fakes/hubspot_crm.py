"""Fake HubSpot CRM for pulls and trait sync: the audience fake (tests/fakes/hubspot.py) plus search,
archived listing, associations, merges and batch update, over contacts, companies and deals.

Enforces: a current Bearer token (401 EXPIRED_AUTHENTICATION); search bodies with at most 5 filter
groups × 6 filters, `limit` ≤ 200, and no paging past `search_cap` results (`after + limit > cap` is a
400, as HubSpot's 10,000-result limit); at most `search_per_s` searches per second per account (429
TEN_SECONDLY_ROLLING without rate-limit headers, which search never sends); `archived=true` lists
only archived records, `limit` ≤ 100; association batch reads of ≤ 1000 ids; batch update ≤ 100
inputs, unknown ids reported per input (207 OBJECT_NOT_FOUND). Every change moves the object's
modification property (`lastmodifieddate`, or `hs_lastmodifieddate` for companies and deals).
A merge removes the loser (no archived copy) and appends its id to the survivor's
`hs_merged_object_ids`. `throttle` faults take `interval_ms` (the X-HubSpot-RateLimit header).
"""

from __future__ import annotations

import itertools
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.base import Fault
from tests.fakes.hubspot import FakeHubSpot, hs_error

TYPES = ("contacts", "companies", "deals")
OPERATORS = {
    "GTE": lambda a, b: a >= b,
    "LTE": lambda a, b: a <= b,
    "GT": lambda a, b: a > b,
    "LT": lambda a, b: a < b,
    "EQ": lambda a, b: a == b,
}


def modified_prop(kind: str) -> str:
    return "lastmodifieddate" if kind == "contacts" else "hs_lastmodifieddate"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ms(value: str) -> int:
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


class FakeHubSpotCrm(FakeHubSpot):
    def __init__(self, *, search_cap: int = 10_000, search_per_s: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.search_cap, self.search_per_s = search_cap, search_per_s
        self.objects: dict[str, dict[str, dict[str, str]]] = {
            "contacts": self.contacts,
            "companies": {},
            "deals": {},
        }
        self.archived: dict[str, dict[str, int]] = {t: {} for t in TYPES}
        self.assoc: dict[tuple[str, str], dict[str, set[str]]] = {}
        self.clock_ms = int(time.time() * 1000) - 86_400_000
        self._searches: list[float] = []
        self._ids = itertools.count(secrets.randbelow(10**9) * 1000 + 1000)  # portals' ids never collide

    # -- control API -------------------------------------------------------------------------------
    def tick(self) -> int:
        """The platform's clock: real time (records changed in one burst share a millisecond)."""
        self.clock_ms = max(self.clock_ms, int(time.time() * 1000))
        return self.clock_ms

    def touch(self, kind: str, record_id: str, at_ms: int | None = None) -> None:
        self.clock_ms = at_ms if at_ms is not None else self.tick()
        self.objects[kind][record_id][modified_prop(kind)] = iso(self.clock_ms)

    def put(self, kind: str, props: dict[str, str], at_ms: int | None = None) -> str:
        record_id = str(self.next_id())
        self.objects[kind][record_id] = {k: str(v) for k, v in props.items()} | {"hs_object_id": record_id}
        self.touch(kind, record_id, at_ms)
        return record_id

    def update(self, kind: str, record_id: str, **props: str) -> None:
        self.objects[kind][record_id].update(props)
        self.touch(kind, record_id)

    def associate(self, kind: str, record_id: str, to: str, to_id: str) -> None:
        self.assoc.setdefault((kind, to), {}).setdefault(record_id, set()).add(to_id)
        self.assoc.setdefault((to, kind), {}).setdefault(to_id, set()).add(record_id)

    def archive(self, kind: str, record_id: str) -> None:
        del self.objects[kind][record_id]
        self.archived[kind][record_id] = self.tick()

    def merge(self, kind: str, primary: str, loser: str) -> None:
        """POST /crm/v3/objects/{kind}/merge: the loser disappears, the survivor lists it."""
        gone = self.objects[kind].pop(loser)
        merged = [m for m in self.objects[kind][primary].get("hs_merged_object_ids", "").split(";") if m]
        extra = [m for m in gone.get("hs_merged_object_ids", "").split(";") if m]
        self.objects[kind][primary]["hs_merged_object_ids"] = ";".join([*merged, loser, *extra])
        self.touch(kind, primary)

    # -- routes ------------------------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        super().add_routes(router)
        router.add_post("/crm/v3/objects/{kind}/search", self.search)
        router.add_get("/crm/v3/objects/{kind}", self.list_objects)
        router.add_post("/crm/v3/objects/{kind}/batch/update", self.batch_update)
        router.add_post("/crm/v3/associations/{kind}/{to}/batch/read", self.associations)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        response = super().throttle_response(fault)
        response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(
            fault.params.get("interval_ms", 10_000)
        )
        return response

    def _upsert_one(self, item: dict[str, Any]) -> dict[str, Any]:
        outcome = super()._upsert_one(item)
        if outcome.get("id"):
            self.touch("contacts", str(outcome["id"]))
        return outcome

    def _kind(self, request: web.Request) -> str | None:
        kind = request.match_info["kind"]
        return kind if kind in TYPES else None

    def _search_throttled(self) -> bool:
        now = time.monotonic()
        self._searches = [t for t in self._searches if now - t < 1.0]
        if len(self._searches) >= self.search_per_s:
            return True
        self._searches.append(now)
        return False

    async def search(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._body(request)
        kind = self._kind(request)
        if problem is not None or kind is None:
            return problem or hs_error(404, "OBJECT_NOT_FOUND", "unknown object type")
        if self._search_throttled():
            return hs_error(429, "RATE_LIMITS", "You have reached your secondly limit.", errorType="RATE_LIMIT",
                            policyName="SECONDLY")  # fmt: skip
        groups, limit, after = (
            body.get("filterGroups", []),
            int(body.get("limit", 10)),
            int(body.get("after") or 0),
        )
        if len(groups) > 5 or any(len(g.get("filters", [])) > 6 for g in groups) or not 1 <= limit <= 200:
            return hs_error(400, "VALIDATION_ERROR", "too many filters or limit out of range")
        if after + limit > self.search_cap:
            return hs_error(400, "VALIDATION_ERROR", f"search cannot page beyond {self.search_cap} results")
        found = [(rid, p) for rid, p in self.objects[kind].items() if self._matches(p, groups)]
        sort = (body.get("sorts") or [{"propertyName": "hs_object_id"}])[0]["propertyName"]
        found.sort(key=lambda item: (ms(item[1].get(sort, "0")) if "date" in sort else 0, int(item[0])))
        page = found[after : after + limit]
        wanted = set(body.get("properties") or ["email"]) | {"hs_object_id", modified_prop(kind)}
        results = [self._shape(rid, p, wanted) for rid, p in page]
        doc: dict[str, Any] = {"total": len(found), "results": results}
        if after + limit < len(found):
            doc["paging"] = {"next": {"after": str(after + limit)}}
        return web.json_response(doc)

    def _matches(self, props: dict[str, str], groups: list[dict[str, Any]]) -> bool:
        if not groups:
            return True
        return any(all(self._filter(props, f) for f in g.get("filters", [])) for g in groups)

    def _filter(self, props: dict[str, str], f: dict[str, Any]) -> bool:
        value = props.get(f["propertyName"])
        if value is None:
            return False
        op = OPERATORS[f["operator"]]
        if "date" in f["propertyName"]:
            return bool(op(ms(value), ms(str(f["value"]))))
        return bool(op(value, str(f["value"])))

    def _shape(self, rid: str, props: dict[str, str], wanted: set[str]) -> dict[str, Any]:
        kind_props = {k: v for k, v in props.items() if k in wanted}
        updated = next((v for k, v in props.items() if k.endswith("lastmodifieddate")), "")
        return {
            "id": rid,
            "properties": kind_props,
            "createdAt": updated,
            "updatedAt": updated,
            "archived": False,
        }

    async def list_objects(self, request: web.Request) -> web.StreamResponse:
        kind = self._kind(request)
        if not self.bearer_ok(request) or kind is None:
            return self.auth_error_response() if kind else hs_error(404, "OBJECT_NOT_FOUND", "unknown type")
        limit, after = int(request.query.get("limit", "10")), int(request.query.get("after", "0"))
        if not 1 <= limit <= 100:
            return hs_error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        if request.query.get("archived") == "true":
            rows = [{"id": rid, "properties": {"hs_object_id": rid}, "archived": True, "archivedAt": iso(at)}
                    for rid, at in sorted(self.archived[kind].items(), key=lambda x: int(x[0]))]  # fmt: skip
        else:
            rows = [self._shape(rid, p, set(p)) for rid, p in sorted(self.objects[kind].items())]
        doc: dict[str, Any] = {"results": rows[after : after + limit]}
        if after + limit < len(rows):
            doc["paging"] = {"next": {"after": str(after + limit), "link": "..."}}
        return web.json_response(doc)

    async def associations(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._body(request)
        if problem is not None:
            return problem
        inputs = body.get("inputs") or []
        if len(inputs) > 1000:
            return hs_error(400, "VALIDATION_ERROR", "at most 1000 inputs")
        table = self.assoc.get((request.match_info["kind"], request.match_info["to"]), {})
        results = [
            {
                "from": {"id": str(i["id"])},
                "to": [{"id": t, "type": "association"} for t in sorted(table[str(i["id"])])],
            }
            for i in inputs
            if table.get(str(i["id"]))
        ]
        return web.json_response({"status": "COMPLETE", "results": results})

    async def batch_update(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._body(request)
        kind = self._kind(request)
        inputs: Any = body.get("inputs")
        problem = problem or self._inputs_problem(inputs)
        if problem is not None or kind is None:
            return problem or hs_error(404, "OBJECT_NOT_FOUND", "unknown type")
        results, missing = [], []
        for item in inputs:
            rid = str(item.get("id"))
            if rid not in self.objects[kind]:
                missing.append(rid)
                continue
            self.objects[kind][rid].update(
                {k: "" if v is None else str(v) for k, v in (item.get("properties") or {}).items()}
            )
            self.touch(kind, rid)
            results.append({"id": rid, "properties": dict(self.objects[kind][rid])})
        if not missing:
            return web.json_response({"status": "COMPLETE", "results": results})
        error = {"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": missing},
                 "message": "Could not get some objects, they may be deleted or not exist."}  # fmt: skip
        return web.json_response(
            {"status": "COMPLETE", "results": results, "errors": [error], "numErrors": 1}, status=207
        )
