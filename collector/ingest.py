"""The ingestion core: one parsed request in, durable records and a verdict out.

Thin by design (build request facts → normalise and enrich each event → spool → answer). The
HTTP shells in collector/http.py, beacon and pixel all end here, so every transport parses the
same event the same way.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from collector.body import MAX_BATCH_EVENTS
from collector.metrics import Metrics
from collector.normalize import Defaults, Event, Rejection, normalize
from collector.pipeline import RequestFacts, Step, build_row
from collector.records import EVENT, REJECTED, encode
from collector.row import object_at
from collector.spool import Spool
from collector.timestamps import iso

MAX_REJECTED_PAYLOAD = 8 * 1024


@dataclass
class Verdict:
    """What to answer: accepted count and rejected items (index, messageId, reason)."""

    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"success": True, "rejected": self.rejected} if self.rejected else {"success": True}


class Ingestor:
    def __init__(self, spool: Spool, steps: list[tuple[str, Step]], metrics: Metrics) -> None:
        self.spool, self.steps, self.metrics = spool, steps, metrics
        self._boot = os.urandom(6).hex()
        self._counter = itertools.count()

    def _ingest_id(self) -> str:
        return f"{self._boot}{next(self._counter):x}"

    def items(
        self, body: Any, path_type: str | None, raw_body: bytes | None = None
    ) -> tuple[list[tuple[Any, bytes]], Defaults]:
        """Split a request body into (item, raw bytes) pairs plus the batch-level defaults.

        A single event's raw copy is `raw_body`, the (decompressed) bytes it arrived as, when given.
        """
        if path_type is None and isinstance(body, dict) and isinstance(body.get("batch"), list):
            defaults = Defaults(
                object_at(body, "context"), object_at(body, "integrations"), body.get("sentAt")
            )
            return [(item, orjson.dumps(item)) for item in body["batch"]], defaults
        return [(body, raw_body if raw_body is not None else orjson.dumps(body))], Defaults()

    async def ingest(
        self,
        pairs: list[tuple[Any, bytes]],
        defaults: Defaults,
        facts: RequestFacts,
        path_type: str | None,
        historical: bool,
    ) -> Verdict:
        received_at = datetime.now(UTC)
        verdict, payloads = Verdict(), []
        for index, (item, raw) in enumerate(pairs):
            if index >= MAX_BATCH_EVENTS:
                outcome: Event | Rejection = Rejection(
                    "batch_limit_exceeded", f"a batch holds at most {MAX_BATCH_EVENTS} events"
                )
            else:
                outcome = normalize(item, raw, defaults, received_at, path_type, historical)
            if isinstance(outcome, Rejection):
                payloads.append(self.rejected_record(facts.source.id, outcome, index, raw, received_at))
                verdict.rejected.append(
                    {"index": index, "messageId": outcome.message_id, "reason": outcome.reason}
                )
            else:
                payloads.append(self._accepted(outcome, facts))
                verdict.accepted += 1
        self.spool.check_room(sum(len(p) for p in payloads))
        if payloads:
            await self.spool.append(payloads)
        self._count(facts.source.id, verdict)
        return verdict

    def _accepted(self, event: Event, facts: RequestFacts) -> bytes:
        ingest_id = self._ingest_id()
        failures: list[str] = []
        row = build_row(event, facts, self.steps, ingest_id, failures)
        for step in failures:
            self.metrics.inc("magpie_enrichment_failures_total", facts.source.id, step=step)
        return encode(EVENT, facts.source.id, event.message["messageId"], ingest_id, orjson.dumps(row))

    def rejected_record(
        self, source_id: str, rejection: Rejection, index: int, raw: bytes, received_at: datetime
    ) -> bytes:
        ingest_id = self._ingest_id()
        row = {
            "source_id": source_id,
            "received_at": iso(received_at),
            "reason": rejection.reason,
            "detail": rejection.detail,
            "batch_index": index,
            "message_id": rejection.message_id,
            "payload": raw[:MAX_REJECTED_PAYLOAD].decode("utf-8", errors="replace"),
            "ingest_id": ingest_id,
        }
        return encode(REJECTED, source_id, "", ingest_id, orjson.dumps(row))

    def _count(self, source_id: str, verdict: Verdict) -> None:
        if verdict.accepted:
            self.metrics.inc("magpie_events_accepted_total", source_id, verdict.accepted)
        if verdict.rejected:
            self.metrics.inc("magpie_events_rejected_total", source_id, len(verdict.rejected))
