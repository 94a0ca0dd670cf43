"""The crisis lexicon (`data/lexicon.tsv`): entries of morphemes in order, each with the
category and level it signals. See the file's header for its format."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LEXICON_PATH = Path(__file__).parent / "data" / "lexicon.tsv"

Category = Literal["suicide", "self_harm", "violence", "medical"]
Level = Literal["high", "medium"]
CATEGORIES: tuple[Category, ...] = ("suicide", "self_harm", "violence", "medical")
LEVELS: tuple[Level, ...] = ("high", "medium")
EXCLUSION = "-"


@dataclass(frozen=True, slots=True)
class Entry:
    category: Category | None  # None: an exclusion
    level: Level | None
    steps: tuple[frozenset[str], ...]  # per position, the lemmas or forms that match
    example: str
    line: int


def load_lexicon(path: Path = LEXICON_PATH) -> tuple[Entry, ...]:
    """Every entry of the file; raises ValueError naming the line of a malformed one."""
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        entries.append(_parse(raw, number, path))
    return tuple(entries)


def _parse(raw: str, number: int, path: Path) -> Entry:
    cells = raw.split("\t")
    if len(cells) != 4:
        raise ValueError(f"{path}:{number}: expected 4 TAB-separated cells, got {len(cells)}")
    category, level, pattern, example = (c.strip() for c in cells)
    steps = tuple(frozenset(w.lower() for w in word.split("|") if w) for word in pattern.split())
    if not steps or not all(steps):
        raise ValueError(f"{path}:{number}: empty pattern")
    if category == EXCLUSION:
        return Entry(None, None, steps, example, number)
    if category not in CATEGORIES:
        raise ValueError(f"{path}:{number}: unknown category {category!r}")
    if level not in LEVELS:
        raise ValueError(f"{path}:{number}: unknown level {level!r}")
    return Entry(category, level, steps, example, number)  # type: ignore[arg-type]


def nouns_of(entries: Sequence[Entry]) -> set[str]:
    """Multi-syllable Hangul words of the patterns that are not verbs: taught to the
    analyser so it keeps them whole (번개탄, 수면제)."""
    words = set()
    for entry in entries:
        for step in entry.steps:
            for word in step:
                hangul = all("가" <= ch <= "힣" for ch in word)
                ending = word.endswith("다") or word.startswith(("을", "으", "려"))
                if hangul and len(word) >= 3 and not ending:
                    words.add(word)
    return words
