"""The writer's durable progress marker in the spool directory.

Before inserting a chunk the writer records its intent (the exact record range and the
ClickHouse deduplication token); after the insert it records the new position. After a crash,
the intent is replayed with the same range and token, and ClickHouse drops the block if the
first attempt had already landed — so replays never duplicate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from collector.spool import Position


@dataclass(frozen=True)
class Intent:
    start: Position
    end: Position
    token: str


@dataclass(frozen=True)
class Checkpoint:
    position: Position
    intent: Intent | None = None


def _position(raw: list[int]) -> Position:
    return Position(int(raw[0]), int(raw[1]))


def load_checkpoint(path: Path, default: Position) -> Checkpoint:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return Checkpoint(default)
    intent = data.get("intent")
    return Checkpoint(
        _position(data["position"]),
        Intent(_position(intent["start"]), _position(intent["end"]), intent["token"]) if intent else None,
    )


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Atomically replace the checkpoint file (write, fsync, rename, fsync the directory)."""
    intent = checkpoint.intent
    body = orjson.dumps(
        {
            "position": [checkpoint.position.segment, checkpoint.position.offset],
            "intent": None
            if intent is None
            else {
                "start": [intent.start.segment, intent.start.offset],
                "end": [intent.end.segment, intent.end.offset],
                "token": intent.token,
            },
        }
    )
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
