"""The Korean morphological analyser (kiwipiepy), loaded once per process.

Kiwi's model ships inside the `kiwipiepy_model` wheel: nothing is downloaded. Loading takes
one to three seconds and about 300 MB, so it happens once, in a worker thread
(`await warm_up()` from the app's start-up), and every caller shares the one instance.
Analysing a short message takes a fraction of a millisecond.
"""

from __future__ import annotations

import asyncio
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

_lock = threading.Lock()
_kiwi: Kiwi | None = None
_nouns: set[str] = set()  # taught to the analyser when it loads
# Kiwi's bonus for a taught word: at 0 it still splits 한부모 into 한 + 부모; 3 keeps it whole
# without swallowing neighbours (measured on the detector's and the search's examples)
USER_WORD_SCORE = 3.0
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Morpheme:
    form: str  # as written (a verb's stem: 죽)
    tag: str  # Sejong tag: NNG, VV, EC, SL...
    lemma: str  # dictionary form (죽다); the form for anything else


def analyser() -> Kiwi:
    """The shared analyser; the first call loads it (blocking: use `warm_up` on a loop)."""
    global _kiwi
    if _kiwi is None:
        with _lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                # The typo and multi-word dictionaries double the memory and add nothing
                # to what the detector and the search look for.
                kiwi = Kiwi(load_typo_dict=False, load_multi_dict=False)
                for word in _nouns:
                    kiwi.add_user_word(word, "NNG", USER_WORD_SCORE)
                kiwi.tokenize("준비")  # the first analysis builds lazy tables: pay it here
                _kiwi = kiwi
    return _kiwi


async def warm_up() -> None:
    """Load the analyser off the event loop (a no-op once loaded)."""
    if _kiwi is None:
        await asyncio.to_thread(analyser)


def add_nouns(words: Iterable[str]) -> None:
    """Teach the analyser nouns it would otherwise split in some contexts (번개탄 ->
    번개 + 타 + ㄴ). Modules call this at import, before the analyser loads; a word added
    later is taught at once (Kiwi then rebuilds its tables on the next analysis)."""
    with _lock:
        new = {w for w in words if len(w) >= 2 and not w.isspace()} - _nouns
        _nouns.update(new)
        if _kiwi is not None:
            for word in new:
                _kiwi.add_user_word(word, "NNG", USER_WORD_SCORE)


def normalize(text: str) -> str:
    """NFC text with runs of whitespace as one space."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def analyse(text: str) -> list[Morpheme]:
    """The morphemes of `text` (normalized first); an empty list for empty text."""
    text = normalize(text)
    if not text:
        return []
    tokens = analyser().tokenize(text)
    return [Morpheme(t.form, t.tag, t.lemma or t.form) for t in tokens]
