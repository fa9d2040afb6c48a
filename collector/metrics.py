"""Process metrics in Prometheus text format: counters with an optional source label, plus gauges
computed at scrape time and a flush-latency summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

HELP = {
    "magpie_events_accepted_total": "Events acknowledged (durable in the spool)",
    "magpie_events_rejected_total": "Events refused with a reason (stored in rejected_events)",
    "magpie_events_deduplicated_total": "Repeated messageIds dropped by the writer",
    "magpie_events_dropped_total": "Events a pipeline step dropped (acknowledged, not stored), by reason",
    "magpie_events_suppressed_total": "Events carrying a suppressed identifier (acknowledged, not stored)",
    "magpie_events_stored_total": "Events inserted into ClickHouse",
    "magpie_events_store_rejected_total": "Events ClickHouse refused at insert (kept in rejected_events)",
    "magpie_requests_total": "Tracking requests by HTTP status",
    "magpie_store_write_failures_total": "Failed attempts to write a chunk to ClickHouse",
    "magpie_job_runs_total": "Background job runs",
    "magpie_job_failures_total": "Background job failures",
    "magpie_destination_sends_total": "Destination requests",
    "magpie_destination_failures_total": "Failed destination requests",
}


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self.gauges: dict[str, Callable[[], float]] = {}
        self._source_keys: dict[str, tuple[tuple[str, str], ...]] = {}
        self.flush_seconds_sum = 0.0
        self.flush_count = 0

    def inc(self, name: str, source: str = "", amount: float = 1, **labels: str) -> None:
        key = _key(source, labels) if labels else self._source_key(source)
        series = self.counters[name]
        series[key] = series.get(key, 0) + amount

    def _source_key(self, source: str) -> tuple[tuple[str, str], ...]:
        """The label key of a series labelled by source only (cached: every request needs one)."""
        key = self._source_keys.get(source)
        if key is None:
            if len(self._source_keys) > 10_000:
                self._source_keys.clear()
            key = self._source_keys[source] = _key(source, {})
        return key

    def value(self, name: str, source: str = "", **labels: str) -> float:
        return self.counters.get(name, {}).get(_key(source, labels), 0)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read

    def observe_flush(self, seconds: float) -> None:
        self.flush_seconds_sum += seconds
        self.flush_count += 1

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self.counters.items()):
            lines += [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} counter"]
            for labels, value in sorted(series.items()):
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")
        typed: set[str] = set()
        for name, read in sorted(self.gauges.items()):
            base = name.split("{", 1)[0]  # a labelled gauge: `name{label="v"}`, one TYPE line per name
            lines += [] if base in typed else [f"# TYPE {base} gauge"]
            typed.add(base)
            lines.append(f"{name} {read():g}")
        lines += [
            "# TYPE magpie_flush_latency_seconds summary",
            f"magpie_flush_latency_seconds_sum {self.flush_seconds_sum:g}",
            f"magpie_flush_latency_seconds_count {self.flush_count}",
        ]
        return "\n".join(lines) + "\n"


def _key(source: str, labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(({"source": source} if source else {}).items() | labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
