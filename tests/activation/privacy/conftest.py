"""Fixtures for privacy tests: the shared ClickHouse, an in-process Redis, the job context with the
privacy wiring (collector forget paths included, as the composition root adds them), and `seed`,
which writes one person into every table that can hold personal data."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier, profile_id_for
from activation.privacy.registry import ACTIVATION_PATHS, HOLDS_NO_PERSONAL_DATA, ForgetPath, by_pairs
from activation.privacy.wiring import PrivacyWiring
from collector import forget as collector_forget
from tests.services import job_ctx

SECRET_KEY = "test-secret-key-for-privacy-0123456789"


def wiring(data_dir: Path) -> PrivacyWiring:
    collector = ForgetPath(("events", "rejected_events"), by_pairs(collector_forget.forget))
    return PrivacyWiring(data_dir=data_dir, paths=(*ACTIVATION_PATHS, collector))


KNOWN_TABLES = wiring(Path()).tables() | set(HOLDS_NO_PERSONAL_DATA)


@pytest.fixture
def ctx(ch: Client, redis: aioredis.Redis, tmp_path: Path) -> dict[str, Any]:
    return {**job_ctx(ch, redis, secret_key=SECRET_KEY), "privacy": wiring(tmp_path)}


@dataclass(frozen=True)
class Seeded:
    email: str
    user_id: str
    anonymous_id: str
    device_id: str
    profile_id: str
    absorbed_profile_id: str
    run_id: str = ""
    crm_id: str = ""

    def values(self) -> list[str]:
        return [self.email, self.user_id, self.anonymous_id, self.device_id, self.profile_id, self.crm_id]


def person_values(tag: str) -> Seeded:
    u = uuid.uuid4().hex[:10]
    email = f"{tag}-{u}@example.com"
    return Seeded(
        email, f"user-{tag}-{u}", f"anon-{tag}-{u}", f"dev-{tag}-{u}",
        profile_id_for(Identifier("email", email)), f"absorbed-{tag}-{u}", f"run-{uuid.uuid4().hex}",
        f"hs{tag}{u}",
    )  # fmt: skip


def _event(p: Seeded, n: int, anonymous_only: bool = False) -> dict[str, Any]:
    raw = {"type": "identify", "userId": "" if anonymous_only else p.user_id, "anonymousId": p.anonymous_id,
           "traits": {"email": p.email.upper()}, "messageId": f"m-{p.anonymous_id}-{n}"}  # fmt: skip
    now = datetime.now(UTC)
    return {
        "source_id": "src_privacy", "message_id": raw["messageId"], "type": "identify",
        "user_id": raw["userId"], "anonymous_id": p.anonymous_id, "device_id": p.device_id if n == 2 else "",
        "timestamp": now, "original_timestamp": now, "received_at": now,
        "traits": orjson.dumps(raw["traits"]).decode(), "raw": orjson.dumps(raw).decode(), "context": "{}",
    }  # fmt: skip


def seed(ch: Client, p: Seeded) -> None:
    """One row (or more) for the person in every table that holds personal data."""
    now, v = datetime.now(UTC), time.time_ns()
    events = [_event(p, 0), _event(p, 1, anonymous_only=True), _event(p, 2)]
    ch.insert("events", [list(e.values()) for e in events[:1]], column_names=list(events[0]))
    for e in events[1:]:
        ch.insert("events", [list(e.values())], column_names=list(e))
    ch.insert("events", [["src_privacy", f"other-{p.email}", "track", "anon-x", now, now, now,
                          orjson.dumps({"properties": {"invited": p.email}}).decode()]],
              column_names=["source_id", "message_id", "type", "anonymous_id", "timestamp",
                            "original_timestamp", "received_at", "raw"])  # fmt: skip
    ch.insert("rejected_events", [["src_privacy", now, "invalid", "bad", 0, "m", f'{{"email":"{p.email}"}}', "i"]],
              column_names=["source_id", "received_at", "reason", "detail", "batch_index", "message_id",
                            "payload", "ingest_id"])  # fmt: skip
    pairs = [
        ("anonymous_id", p.anonymous_id),
        ("email", p.email),
        ("user_id", p.user_id),
        ("device_id", p.device_id),
        ("ext:hubspot_contact_id", p.crm_id),
    ]
    ch.insert("identity_links", [[sorted(pairs), now, "m", "src_privacy", "identify"]],
              column_names=["ids", "timestamp", "message_id", "source_id", "kind"])  # fmt: skip
    ch.insert(
        "identity_map",
        [[t, val, p.profile_id, v, 0] for t, val in pairs],
        column_names=["identifier_type", "identifier_value", "profile_id", "version", "deleted"],
    )
    ch.insert("identity_splits", [["split-" + p.user_id, "email", p.email, 0, p.profile_id, "r", now, v, 0]],
              column_names=["split_id", "identifier_type", "identifier_value", "side", "profile_id", "reason",
                            "created_at", "version", "deleted"])  # fmt: skip
    ch.insert("identity_conflicts", [["px", "c-" + p.user_id, p.profile_id, "email", p.email, "user_id", "u",
                                      "rule", "d", "identify", "m", "s", now, v, 0]],
              column_names=["profile_id", "conflict_id", "other_profile_id", "a_type", "a_value", "b_type",
                            "b_value", "rule", "detail", "kind", "message_id", "source_id", "timestamp",
                            "version", "deleted"])  # fmt: skip
    ch.insert("merge_ledger", [[p.profile_id, "l-" + p.user_id, [p.absorbed_profile_id], "email", p.email,
                                "anonymous_id", p.anonymous_id, "rule", "identify", "m", "s", now, v, 0]],
              column_names=["profile_id", "ledger_id", "merged_profile_ids", "a_type", "a_value", "b_type",
                            "b_value", "rule", "kind", "message_id", "source_id", "timestamp", "version",
                            "deleted"])  # fmt: skip
    ch.insert(
        "identity_records",
        [["rec-" + p.user_id, "b", [("email", p.email)], '{"name": "Ann"}', now, v, 0]],
        column_names=["record_id", "batch_id", "ids", "traits", "imported_at", "version", "deleted"],
    )
    ch.insert("identity_proposals", [["pr-" + p.user_id, "rec-" + p.user_id, p.absorbed_profile_id, "other", 0.9,
                                      p.email, "open", now, None, v, 0]],
              column_names=["proposal_id", "record_id", "profile_id", "candidate_profile_id", "score", "detail",
                            "status", "created_at", "decided_at", "version", "deleted"])  # fmt: skip
    ch.insert(
        "profile_traits",
        [
            [p.profile_id, "email", p.email, "s", now, v, 0],
            [p.absorbed_profile_id, "name", "Ann", "s", now, v, 0],
        ],
        column_names=["profile_id", "trait", "value", "source_id", "updated_at", "version", "deleted"],
    )
    ch.insert("profiles", [[p.profile_id, now, now, 3, 1, 0.0, 0, v, 0]],
              column_names=["profile_id", "first_seen", "last_seen", "event_count", "session_count",
                            "lifetime_revenue", "is_bot", "version", "deleted"])  # fmt: skip
    ch.insert(
        "profile_computed_traits",
        [[p.profile_id, "orders", 2.0, now, v, 0]],
        column_names=["profile_id", "name", "value", "computed_at", "version", "deleted"],
    )
    ch.insert(
        "audience_snapshots",
        [["aud_privacy", now, p.profile_id]],
        column_names=["audience_id", "computed_at", "profile_id"],
    )
    ch.insert(
        "audience_membership_changes",
        [["aud_privacy", p.profile_id, "entered", now - timedelta(days=1)]],
        column_names=["audience_id", "profile_id", "change", "at"],
    )
    ch.insert("sync_state", [["dst_privacy_gone", "aud_privacy", p.profile_id, "absent", "r", now, v]],
              column_names=["destination_id", "audience_id", "profile_id", "status", "run_id", "updated_at",
                            "version"])  # fmt: skip
    ch.insert("sync_dead_letters", [[p.run_id, "dst_privacy_gone", "aud_privacy", p.profile_id, "entered",
                                     f"rejected {p.email}", 1, "dead", now, v]],
              column_names=["run_id", "destination_id", "audience_id", "profile_id", "change", "reason",
                            "permanent", "status", "created_at", "version"])  # fmt: skip
    ch.insert("sync_runs", [[p.run_id, "dst_privacy_gone", "aud_privacy", "scheduled", now, now,
                             "partial", 0, 0, 1, 5, [f"invalid email {p.email}", "timeout"], v]],
              column_names=["id", "destination_id", "audience_id", "trigger", "started_at", "finished_at",
                            "status", "added", "removed", "failed", "duration_ms", "errors", "version"])  # fmt: skip
    seed_wave2(ch, p, now, v)


def seed_wave2(ch: Client, p: Seeded, now: datetime, v: int) -> None:
    """The CRM and event-forwarding tables (0007, 0008); the incremental profile states (0009) are
    filled from the seeded events by their materialized views."""
    ch.insert("crm_trait_state", [["dst_crm", p.profile_id, "email", f'"{p.email}"', "r", v]],
              column_names=["destination_id", "profile_id", "field", "value", "run_id", "version"])  # fmt: skip
    label = f"ext:hubspot_contact_id:{p.crm_id}"
    ch.insert("crm_objects", [["src_crm", "deals", f"deal-{p.run_id}", '{"amount": 5}', [label, "ext:hubspot_company_id:9"], 0, v]],
              column_names=["source_id", "object", "object_id", "properties", "targets", "deleted", "version"])  # fmt: skip
    ch.insert("crm_pull_runs", [[f"pull-{p.run_id}", "src_crm", "manual", now, None, "partial", 1, 0, 0, 0, 0, 1,
                                 [f"contact {p.email} refused", "throttled"], v]],
              column_names=["id", "source_id", "trigger", "started_at", "finished_at", "status", "fetched", "created",
                            "updated", "merged", "deleted", "errors", "messages", "version"])  # fmt: skip
    item = orjson.dumps({"m": "m1", "p": p.user_id, "e": {"properties": {"invitee": p.email}}}).decode()
    ch.insert("event_dead_letters", [["dst_fwd", f"dl-{p.run_id}", "conn", "m1", p.user_id, item, "400", "dead", now, v],
                                     ["dst_fwd", f"dl2-{p.run_id}", "conn", "m2", "someone-else", item, "400", "dead", now, v]],
              column_names=["destination_id", "id", "connection_id", "message_id", "person", "item", "reason", "status",
                            "created_at", "version"])  # fmt: skip


async def seed_redis(redis: aioredis.Redis, p: Seeded) -> None:
    await redis.set(f"magpie:profile:0:id:email:{p.email}", p.profile_id)
    await redis.set(f"magpie:profile:0:doc:{p.profile_id}", orjson.dumps({"traits": {"email": p.email}}))
    await redis.set(f"arq:job:{uuid.uuid4().hex}", msgpack.packb({"f": "x", "a": [p.user_id]}))
    await redis.lpush("magpie:jobs:failed", orjson.dumps({"args": [p.email]}), b"unrelated entry")
