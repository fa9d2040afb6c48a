"""The ingestion core: one parsed request in, durable records and a verdict out.

Thin by design (split the request into items → normalise each → run the pipeline → spool →
answer). The tracking API, the beacon and the pixel all call `Ingestor.intake`, so every
transport parses the same event the same way. Whatever an item holds, it ends as a stored row,
a counted drop or a rejection with a reason: never an exception for the whole request.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from collector.body import MAX_BATCH_EVENTS, dump, pruned
from collector.metrics import Metrics
from collector.normalize import Defaults, Event, Rejection, message_id_of, normalize
from collector.pipeline import SUPPRESSED, RequestFacts, Step, build_row
from collector.records import EVENT, REJECTED, encode
from collector.spool import Spool
from collector.timestamps import iso

MAX_REJECTED_PAYLOAD = 8 * 1024


@dataclass(frozen=True)
class Intake:
    """One request, as every transport hands it over.

    `raw` is the (decompressed) request body when there is one: a single event keeps it as its raw
    copy, so the common path serialises nothing twice."""

    body: Any
    facts: RequestFacts
    path_type: str | None
    raw: bytes | None = None
    historical: bool = False


@dataclass
class Verdict:
    """What to answer: accepted count and rejected items (index, messageId, reason)."""

    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"success": True, "rejected": self.rejected} if self.rejected else {"success": True}


def split(
    body: Any, path_type: str | None, raw_body: bytes | None
) -> tuple[list[tuple[Any, bytes]], Defaults]:
    """(item, raw bytes) pairs plus the batch defaults. An item orjson cannot serialise (nested past
    255 levels) gets empty raw bytes; normalisation then refuses it as too deep."""
    if path_type is None and isinstance(body, dict) and isinstance(body.get("batch"), list):
        return [(item, dump(item) or b"") for item in body["batch"]], Defaults.of(body)
    return [(body, raw_body if raw_body is not None else dump(body) or b"")], Defaults()


class Ingestor:
    def __init__(self, spool: Spool, steps: list[Step], metrics: Metrics) -> None:
        self.spool, self.steps, self.metrics = spool, steps, metrics
        self._boot = os.urandom(6).hex()
        self._counter = itertools.count()

    def _ingest_id(self) -> str:
        return f"{self._boot}{next(self._counter):x}"

    async def intake(self, request: Intake) -> Verdict:
        received_at = datetime.now(UTC)
        pairs, defaults = split(request.body, request.path_type, request.raw)
        source_id = request.facts.source.id
        verdict, payloads = Verdict(), []
        for index, (item, raw) in enumerate(pairs):
            outcome = self._outcome(index, item, raw, defaults, request, received_at)
            if isinstance(outcome, Rejection):
                payloads.append(self.rejected_record(source_id, outcome, index, item, raw, received_at))
                verdict.rejected.append(
                    {"index": index, "messageId": outcome.message_id, "reason": outcome.reason}
                )
            elif outcome is not None:
                payloads.append(outcome)
                verdict.accepted += 1
        self.spool.check_room(sum(len(p) for p in payloads))
        if payloads:
            await self.spool.append(payloads)
        self._count(source_id, verdict)
        return verdict

    def _outcome(
        self, index: int, item: Any, raw: bytes, defaults: Defaults, request: Intake, received_at: datetime
    ) -> bytes | Rejection | None:
        """A spool record for an accepted item, a rejection, or None for a counted drop."""
        if index >= MAX_BATCH_EVENTS:
            limit = f"a batch holds at most {MAX_BATCH_EVENTS} events"
            return Rejection("batch_limit_exceeded", limit, message_id_of(item))
        outcome = normalize(item, raw, defaults, received_at, request.path_type, request.historical)
        if isinstance(outcome, Rejection):
            return outcome
        return self._accepted(outcome, request.facts)

    def _accepted(self, event: Event, facts: RequestFacts) -> bytes | Rejection | None:
        ingest_id, message_id = self._ingest_id(), event.message["messageId"]
        try:
            draft = build_row(event, facts, self.steps, ingest_id)
            row = orjson.dumps(draft.row) if not draft.dropped else b""
        except orjson.JSONEncodeError as exc:
            return Rejection("unserializable", f"the event cannot be stored as JSON: {exc}", message_id)
        for step in draft.failures:
            self.metrics.inc("magpie_enrichment_failures_total", facts.source.id, step=step)
        if draft.dropped:
            self.metrics.inc("magpie_events_dropped_total", facts.source.id, reason=draft.dropped)
            if draft.dropped == SUPPRESSED:
                self.metrics.inc("magpie_events_suppressed_total", facts.source.id)
            return None
        return encode(EVENT, facts.source.id, message_id, ingest_id, row)

    def rejected_record(
        self, source_id: str, rejection: Rejection, index: int, item: Any, raw: bytes, received_at: datetime
    ) -> bytes:
        ingest_id = self._ingest_id()
        payload = raw or orjson.dumps(pruned(item))
        row = {
            "source_id": source_id,
            "received_at": iso(received_at),
            "reason": rejection.reason,
            "detail": rejection.detail,
            "batch_index": index,
            "message_id": rejection.message_id,
            "payload": payload[:MAX_REJECTED_PAYLOAD].decode("utf-8", errors="replace"),
            "ingest_id": ingest_id,
        }
        return encode(REJECTED, source_id, "", ingest_id, orjson.dumps(row))

    def _count(self, source_id: str, verdict: Verdict) -> None:
        if verdict.accepted:
            self.metrics.inc("magpie_events_accepted_total", source_id, verdict.accepted)
        if verdict.rejected:
            self.metrics.inc("magpie_events_rejected_total", source_id, len(verdict.rejected))
