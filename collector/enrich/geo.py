"""GeoIP enrichment from MaxMind databases (City and ASN), when configured.

A database that fails to open (missing, corrupt) is reported once, clearly, and geo enrichment
runs without it: a bad file never stops the collector.
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache
from typing import Any

import geoip2.database
import geoip2.errors
from maxminddb.errors import InvalidDatabaseError

log = logging.getLogger("magpie.geo")


def _open(path: str, kind: str) -> geoip2.database.Reader | None:
    if not path:
        return None
    try:
        reader = geoip2.database.Reader(path)
        probe = getattr(reader, kind)
        with contextlib.suppress(geoip2.errors.AddressNotFoundError, ValueError):
            probe("1.1.1.1")  # corrupt trees often only fail on the first lookup
        return reader
    except (OSError, InvalidDatabaseError, ValueError, TypeError) as exc:
        log.error("GeoIP %s database %s is unusable, geo enrichment off for it: %s", kind, path, exc)
        return None


class GeoLookup:
    def __init__(self, city_db: str = "", asn_db: str = "") -> None:
        self.city_reader = _open(city_db, "city")
        self.asn_reader = _open(asn_db, "asn")
        self.lookup = lru_cache(maxsize=50_000)(self._lookup)

    @property
    def enabled(self) -> bool:
        return self.city_reader is not None or self.asn_reader is not None

    def _lookup(self, ip: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.city_reader is not None:
            out.update(self._city(ip))
        if self.asn_reader is not None:
            try:
                asn = self.asn_reader.asn(ip)
                out["geo_asn"] = asn.autonomous_system_number or 0
                out["geo_as_org"] = asn.autonomous_system_organization or ""
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
            except InvalidDatabaseError as exc:
                self._disable(self.asn_reader, "asn", exc)
                self.asn_reader = None
        return out

    def _city(self, ip: str) -> dict[str, Any]:
        assert self.city_reader is not None
        try:
            city = self.city_reader.city(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return {}
        except InvalidDatabaseError as exc:
            self._disable(self.city_reader, "city", exc)
            self.city_reader = None
            return {}
        region = city.subdivisions.most_specific
        return {
            "geo_country": city.country.iso_code or "",
            "geo_region": region.iso_code or region.name or "",
            "geo_city": city.city.name or "",
            "geo_postal_code": city.postal.code or "",
            "geo_timezone": city.location.time_zone or "",
            "geo_latitude": city.location.latitude,
            "geo_longitude": city.location.longitude,
        }

    def _disable(self, reader: geoip2.database.Reader, kind: str, exc: Exception) -> None:
        """A database that opened but is corrupt inside: say so once, then run without it."""
        log.error("GeoIP %s database is corrupt (%s); geo enrichment off for it", kind, exc)
        reader.close()
        self.lookup.cache_clear()

    def close(self) -> None:
        for reader in (self.city_reader, self.asn_reader):
            if reader is not None:
                reader.close()
