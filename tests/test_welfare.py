"""The welfare catalogue, its Korean search and the `search_welfare_services` tool (CONTRACT §6)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from server.welfare import (
    TOOL_NAME,
    TOOL_PARAMETERS,
    WelfareCatalog,
    WelfareService,
    format_services,
    run_welfare_tool,
)

SHIPPED = WelfareCatalog.load()


def _service(
    service_id: str,
    name: str,
    summary: str = "요약",
    target: str = "대상",
    department: str = "보건복지부",
    region: str | None = None,
) -> WelfareService:
    return WelfareService(service_id, name, department, "129", summary, target, None, region)


# query -> a name substring that must be among the first `top` hits.
EXPECTED_HITS = [
    ("노인 복지 서비스 알려줘", "노인", 3),
    ("노인복지서비스", "노인", 3),
    ("노인 복지 서비스가 뭐가 있나요?", "노인", 3),
    ("어르신 일자리", "노인일자리", 1),
    ("어르신일자리", "노인일자리", 1),
    ("노인 일자리", "노인일자리", 1),
    ("장애인 활동 지원", "장애인활동지원", 1),
    ("장애인활동지원", "장애인활동지원", 1),
    ("장애인을 위한 지원", "장애인", 3),
    ("임산부", "임산부", 3),
    ("임신", "임신·출산 진료비", 3),
    ("임산부 지원", "임산부", 3),
    ("아기 키우는 집", "부모급여", 5),
    ("아이 키우는 집 지원", "양육", 5),
    ("육아", "육아", 3),
    ("아이가 태어났는데 받을 수 있는 혜택", "첫만남이용권", 3),
    ("기초연금 신청하고 싶어요", "기초연금", 1),
    ("할머니가 치매에 걸리셨어요", "치매", 3),
    ("청년 월세", "청년월세", 1),
    ("청년월세", "청년월세", 1),
    ("일자리 찾고 싶어요", "국민취업지원제도", 5),
    ("실업급여", "구직급여", 1),
    ("난방비가 걱정이에요", "에너지바우처", 1),
    ("혼자 사는 노인", "응급안전안심", 3),
    ("저소득층 생계비", "생계급여", 3),
    ("갑자기 실직해서 생활비가 없어요", "긴급복지지원", 3),
    ("한부모 가정", "한부모가족", 1),
    ("다문화 가족", "다문화가족", 1),
    ("우울해요", "자살예방", 3),
    ("시험관 시술", "난임", 1),
    ("기저귀", "기저귀", 1),
    ("근로장려금", "근로장려금", 1),
    ("청년 저축", "계좌", 3),
    ("무릎 수술", "무릎인공관절", 1),
    ("눈 수술", "개안수술", 1),
    ("문화생활", "문화누리카드", 1),
    ("어린이집", "보육료", 3),
    ("아동수당", "아동수당", 1),
]


@pytest.mark.parametrize(("query", "expected", "top"), EXPECTED_HITS)
def test_korean_queries_find_the_expected_service(query: str, expected: str, top: int) -> None:
    names = [s.name for s in SHIPPED.search(query, limit=top)]
    assert any(expected in name for name in names), (query, names)


def test_there_are_at_least_twenty_expected_hit_cases() -> None:
    assert len(EXPECTED_HITS) >= 20


@pytest.mark.parametrize("query", ["zxqv 퀘퀘퀘", "ㅋㅋㅋㅋ", "날씨 어때", "", "   ", "?!"])
def test_nonsense_and_small_talk_find_nothing(query: str) -> None:
    assert SHIPPED.search(query) == []


def test_generic_words_alone_find_nothing_and_do_not_change_the_ranking() -> None:
    assert SHIPPED.search("복지 서비스 알려줘") == []
    plain = [s.name for s in SHIPPED.search("장애인", limit=5)]
    padded = [s.name for s in SHIPPED.search("장애인 복지 서비스 지원 혜택 알려줘", limit=5)]
    assert padded == plain


def test_elderly_question_ranks_only_services_for_the_elderly_first() -> None:
    top = SHIPPED.search("노인 복지 서비스 알려줘", limit=5)
    assert all(("노인" in s.name) or ("어르신" in s.target) for s in top)


def test_scores_are_relevance_in_zero_to_one_best_first() -> None:
    scored = SHIPPED.search_scored("노인 일자리", limit=20)
    scores = [score for _, score in scored]
    assert scores == sorted(scores, reverse=True)
    assert all(0.3 <= score <= 1.0 for score in scores)
    assert scored[0][0].name == "노인일자리 및 사회활동 지원사업"


def test_ties_keep_catalogue_order() -> None:
    services = [_service(f"s{i}", f"노인 서비스 {i}") for i in range(5)]
    catalog = WelfareCatalog.from_services(services)
    assert [s.id for s in catalog.search("노인", limit=5)] == ["s0", "s1", "s2", "s3", "s4"]


def test_region_filter_keeps_that_region_and_national_services_only() -> None:
    hits = SHIPPED.search("청년", region="서울", limit=20)
    assert hits and all(s.region in (None, "서울특별시") for s in hits)
    assert any(s.region == "서울특별시" for s in hits[:3])
    assert all(s.region != "경기도" for s in hits)
    gyeonggi = SHIPPED.search("청년", region="경기도", limit=20)
    assert gyeonggi[0].name == "경기도 청년기본소득"
    assert all(s.region in (None, "경기도") for s in gyeonggi)
    gangnam = [s.name for s in SHIPPED.search("청년", region="서울특별시 강남구", limit=20)]
    assert "서울 청년수당" in gangnam
    assert all(s.region is None for s in SHIPPED.search("청년", region="제주도", limit=20))


@pytest.mark.parametrize("region", ["해남군", "해남", "전남", "전라남도", "전라남도 해남군"])
def test_region_names_match_with_or_without_admin_suffixes(region: str) -> None:
    names = [s.name for s in SHIPPED.search("출산", region=region, limit=20)]
    assert "해남군 출산장려금" in names


def test_national_services_outrank_equal_local_ones_without_a_region() -> None:
    services = [_service("local", "청년 수당", region="경기도"), _service("national", "청년 수당2")]
    assert [s.id for s in WelfareCatalog.from_services(services).search("청년")] == [
        "national",
        "local",
    ]


def test_target_boosts_services_for_that_target() -> None:
    plain = SHIPPED.search("수당", limit=3)
    for_disabled = SHIPPED.search("수당", target="장애인", limit=3)
    assert not any("장애" in s.name for s in plain[:1])
    assert all("장애" in s.name for s in for_disabled[:2])


def test_target_alone_answers_a_generic_query() -> None:
    hits = SHIPPED.search("복지 서비스", target="어르신")
    assert len(hits) == 5 and all("어르신" in s.name + s.target or "노인" in s.name for s in hits)


MANY_ELDERLY = WelfareCatalog.from_services(_service(f"s{i}", f"노인 {i}") for i in range(30))


@pytest.mark.parametrize(("limit", "expected"), [(0, 1), (-3, 1), (1, 1), (3, 3), (100, 20)])
def test_limit_is_clamped_to_one_to_twenty(limit: int, expected: int) -> None:
    assert len(MANY_ELDERLY.search("노인", limit=limit)) == expected
    assert len(MANY_ELDERLY.search_scored("노인", limit=limit)) == expected


def test_format_services_matches_the_contract_exactly() -> None:
    services = [
        {"name": "홍천군 효행장려금", "department": "홍천군청 노인복지과", "contact": "033-1234"},
        {"name": "노인성질환예방관리", "department": "보건복지부", "contact": "044-5678"},
    ]
    assert format_services(services) == (
        "1. 홍천군 효행장려금\n"
        "    - 담당: 홍천군청 노인복지과\n"
        "    - 연락처: 033-1234\n"
        "\n"
        "2. 노인성질환예방관리\n"
        "    - 담당: 보건복지부\n"
        "    - 연락처: 044-5678"
    )
    assert format_services([]) == ""


def test_tool_returns_contract_dicts_with_url_only_when_known() -> None:
    results = run_welfare_tool(SHIPPED, {"query": "기초연금"})
    assert results[0] == {
        "name": "기초연금",
        "department": "보건복지부",
        "contact": "국민연금공단 1355 또는 보건복지상담센터 129",
        "summary": SHIPPED.search("기초연금")[0].summary,
        "target": SHIPPED.search("기초연금")[0].target,
        "url": "https://basicpension.mohw.go.kr",
    }
    without_url = run_welfare_tool(SHIPPED, {"query": "틀니"})[0]
    assert set(without_url) == {"name", "department", "contact", "summary", "target"}
    assert format_services(results).startswith("1. 기초연금\n    - 담당: 보건복지부\n")


def test_tool_coerces_arguments_leniently() -> None:
    assert len(run_welfare_tool(SHIPPED, {"query": "노인", "limit": "3"})) == 3
    assert len(run_welfare_tool(SHIPPED, {"query": "노인", "limit": 2.0})) == 2
    assert len(run_welfare_tool(SHIPPED, {"query": "노인", "limit": "many"})) == 5
    assert len(run_welfare_tool(MANY_ELDERLY, {"query": "노인", "limit": 99})) == 20
    assert len(run_welfare_tool(MANY_ELDERLY, {"query": "노인", "limit": "0"})) == 1
    assert len(run_welfare_tool(MANY_ELDERLY, {"query": "노인", "limit": True})) == 5
    assert len(run_welfare_tool(SHIPPED, {"query": "노인", "limit": None})) == 5
    assert len(run_welfare_tool(SHIPPED, {"query": "노인", "region": "", "target": None})) == 5
    assert run_welfare_tool(SHIPPED, '{"query": "기저귀", "unknown": 1}')[0]["name"] == (
        "저소득층 기저귀·조제분유 지원"
    )
    assert run_welfare_tool(SHIPPED, {"query": "zxqv"}) == []


@pytest.mark.parametrize("arguments", [{}, {"query": ""}, {"query": "  "}, {"query": None}, "[]"])
def test_tool_requires_a_query(arguments: dict[str, object] | str) -> None:
    with pytest.raises(ValueError):
        run_welfare_tool(SHIPPED, arguments)


def test_tool_schema_requires_query_and_bounds_limit() -> None:
    assert TOOL_NAME == "search_welfare_services"
    assert TOOL_PARAMETERS["required"] == ["query"]
    assert set(TOOL_PARAMETERS["properties"]) == {"query", "region", "target", "limit"}
    assert TOOL_PARAMETERS["properties"]["limit"]["minimum"] == 1
    assert TOOL_PARAMETERS["properties"]["limit"]["maximum"] == 20
    json.dumps(TOOL_PARAMETERS)


def test_shipped_catalogue_is_complete_and_unique() -> None:
    services = SHIPPED.services
    assert len(services) >= 70
    for s in services:
        assert s.name and s.department and s.contact and s.summary and s.target, s.id
    assert len({s.id for s in services}) == len(services)
    assert len({s.name for s in services}) == len(services)
    local = [s for s in services if s.region]
    assert len(local) >= 10 and len({s.region for s in local}) >= 5


EXPORT_HEADER = (
    "서비스ID,서비스명,서비스목적요약,지원대상,소관기관명,부서명,전화문의,상세조회URL,비고\n"
)
EXPORT_ROWS = (
    'WLF001,홍천군 효행장려금,"효행을 실천하는 가정에 장려금을 지급",부모를 모시는 가정,'
    "홍천군청,노인복지과,033-1234,https://example.org/1,무시되는 열\n"
    ",,이름이 없는 행은 건너뜀,,,,,,\n"
    "WLF002,노인성질환예방관리,노인성 질환 예방,만 60세 이상,보건복지부,,044-5678,,\n"
)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp949"])
def test_operator_csv_export_loads_in_excel_encodings(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "services.csv"
    path.write_bytes((EXPORT_HEADER + EXPORT_ROWS).encode(encoding))
    catalog = WelfareCatalog.load(path)
    assert [s.name for s in catalog] == ["홍천군 효행장려금", "노인성질환예방관리"]
    first, second = catalog.services
    assert first == WelfareService(
        id="WLF001",
        name="홍천군 효행장려금",
        department="홍천군청 노인복지과",
        contact="033-1234",
        summary="효행을 실천하는 가정에 장려금을 지급",
        target="부모를 모시는 가정",
        url="https://example.org/1",
        region=None,
    )
    assert second.department == "보건복지부" and second.url is None
    assert catalog.search("노인 질환 예방")[0].name == "노인성질환예방관리"


def test_operator_csv_alternative_headers_and_region(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    header = "서비스명,서비스목적,선정기준,소관부처명,문의처,서비스URL,시도,시군구\n"
    row = "출산장려금,출산 가정 지원,출산 가정,해남군,061-000-0000,,전라남도,해남군\n"
    path.write_text(header + row, encoding="utf-8")
    (service,) = WelfareCatalog.load(path).services
    assert (service.id, service.summary, service.target) == ("row-2", "출산 가정 지원", "출산 가정")
    assert (service.department, service.contact) == ("해남군", "061-000-0000")
    assert service.region == "전라남도 해남군"


def test_operator_json_list_loads(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    items = [
        {
            "id": "a",
            "name": "노인 돌봄",
            "department": "보건복지부",
            "contact": "129",
            "summary": "돌봄",
            "target": "노인",
            "region": "전국",
        },
        {"name": ""},
    ]
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    (service,) = WelfareCatalog.load(path).services
    assert service.name == "노인 돌봄" and service.region is None and service.url is None


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("no_name.csv", "서비스ID,지원대상\n1,노인\n", "서비스명"),
        ("no_rows.csv", EXPORT_HEADER, "no usable row"),
        ("blank_names.csv", EXPORT_HEADER + ",,,,,,,,\n", "no usable row"),
        ("empty.csv", "", "empty"),
        ("services.xlsx", "binary", "unsupported"),
        ("bad.json", "{not json", "JSON"),
        ("object.json", '{"name": "x"}', "list"),
    ],
)
def test_unusable_catalogue_files_raise_value_error_naming_the_file(
    tmp_path: Path, file_name: str, content: str, message: str
) -> None:
    path = tmp_path / file_name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        WelfareCatalog.load(path)
    assert file_name in str(caught.value)


def test_undecodable_file_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_bytes(b"\xff\xfe\x00\x81\x00")
    with pytest.raises(ValueError, match=r"services\.csv: cannot decode"):
        WelfareCatalog.load(path)


def test_search_is_fast_on_a_five_thousand_service_catalogue() -> None:
    services = [
        _service(f"{s.id}-{n}", f"{s.name} {n}", s.summary, s.target, s.department, s.region)
        for n in range(60)
        for s in SHIPPED.services
    ][:5000]
    catalog = WelfareCatalog.from_services(services)
    queries = [q for q, _, _ in EXPECTED_HITS]
    started = time.perf_counter()
    for query in queries:
        catalog.search(query)
    per_query = (time.perf_counter() - started) / len(queries)
    assert per_query < 0.05, f"{per_query * 1000:.1f} ms per query"
