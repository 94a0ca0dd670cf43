"""Korean keyword ranking for the welfare catalogue, standard library only.

Korean glues particles and endings onto words and spaces them freely ("노인복지서비스",
"장애인을"), so whole-word matching misses. Character bigrams survive both; a small
synonym table bridges everyday words (어르신, 아기 키우는) to the catalogue's official
ones (노인, 양육), and a stop list keeps generic words (복지, 지원, 알려줘) from ranking.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for hints: catalog.py imports this module
    from server.welfare.catalog import WelfareService

MIN_RELEVANCE = 0.3
MAX_LIMIT = 20
SYNONYM_FACTOR = 0.9  # a synonym is good evidence, the user's own word slightly better
PHRASE_SHARE = 0.2  # share of the score kept for the query's own words appearing as written
LITERAL_BONUS = 0.5  # of PHRASE_SHARE: every word as written somewhere, not only in the name
LOCAL_FACTOR = 0.9  # with no region asked, a national service beats an equal local one
NATIONAL_IN_REGION_FACTOR = 0.85  # with a region asked, that region's services come first
TARGET_FLOOR = 0.7  # a service not for the asked target keeps 70% of its score

QUERY_FIELD_WEIGHTS = {"name": 1.0, "target": 0.8, "summary": 0.6, "region": 0.5, "department": 0.4}
TARGET_FIELD_WEIGHTS = {"name": 1.0, "target": 1.0, "summary": 0.5}

# Each line: words that mean the same thing for a search; every word expands to the others.
_SYNONYM_GROUPS = """
노인 어르신 노년 고령 고령자 노후
아동 아이 아기 애기 자녀 어린이 영아 유아 영유아
출산 출생 출생아 신생아
임신 임산부 임신부 임부 산모 태아
육아 양육 보육
장애인 장애 장애아동 장애아
청년 청춘 사회초년생
일자리 취업 구직 취직 채용 직업
실업 실직 퇴직 해고 구직급여 실업급여
저소득 저소득층 기초생활 수급자 생계 빈곤 차상위 가난
주거 주택 월세 전세 집세 임차료
의료 의료비 병원 병원비 치료 진료
치매 인지
한부모 미혼모 미혼부 싱글맘 싱글대디
다문화 결혼이민 결혼이민자 이주여성 외국인
에너지 난방 난방비 냉방 냉방비 전기요금 연료
문화 공연 영화 여행 전시
체육 운동 스포츠
자살 우울 우울증 정신건강 극단
난임 불임 시험관 인공수정
기저귀 분유 조제분유
독거 혼자 홀로 1인가구
저축 적금 목돈 자산 통장 계좌
장려금 세금 환급
긴급 위기 갑자기
학대 폭력 가정폭력
교육 학비 학업 장학금 등록금
급식 식사 결식 끼니
예방접종 백신 접종
무릎 관절 인공관절
틀니 임플란트 치과
청소년 십대
가정 가족 가구
산후조리 산후 조리원
"""
# One way only: verb stems and everyday words that point at catalogue vocabulary.
_ONE_WAY_SYNONYMS = """
태어 낳: 출산 출생 신생아
키우 키워: 양육 육아 보육
기르 길러: 양육 육아
아프 아파 아픈: 의료 치료 병원
일하 일할: 일자리 취업 근로
늙 할머니 할아버지 부모님: 노인 어르신
애: 아동 아이 자녀
눈: 개안 안질환 백내장
엄마: 부모 산모
아빠: 부모
외로 외롭: 독거 돌봄
마음: 우울 정신건강 심리상담
심리: 심리상담 정신건강
생활비: 생계 생계비
대학: 대학생 장학금 등록금
밥: 급식 식사
"""
# Whole words that say nothing about which service is wanted.
_STOPWORDS = """
복지 복지서비스 서비스 지원 지원금 지원사업 혜택 혜택들 제도 사업 정책 정보 프로그램 관련 관련된
알려줘 알려주세요 알려 알려줄래 찾아줘 찾아주세요 찾아 찾고 찾는 추천 추천해줘 해줘 해주세요 주세요
있나요 있어요 있을까요 있는 있는지 있을 있으면 있음 없나요 있다 뭐가 뭐 뭔가 뭐있어 무엇 무슨 어떤
어떻게 어디 어디서 언제 누가 받을 받을수 받는 받고 받으려면 받을까 받아 받을수있는 수 수있는 좀 제가
저는 저 나는 내가 우리 대한 대해 위한 위해 싶어요 싶어 싶은데 싶습니다 궁금 궁금해요 궁금합니다
가능 가능한 방법 신청 신청방법 종류 목록 해당 경우 그리고 또는 및 등 같은 하는 하고 해요 되나요
혹시 모든 전부 다 좋은 필요 필요한 도움 도와줘 어때 어때요 요즘 지금 정부 국가 나라 사는 집
"""
# Generic words cut out of a run-together query ("노인복지서비스" -> "노인"), longest first.
_GENERIC_FRAGMENTS = (
    "복지서비스 서비스 복지 지원금 지원사업 지원 혜택 알려줘 알려주세요 찾아줘 있나요"
)
# Particles and verb endings, stripped from the end of a word (longest first).
_ENDINGS = """
이에요 예요 입니다 습니다 는데요 었는데 았는데 했는데 인데요 인데 는데 으려면 려면 으면 면서 니까
해서 해도 했어요 했어 어요 아요 여요 해요 세요 까요 나요 는지 고요 에게서 에서는 에서도 에게는
으로는 이라도 이라는 이라면 으로서 으로써 한테서 에게 한테 에서 께서 까지 부터 처럼 보다 하고 이랑
이나 이며 으로 라도 라는 라면 들은 들이 들을 들의 들 분들 분 님들 님 해 했 한 할 은 는 이 가 을 를
의 에 와 과 도 만 로 랑 요 고 서
"""
_MIN_STEM = 2

_NON_WORD = re.compile(r"[^0-9a-z가-힣]+")


def normalize(text: str) -> str:
    """Lower-case NFC text with only Hangul syllables, Latin letters and digits, space-separated."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFC", text).lower()).strip()


