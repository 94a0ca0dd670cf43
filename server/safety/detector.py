"""Which messages signal a risk to life: the lexicon matched over Korean morphemes.

Matching morphemes rather than substrings lets conjugation and spacing vary (죽고싶어요,
죽고 싶 어 요, 죽고만 싶어) while sayings stay quiet: `힘들어 죽겠네` has 죽다 but no
싶다 after it, and `보고 싶어 죽겠다` has them in the other order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server import korean
from server.safety.lexicon import CATEGORIES, LEVELS, Category, Entry, Level, load_lexicon, nouns_of

MAX_GAP = 4  # morphemes allowed between two words of a pattern
MAX_CHARS = 4000  # longer text is cut: no message of any protocol is longer
_LEVEL_RANK = {"high": 2, "medium": 1}


@dataclass(frozen=True, slots=True)
class SafetyFlag:
    category: Category
    level: Level

    def as_metadata(self) -> dict[str, str]:
        return {"category": self.category, "level": self.level}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> SafetyFlag | None:
        """The flag a stored message's `metadata.safety` records, if any."""
        stored = (metadata or {}).get("safety")
        if not isinstance(stored, Mapping):
            return None
        category, level = stored.get("category"), stored.get("level")
        if category in CATEGORIES and level in LEVELS:
            return cls(category, level)
        return None


class CrisisDetector:
    def __init__(self, entries: Sequence[Entry]) -> None:
        self._exclusions = [e for e in entries if e.category is None]
        self._entries = [e for e in entries if e.category is not None]
        # entries by their first word: a message touches only the entries it could match
        self._starting: dict[str, list[Entry]] = {}
        for entry in self._entries:
            for word in entry.steps[0]:
                self._starting.setdefault(word, []).append(entry)
        korean.add_nouns(nouns_of(entries))

    def check(self, text: str) -> SafetyFlag | None:
        """The most urgent risk the text signals, or None. Blocks for ~0.1-1 ms on a
        message of chat length (the analyser must be loaded: `korean.warm_up`)."""
        morphemes = _keys(korean.analyse(text[:MAX_CHARS]))
        if not morphemes:
            return None
        spaced = _letter_spaced(text)
        if spaced:  # "죽 고 싶 어 요": analysed again with the spaces out
            morphemes += [frozenset()] * (MAX_GAP + 1) + _keys(korean.analyse(spaced))
        taken: set[int] = set()
        for entry in self._exclusions:
            for span in _matches(entry, morphemes, set()):
                taken.update(span)
        candidates = {
            id(e): e for keys in morphemes for key in keys for e in self._starting.get(key, ())
        }
        best: SafetyFlag | None = None
        for entry in candidates.values():
            if best is not None and _LEVEL_RANK[entry.level or "medium"] < _LEVEL_RANK[best.level]:
                continue
            if any(True for _ in _matches(entry, morphemes, taken)):
                flag = SafetyFlag(entry.category, entry.level)  # type: ignore[arg-type]
                if best is None or _rank(flag) > _rank(best):
                    best = flag
        return best


def _rank(flag: SafetyFlag) -> tuple[int, int]:
    return _LEVEL_RANK[flag.level], -CATEGORIES.index(flag.category)


def _keys(morphemes: Sequence[korean.Morpheme]) -> list[frozenset[str]]:
    return [frozenset({m.lemma.lower(), m.form.lower()}) for m in morphemes]


def _letter_spaced(text: str) -> str | None:
    words = text[:MAX_CHARS].split()
    singles = sum(1 for w in words if len(w) == 1)
    if len(words) >= 3 and singles * 2 > len(words):
        return "".join(words)
    return None


def _matches(entry: Entry, morphemes: list[frozenset[str]], taken: set[int]) -> Iterator[list[int]]:
    """Each span of morpheme positions where the entry's words appear in order."""
    first, rest = entry.steps[0], entry.steps[1:]
    for start, keys in enumerate(morphemes):
        if start in taken or not (keys & first):
            continue
        span = _follow(rest, morphemes, start, taken)
        if span is not None:
            yield [start, *span]


def _follow(
    steps: Sequence[frozenset[str]], morphemes: list[frozenset[str]], at: int, taken: set[int]
) -> list[int] | None:
    if not steps:
        return []
    for position in range(at + 1, min(len(morphemes), at + MAX_GAP + 2)):
        if position not in taken and morphemes[position] & steps[0]:
            rest = _follow(steps[1:], morphemes, position, taken)
            if rest is not None:
                return [position, *rest]
    return None


_detector: CrisisDetector | None = None
korean.add_nouns(nouns_of(load_lexicon()))  # before the analyser loads: no rebuild later


def default_detector() -> CrisisDetector:
    """The detector of the shipped lexicon, built once per process."""
    global _detector
    if _detector is None:
        _detector = CrisisDetector(load_lexicon())
    return _detector
