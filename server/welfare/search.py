"""Korean search over the welfare catalogue: morphemes, a synonym table, BM25, places.

A question is analysed into morphemes (kiwipiepy, so particles, endings and spacing do not
matter: 노인복지서비스, 장애인을, 아이가 태어났는데), generic words are dropped
(`data/stopwords.txt`), everyday words bring the catalogue's words along
(`data/synonyms.tsv`: 병원비 -> 의료비, 수급자 -> 생계급여), and services are ranked with
Okapi BM25 over their name (counted three times), target group and summary. A place named in
the question or the `region` argument (`data/places.tsv`) keeps that region's services and
the national ones and drops other regions'.

Relevance is BM25 made comparable across questions: each word's score is capped at what one
occurrence in an average service scores, and words are weighted by their rarity (idf), so
a service matching every word of the question scores 1.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from server import korean
from server.welfare.service import WelfareService

DATA = Path(__file__).parent / "data"
MIN_RELEVANCE = 0.3
MAX_LIMIT = 20
SYNONYM_WEIGHT = 0.8  # a synonym is good evidence, the user's own word better
K1, B = 1.2, 0.75  # Okapi BM25's usual constants
FIELD_REPEATS = {"name": 3, "target": 1, "summary": 1}
LOCAL_FACTOR = 0.75  # with no region known, national services first: a local one may not apply
NATIONAL_IN_REGION_FACTOR = 0.7  # with a region asked, that region's services come first
TARGET_FLOOR = 0.7  # a service not for the asked target keeps 70% of its score
_CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "SL", "SH", "XR"})
_VERB_TAGS = frozenset({"VV", "VA", "VV-I", "VA-I", "VV-R", "VA-R"})
_AGE_UNITS = frozenset({"살", "세"})
_PLACE_SUFFIXES = ("특별자치도", "특별자치시", "특별시", "광역시", "도", "시", "군", "구")


def _rows(name: str) -> Iterable[str]:
    for raw in (DATA / name).read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            yield raw


@cache
def _vocabulary() -> tuple[frozenset[str], dict[str, tuple[str, ...]], dict[str, str]]:
    stop = frozenset(word for row in _rows("stopwords.txt") for word in row.split())
    synonyms: dict[str, list[str]] = {}
    for row in _rows("synonyms.tsv"):
        asked, _, meant = row.partition("\t")
        for word in asked.split():
            synonyms.setdefault(word, []).extend(w for w in meant.split() if w not in stop)
    places = {}
    for row in _rows("places.tsv"):
        name, _, province = row.partition("\t")
        places[name.strip()] = province.strip()
    return stop, {k: tuple(dict.fromkeys(v)) for k, v in synonyms.items()}, places


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def words(text: str) -> list[str]:
    """The searchable words of a text: nouns, roots, Latin words and numbers as written,
    verbs and adjectives in their dictionary form (키우다)."""
    text = normalize(text)
    if not text:
        return []
    out = []
    for token in korean.analyser().tokenize(text, split_complex=True):
        if token.tag in _CONTENT_TAGS or token.tag == "SN":
            out.append(token.form.lower())
        elif token.tag in _VERB_TAGS:
            out.append(token.lemma or f"{token.form}다")
    return out


def _place_key(word: str) -> str | None:
    """The places.tsv name of a word (부산광역시 -> 부산, 해운대구 -> 해운대), if it is one."""
    _, _, places = _vocabulary()
    if word in places:
        return word
    for suffix in _PLACE_SUFFIXES:
        if word.endswith(suffix) and word[: -len(suffix)] in places:
            return word[: -len(suffix)]
    return None


def place_names(region: str) -> frozenset[str]:
    """'전라남도 해남군' -> {'전남', '해남'}: comparable place names, each district with its
    province ('해운대구' -> {'부산', '해운대'})."""
    _, _, places = _vocabulary()
    names: set[str] = set()
    for word in normalize(region).split():
        key = _place_key(word)
        if key is None:
            stripped = next(
                (
                    word[: -len(s)]
                    for s in _PLACE_SUFFIXES
                    if word.endswith(s) and len(word) > len(s) + 1
                ),
                word,
            )
            names.add(stripped)
        else:
            names.update({key, places[key]} if places[key] != key else {key})
    return frozenset(names - {"전국", ""})


@dataclass(frozen=True, slots=True)
class Concept:
    """One word of a question and the spellings that count as finding it, with weights; a
    spelling of several words (a synonym like 생계급여) scores the mean of its words."""

    word: str
    spellings: tuple[tuple[tuple[str, ...], float], ...]


@dataclass(frozen=True, slots=True)
class Question:
    concepts: tuple[Concept, ...]
    places: frozenset[str]


def analyze_query(text: str) -> Question:
    stop, synonyms, _ = _vocabulary()
    places: set[str] = set()
    asked: list[tuple[str, float]] = []  # the question's words, in order, with their weight
    tokens = korean.analyser().tokenize(normalize(text), split_complex=True)
    for i, token in enumerate(tokens):
        form = token.form.lower()
        if token.tag == "SN" and i + 1 < len(tokens) and tokens[i + 1].form in _AGE_UNITS:
            asked.append((_age_group(form), SYNONYM_WEIGHT))  # 25살: 청년, as a synonym
        elif token.tag in _VERB_TAGS:
            word = token.lemma or f"{form}다"
            if word in synonyms:
                asked.append((word, 1.0))
        elif token.tag == "NNP" and _place_key(form) is not None:  # 부산, 해운대구
            places.update(place_names(form))
        elif token.tag in _CONTENT_TAGS and (len(form) > 1 or form in synonyms):
            asked.append((form, 1.0))  # one syllable only when it means something (눈, 밥)
    concepts: list[Concept] = []
    position = 0
    while position < len(asked):
        word, weight = asked[position]
        if not word:
            position += 1
            continue
        joined = "".join(w for w, _ in asked[position : position + 2])
        if position + 1 < len(asked) and joined in synonyms:  # 출산 + 지원금: 출산지원금
            concepts.append(_concept(joined))
            position += 2
            continue
        if word not in stop:
            concepts.append(_concept(word, weight))
        position += 1
    return Question(tuple(concepts), frozenset(places))


def _concept(word: str, weight: float = 1.0) -> Concept:
    _, synonyms, _ = _vocabulary()
    spellings: dict[tuple[str, ...], float] = {(word,): weight}
    for synonym in synonyms.get(word, ()):
        key = tuple(_synonym_words(synonym))
        if key and key not in spellings:
            spellings[key] = weight * SYNONYM_WEIGHT
    return Concept(word, tuple(spellings.items()))


@cache
def _synonym_words(phrase: str) -> tuple[str, ...]:
    stop, _, _ = _vocabulary()
    return tuple(w for w in words(phrase) if w not in stop) or (phrase,)


def _age_group(number: str) -> str:
    """'25' (살) -> 청년: the catalogue's word for an age; '' for ages it has none for."""
    try:
        age = int(number)
    except ValueError:
        return ""
    if age < 6:
        return "영유아"
    if age < 9:
        return "아동"
    if age < 19:
        return "청소년"
    if age < 35:
        return "청년"
    return "노인" if age >= 65 else ""