def bigrams(text: str) -> tuple[str, ...]:
    joined = normalize(text).replace(" ", "")
    return tuple(dict.fromkeys(joined[i : i + 2] for i in range(len(joined) - 1)))


def _build_synonyms() -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    table: dict[str, tuple[str, ...]] = {}
    for line in _SYNONYM_GROUPS.strip().splitlines():
        words = line.split()
        for word in words:
            table[word] = tuple(w for w in words if w != word)
    one_way: set[str] = set()
    for line in _ONE_WAY_SYNONYMS.strip().splitlines():
        keys, expansions = line.split(":")
        for key in keys.split():
            table[key] = tuple(expansions.split())
            one_way.add(key)
    return table, frozenset(one_way)


def _longest_first(words: str) -> tuple[str, ...]:
    return tuple(sorted(words.split(), key=len, reverse=True))


_SYNONYMS, _ONE_WAY_KEYS = _build_synonyms()
_SYNONYM_KEYS = _longest_first(" ".join(_SYNONYMS))
_STOP = frozenset(_STOPWORDS.split())
_GENERIC = _longest_first(_GENERIC_FRAGMENTS)
_ENDING_LIST = _longest_first(_ENDINGS)


@dataclass(frozen=True, slots=True)
class QueryTerm:
    """One meaningful word of a query and the spellings that count as finding it."""

    stem: str
    forms: tuple[tuple[tuple[str, ...], float], ...]  # (bigrams, factor) per spelling


