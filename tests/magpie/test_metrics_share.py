"""The deployment-wide /metrics: snapshots of every process summed."""

from __future__ import annotations

import time

from collector.metrics import Metrics
from magpie.metrics_share import merge, snapshot


def test_snapshots_of_several_processes_sum_per_series() -> None:
    web0, web1 = Metrics(), Metrics()
    web0.inc("magpie_events_accepted_total", "src_a", 3)
    web1.inc("magpie_events_accepted_total", "src_a", 4)
    web1.inc("magpie_events_accepted_total", "src_b", 1)
    web1.inc("magpie_job_runs_total", job="identity_stitch")
    web0.gauge("magpie_spool_depth_bytes", lambda: 100.0)
    web1.gauge("magpie_spool_depth_bytes", lambda: 23.0)
    web0.observe_flush(0.5)
    total = merge([snapshot(web0), snapshot(web1)])
    assert total.value("magpie_events_accepted_total", "src_a") == 7
    assert total.value("magpie_events_accepted_total", "src_b") == 1
    assert total.value("magpie_job_runs_total", job="identity_stitch") == 1
    text = total.render()
    assert "magpie_spool_depth_bytes 123" in text
    assert "magpie_flush_latency_seconds_count 1" in text
    assert snapshot(web0)["at"] <= time.time()
