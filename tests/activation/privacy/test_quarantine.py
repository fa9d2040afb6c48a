"""A deletion reaches the collector's spool quarantine (undecodable records kept for an operator):
entries mentioning the person go from every spool under the data directory, the others stay."""

from __future__ import annotations

from pathlib import Path

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.privacy.person import Person
from collector.quarantine import quarantine, read_quarantine
from collector.spool import Position
from magpie.server import privacy_wiring
from magpie.settings import Settings


def test_the_deletion_removes_the_persons_quarantined_records_from_every_spool(
    ch: Client, tmp_path: Path
) -> None:
    web1, web2 = tmp_path / "spool" / "web-1", tmp_path / "spool" / "web-2"
    for spool in (web1, web2):
        spool.mkdir(parents=True)
    quarantine(web1, Position(1, 8), b'\x00{"traits":{"email":"Ann.X@Example.COM"}\xff')
    quarantine(web1, Position(1, 90), b"order 421 of someone else")  # "42" only inside another number
    quarantine(web2, Position(3, 8), b'{"userId":"42","event":"x"')
    quarantine(web2, Position(3, 70), b'{"anonymousId":"p_profile_1"}')
    [path] = [p for p in privacy_wiring(Settings(data_dir=tmp_path)).paths if not p.tables]
    ann = Person(
        frozenset({"p_profile_1"}),
        frozenset({Identifier("email", "ann.x@example.com"), Identifier("user_id", "42")}),
    )

    assert path.forget(ch, ann) == {"spool_quarantine": 3}

    assert read_quarantine(web1) == [(Position(1, 90), b"order 421 of someone else")]
    assert read_quarantine(web2) == []
    quarantine(web2, Position(4, 8), b"later junk")  # appending still works after a rewrite
    assert read_quarantine(web2) == [(Position(4, 8), b"later junk")]
    assert path.forget(ch, ann) == {"spool_quarantine": 0}