def _strip_endings(word: str) -> list[str]:
    stems = [word]
    for _ in range(2):  # e.g. 태어났는데요 -> 태어났는데 -> 태어났
        current = stems[-1]
        for ending in _ENDING_LIST:
            if current.endswith(ending) and len(current) - len(ending) >= _MIN_STEM:
                stems.append(current[: -len(ending)])
                break
        else:
            break
    if len(stems[-1]) >= 3 and _has_past_tense_batchim(stems[-1][-1]):
        stems.append(stems[-1][:-1])  # 태어났 -> 태어, to meet 태어난 in the catalogue
    return stems


def _has_past_tense_batchim(syllable: str) -> bool:
    code = ord(syllable) - 0xAC00
    return 0 <= code < 11172 and code % 28 == 20  # final consonant ㅆ: 났, 했, 었, 셨


def _synonym_spellings(word: str) -> list[str]:
    for key in _SYNONYM_KEYS:
        if word.startswith(key):
            rest = word[len(key) :]
            if len(rest) >= 2:  # a compound keeps its tail: 노인일자리 -> 어르신일자리
                return [s + rest for s in _SYNONYMS[key]]
            if not rest or key in _ONE_WAY_KEYS:  # a verb drops its ending: 태어났 -> 출산
                return list(_SYNONYMS[key])
            return []  # 어린이집 is not 아동: a one-syllable tail changes a noun's meaning
    return []


def _make_term(spellings: list[str]) -> QueryTerm | None:
    factors: dict[str, float] = {s: 1.0 for s in spellings if len(s) >= _MIN_STEM}
    for spelling in spellings:
        for synonym in _synonym_spellings(spelling):
            if len(synonym) >= _MIN_STEM and synonym not in factors:
                factors[synonym] = SYNONYM_FACTOR
    if not factors:
        return None
    forms = tuple((bigrams(s), f) for s, f in factors.items())
    return QueryTerm(stem=spellings[-1], forms=forms)


def analyze_query(text: str) -> list[QueryTerm]:
    """The meaningful words of a query, with particles, endings and generic words removed."""
    terms: list[QueryTerm] = []
    for word in normalize(text).split():
        stems = _strip_endings(word)
        if any(s in _STOP for s in stems):
            continue
        pieces = [p for p in _split_generic(stems[-1]) if p not in _STOP]
        if pieces == [stems[-1]]:
            term = _make_term(stems)
            if term is not None:
                terms.append(term)
            continue
        for piece in pieces:
            term = _make_term(_strip_endings(piece))
            if term is not None:
                terms.append(term)
    return terms


def _split_generic(word: str) -> list[str]:
    for fragment in _GENERIC:
        word = word.replace(fragment, " ")
    return word.split()


_PROVINCE_SHORT = dict(
    p.split(":")
    for p in "전라남:전남 전라북:전북 경상남:경남 경상북:경북 충청남:충남 충청북:충북".split()
)
_PLACE_SUFFIXES = ("특별자치도", "특별자치시", "특별시", "광역시", "도", "시", "군", "구")


def place_names(region: str) -> frozenset[str]:
    """'전라남도 해남군' -> {'전남', '해남'}: comparable place names without admin suffixes."""
    names: set[str] = set()
    for word in normalize(region).split():
        for suffix in _PLACE_SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 2:
                word = word[: -len(suffix)]
                break
        names.add(_PROVINCE_SHORT.get(word, word))
    return frozenset(names - {"전국"})