class SearchIndex:
    """BM25 postings over the catalogue, built once (blocking: build it in a thread)."""

    def __init__(self, documents: Sequence[WelfareService]) -> None:
        self._postings: dict[str, list[tuple[int, int]]] = {}
        self._target_postings: dict[str, set[int]] = {}
        lengths = []
        analysed: dict[str, list[str]] = {}  # exports repeat targets and summaries word for word

        def words_of(text: str) -> list[str]:
            if text not in analysed:
                analysed[text] = words(text)
            return analysed[text]

        for doc, service in enumerate(documents):
            counts: Counter[str] = Counter()
            for field, repeats in FIELD_REPEATS.items():
                for word in words_of(getattr(service, field) or ""):
                    counts[word] += repeats
            for word, count in counts.items():
                self._postings.setdefault(word, []).append((doc, count))
            for word in (*words_of(service.name), *words_of(service.target)):
                self._target_postings.setdefault(word, set()).add(doc)
            lengths.append(sum(counts.values()))
        self._size = len(documents)
        self._average = (sum(lengths) / len(lengths)) if lengths else 1.0
        self._lengths = lengths
        self._names = [normalize(d.name).replace(" ", "") for d in documents]
        self._places = [place_names(d.region) if d.region else frozenset() for d in documents]

    def idf(self, word: str) -> float:
        df = len(self._postings.get(word, ()))
        return math.log(1 + (self._size - df + 0.5) / (df + 0.5))

    def search(
        self, query: str, region: str | None = None, target: str | None = None, limit: int = 5
    ) -> list[tuple[int, float]]:
        """(document index, score 0..1) of the services whose relevance reaches
        MIN_RELEVANCE, best first (the score weighs the region in), ties in catalogue order."""
        limit = max(1, min(MAX_LIMIT, limit))
        asked = analyze_query(query)
        concepts = self._known(asked.concepts)
        target_concepts = self._known(analyze_query(target).concepts) if target else ()
        if not concepts:
            concepts = target_concepts  # "복지 서비스" for 노인: the target is the question
        wanted = place_names(region) if region else asked.places
        exact = normalize(query).replace(" ", "")
        if not concepts and exact not in self._names:
            return []
        relevance = self._relevance(concepts)
        for doc, name in enumerate(self._names):
            if name == exact:  # a service asked for by its name (a follow-up) comes first
                relevance[doc] = 1.0 + 1e-6
        fit = self._target_fit(target_concepts) if target_concepts else {}
        scored = []
        for doc, score in relevance.items():
            if target_concepts:
                score *= TARGET_FLOOR + (1 - TARGET_FLOOR) * fit.get(doc, 0.0)
            if score < MIN_RELEVANCE:
                continue
            score *= _region_factor(self._places[doc], wanted)  # orders; 0 drops
            if score > 0:
                scored.append((doc, round(min(score, 1.0), 4)))
        scored.sort(key=lambda pair: (-pair[1], pair[0]))
        return scored[:limit]

    def _known(self, concepts: Iterable[Concept]) -> tuple[Concept, ...]:
        # A word the catalogue never uses (typo, small talk) must not dilute the others.
        return tuple(
            c for c in concepts if any(all(w in self._postings for w in s) for s, _ in c.spellings)
        )

    def _relevance(self, concepts: Sequence[Concept]) -> dict[int, float]:
        totals: dict[int, float] = {}
        weight_sum = 0.0
        for concept in concepts:
            importance = (
                self.idf(concept.word)
                if concept.word in self._postings
                else max(
                    self.idf(w) for s, _ in concept.spellings for w in s if w in self._postings
                )
            )
            weight_sum += importance
            best: dict[int, float] = {}
            for spelling, weight in concept.spellings:
                for doc, value in self._spelling_scores(spelling).items():
                    value *= weight
                    if value > best.get(doc, 0.0):
                        best[doc] = value
            for doc, value in best.items():
                totals[doc] = totals.get(doc, 0.0) + importance * value
        if not weight_sum:
            return {}
        return {doc: total / weight_sum for doc, total in totals.items()}

    def _spelling_scores(self, spelling: tuple[str, ...]) -> dict[int, float]:
        """Per document, the mean over the spelling's words of BM25's term frequency part as a
        share of its limit (0..1; a word in the name, counted three times, scores ~0.7)."""
        scores: dict[int, float] = {}
        for word in spelling:
            for doc, count in self._postings.get(word, ()):
                norm = K1 * (1 - B + B * self._lengths[doc] / self._average)
                saturation = count / (count + norm)  # BM25's tf part over its limit (K1 + 1)
                scores[doc] = scores.get(doc, 0.0) + saturation / len(spelling)
        return scores

    def _target_fit(self, concepts: Sequence[Concept]) -> dict[int, float]:
        hits: Counter[int] = Counter()
        for concept in concepts:
            docs = set()
            for spelling, _ in concept.spellings:
                for word in spelling:
                    docs |= self._target_postings.get(word, set())
            hits.update(docs)
        return {doc: count / len(concepts) for doc, count in hits.items()}


def _region_factor(places: frozenset[str], wanted: frozenset[str]) -> float:
    """0 for another region's service; a service of the wanted region ranks above a national
    one. Either side may be the wider: a 서울특별시 service serves 서울 강남구, and one of
    전라남도 해남군 answers a question about 전남."""
    if not wanted:
        return LOCAL_FACTOR if places else 1.0
    if not places:
        return NATIONAL_IN_REGION_FACTOR
    return 1.0 if places <= wanted or wanted <= places else 0.0


def teach_analyser() -> None:
    """The nouns of data/nouns.txt, kept whole by the analyser."""
    korean.add_nouns(word for row in _rows("nouns.txt") for word in row.split())


teach_analyser()  # before the analyser loads, so it never has to rebuild
