"""What the privacy routes and jobs need beyond the services: where export documents are kept,
every table's forget path (the composition root adds the collector's), and the rejected-event
retention. The composition root puts one in the job context as `ctx["privacy"]`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activation.privacy.registry import ACTIVATION_PATHS, ForgetPath


@dataclass(frozen=True)
class PrivacyWiring:
    data_dir: Path
    paths: tuple[ForgetPath, ...] = ACTIVATION_PATHS
    rejected_retention_days: int = 30

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "privacy" / "exports"

    def tables(self) -> set[str]:
        return {t for p in self.paths for t in p.tables}


def wiring_of(ctx: dict[str, Any]) -> PrivacyWiring:
    wiring = ctx["privacy"]
    assert isinstance(wiring, PrivacyWiring), "privacy jobs need ctx['privacy'] (PrivacyWiring)"
    return wiring
