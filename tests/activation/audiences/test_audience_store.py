"""The audience store against real ClickHouse: one stored definition that no longer decodes must not
stop every other audience's streaming and scheduling (store.live feeds both)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from activation.audiences import store
from activation.audiences.parser import parse
from activation.audiences.store import Audience


def test_an_undecodable_definition_is_left_out_of_the_live_audiences(
    ch: Client, caplog: pytest.LogCaptureFixture
) -> None:
    now, ns = datetime.now(UTC), uuid.uuid4().hex[:8]
    good = store.save(
        ch, Audience(f"aud_{ns}_good", f"good-{ns}", "good", parse("trait('plan') = 'pro'")), now
    )
    row = [f"aud_{ns}_bad", f"bad-{ns}", "bad", '{"neither": 1}', [], 0, 0, 1, 0, now, now, time.time_ns()]
    ch.insert("audiences", [row], column_names=list(store.COLUMNS))
    ids = [a.id for a in store.live(ch)]
    assert good.id in ids and f"aud_{ns}_bad" not in ids  # before: live() raised for everyone
    assert f"audience aud_{ns}_bad has a definition that does not decode" in caplog.text
