"""The welfare-service catalogue: the shipped list or the operator's export, loaded once.

The operator's file is the public service-list export of 공공데이터포털 / 복지로 (CSV with
Korean headers, UTF-8 with BOM or CP949 as Excel saves it) or a JSON list with the English
field names of `WelfareService`. Loading is synchronous: call it with `asyncio.to_thread`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from server.welfare.search import SearchIndex
from server.welfare.service import WelfareService

SHIPPED_CATALOG_PATH = Path(__file__).parent / "data" / "catalog.json"
FALLBACK_CONTACT = "보건복지상담센터 129"  # the national welfare hotline answers for any service

# Export headers per field, in order of preference; the first non-empty cell wins.
_CSV_COLUMNS: dict[str, list[str]] = {
    field: names.split()
    for field, names in {
        "id": "서비스ID 서비스아이디 서비스번호",
        "name": "서비스명",
        "summary": "서비스목적요약 서비스목적 서비스요약 서비스내용 지원내용",
        "target": "지원대상 선정기준 지원대상자 대상자 생애주기 생애주기명 대상특성",
        "organization": "소관기관명 소관부처명 소관기관 소관부처 기관명",
        "unit": "부서명 담당부서 담당부서명 소관조직명",
        "contact": "전화문의 문의처 대표문의 문의전화 연락처",
        "url": "상세조회URL 서비스URL 상세URL 서비스상세URL URL 사이트",
        "province": "시도 시도명 지역",
        "district": "시군구 시군구명",
    }.items()
}
_TEXT_ENCODINGS = ("utf-8-sig", "cp949")
_NATIONWIDE = {"", "전국", "national"}


class WelfareCatalog:
    """An immutable list of services with a search index built at construction."""

    def __init__(self, services: Sequence[WelfareService]) -> None:
        self._services = tuple(services)
        self._index = SearchIndex(self._services)

    @classmethod
    def from_services(cls, services: Iterable[WelfareService]) -> WelfareCatalog:
        return cls(list(services))

    @classmethod
    def load(cls, path: Path | None = None) -> WelfareCatalog:
        """The operator's catalogue at `path`, or the shipped one. Raises ValueError if unusable."""
        source = Path(path) if path is not None else SHIPPED_CATALOG_PATH
        suffix = source.suffix.lower()
        if suffix == ".json":
            services = _services_from_json(source)
        elif suffix in {".csv", ".tsv", ".txt"}:
            services = _services_from_csv(source)
        else:
            raise ValueError(
                f"welfare catalogue {source}: unsupported file type {suffix or '(none)'}; "
                "save the 서비스 목록 export as CSV, or give a JSON list"
            )
        if not services:
            raise ValueError(f"welfare catalogue {source}: no usable row (every 서비스명 is empty)")
        return cls(services)

    @property
    def services(self) -> tuple[WelfareService, ...]:
        return self._services

    def __len__(self) -> int:
        return len(self._services)

    def __iter__(self) -> Iterator[WelfareService]:
        return iter(self._services)

    def search(
        self, query: str, region: str | None = None, target: str | None = None, limit: int = 5
    ) -> list[WelfareService]:
        """The best-matching services, best first (see `server.welfare.search`)."""
        return [service for service, _ in self.search_scored(query, region, target, limit)]

    def search_scored(
        self, query: str, region: str | None = None, target: str | None = None, limit: int = 5
    ) -> list[tuple[WelfareService, float]]:
        """Like `search`, with each service's relevance (about 0..1)."""
        hits = self._index.search(query, region=region, target=target, limit=limit)
        return [(self._services[doc], score) for doc, score in hits]


def _clean(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _make_service(fields: Mapping[str, Any], row_number: int) -> WelfareService | None:
    name = _clean(fields.get("name"))
    if not name:
        return None
    region = _clean(fields.get("region"))
    return WelfareService(
        id=_clean(fields.get("id")) or f"row-{row_number}",
        name=name,
        department=_clean(fields.get("department")),
        contact=_clean(fields.get("contact")) or FALLBACK_CONTACT,
        summary=_clean(fields.get("summary")),
        target=_clean(fields.get("target")),
        url=_clean(fields.get("url")) or None,
        region=None if region.lower() in _NATIONWIDE else region,
    )


def _services_from_json(source: Path) -> list[WelfareService]:
    try:
        data = json.loads(_read_text(source))
    except json.JSONDecodeError as exc:
        raise ValueError(f"welfare catalogue {source}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        data = data.get("services")
    if not isinstance(data, list):
        raise ValueError(f"welfare catalogue {source}: expected a JSON list of services")
    services = [
        _make_service(item, number)
        for number, item in enumerate(data, start=1)
        if isinstance(item, dict)
    ]
    return [s for s in services if s is not None]


def _services_from_csv(source: Path) -> list[WelfareService]:
    text = _read_text(source)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise ValueError(f"welfare catalogue {source}: the file is empty")
    positions = _column_positions(header)
    if "name" not in positions:
        found = ", ".join(h.strip() for h in header if h.strip()) or "(none)"
        raise ValueError(
            f"welfare catalogue {source}: no 서비스명 column (service name); columns found: {found}"
        )
    services = []
    for number, row in enumerate(reader, start=2):  # line numbers as a spreadsheet shows them
        cell = {field: _first_cell(row, columns) for field, columns in positions.items()}
        organization, unit = cell.get("organization", ""), cell.get("unit", "")
        department = organization if unit in organization else f"{organization} {unit}".strip()
        province, district = cell.get("province", ""), cell.get("district", "")
        region = province if district in province else f"{province} {district}".strip()
        service = _make_service({**cell, "department": department, "region": region}, number)
        if service is not None:
            services.append(service)
    return services


def _column_positions(header: list[str]) -> dict[str, list[int]]:
    """Field -> indexes of the header cells that may hold it, in order of preference."""
    index_of = {_header_key(cell): i for i, cell in reversed(list(enumerate(header)))}
    positions: dict[str, list[int]] = {}
    for field, names in _CSV_COLUMNS.items():
        found = [index_of[_header_key(n)] for n in names if _header_key(n) in index_of]
        if found:
            positions[field] = found
    return positions


def _header_key(cell: str) -> str:
    return "".join(cell.replace("\ufeff", "").split()).lower()


def _first_cell(row: list[str], columns: list[int]) -> str:
    for column in columns:
        if column < len(row):
            value = _clean(row[column])
            if value:
                return value
    return ""


def _read_text(source: Path) -> str:
    raw = source.read_bytes()
    for encoding in _TEXT_ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"welfare catalogue {source}: cannot decode the file as UTF-8 or CP949")