class SearchIndex:
    """Bigram postings over the catalogue, built once; a query touches only matching postings."""

    def __init__(self, documents: Sequence[WelfareService]) -> None:
        self._query_postings = _postings(documents, QUERY_FIELD_WEIGHTS)
        self._target_postings = _postings(documents, TARGET_FIELD_WEIGHTS)
        self._names = [normalize(d.name).replace(" ", "") for d in documents]
        self._places = [place_names(d.region) if d.region else frozenset() for d in documents]

    def search(
        self, query: str, region: str | None = None, target: str | None = None, limit: int = 5
    ) -> list[tuple[int, float]]:
        """(document index, score) above MIN_RELEVANCE, best first, ties in catalogue order."""
        limit = max(1, min(MAX_LIMIT, limit))
        query_terms = self._known(analyze_query(query))
        target_terms = self._known(analyze_query(target)) if target else []
        if not query_terms:
            query_terms = target_terms  # "복지 서비스" for 노인: the target is the whole question
        if not query_terms:
            return []
        wanted_places = place_names(region) if region else frozenset()
        base, as_written = _match(query_terms, self._query_postings)
        fit = _match(target_terms, self._target_postings)[0] if target_terms else {}
        phrase = "".join(t.stem for t in query_terms)
        query_text = normalize(query).replace(" ", "")
        scored: list[tuple[int, float]] = []
        for doc, relevance in base.items():
            name = self._names[doc]
            if phrase in name or (len(name) >= 3 and name in query_text):
                bonus = 1.0
            elif as_written.get(doc) == len(query_terms):
                bonus = LITERAL_BONUS
            else:
                bonus = 0.0
            score = (1 - PHRASE_SHARE) * relevance + PHRASE_SHARE * bonus
            if target_terms:
                score *= TARGET_FLOOR + (1 - TARGET_FLOOR) * fit.get(doc, 0.0)
            score *= _region_factor(self._places[doc], wanted_places)
            if score >= MIN_RELEVANCE:
                scored.append((doc, round(score, 4)))
        scored.sort(key=lambda pair: (-pair[1], pair[0]))
        return scored[:limit]

    def _known(self, terms: list[QueryTerm]) -> list[QueryTerm]:
        # A word the catalogue never uses (typo, small talk) must not dilute the others' scores.
        postings = self._query_postings
        return [t for t in terms if any(g in postings for grams, _ in t.forms for g in grams)]


def _region_factor(places: frozenset[str], wanted: frozenset[str]) -> float:
    """0 for another region's service; a service of the wanted region ranks above a national one.

    Either side may be the wider: a 서울특별시 service serves 서울 강남구, and one of
    전라남도 해남군 answers a question about 전남.
    """
    if not wanted:
        return LOCAL_FACTOR if places else 1.0
    if not places:
        return NATIONAL_IN_REGION_FACTOR
    return 1.0 if places <= wanted or wanted <= places else 0.0


Postings = dict[str, list[tuple[int, float]]]


def _postings(documents: Sequence[WelfareService], weights: dict[str, float]) -> Postings:
    postings: Postings = {}
    for doc, document in enumerate(documents):
        best: dict[str, float] = {}
        for field, weight in weights.items():
            for gram in bigrams(getattr(document, field) or ""):
                best[gram] = max(weight, best.get(gram, 0.0))
        for gram, weight in best.items():
            postings.setdefault(gram, []).append((doc, weight))
    return postings


def _match(terms: list[QueryTerm], postings: Postings) -> tuple[dict[int, float], dict[int, int]]:
    """Per document: the mean over terms of the best spelling's weighted gram coverage, and
    how many terms it contains as the user wrote them."""
    totals: dict[int, float] = {}
    as_written: dict[int, int] = {}
    for term in terms:
        best: dict[int, float] = {}
        literal: set[int] = set()
        for grams, factor in term.forms:
            covered: dict[int, float] = {}
            found: dict[int, int] = {}
            for gram in grams:
                for doc, weight in postings.get(gram, ()):
                    covered[doc] = covered.get(doc, 0.0) + weight
                    found[doc] = found.get(doc, 0) + 1
            for doc, total in covered.items():
                # Mean weight times coverage, twice: half a word (부모 of 한부모) is weak evidence.
                value = factor * total * found[doc] / len(grams) ** 2
                if value > best.get(doc, 0.0):
                    best[doc] = value
            if factor == 1.0:
                literal.update(doc for doc, count in found.items() if count == len(grams))
        for doc, value in best.items():
            totals[doc] = totals.get(doc, 0.0) + value
        for doc in literal:
            as_written[doc] = as_written.get(doc, 0) + 1
    return {doc: total / len(terms) for doc, total in totals.items()}, as_written
