"""An offline sentiment lexicon: Korean stems and English words, with simple negation.

Crude by design (no model, no network): counts feeling words, flips one when it is negated
("좋지 않아요", "걱정 없어요", "not happy"), and turns the balance into a 0..1 score.
"""

from __future__ import annotations

import re

POSITIVE_KO = (
    "감사", "고마", "고맙", "좋", "기쁘", "기뻐", "행복", "다행", "만족", "최고", "훌륭",
    "사랑", "괜찮", "편하", "편안", "든든", "반갑", "반가", "친절",
)  # fmt: skip
NEGATIVE_KO = (
    "힘들", "힘드", "슬프", "슬퍼", "우울", "화나", "화가", "짜증", "싫", "불안", "걱정",
    "아프", "아파", "외롭", "외로", "어렵", "어려", "불만", "최악", "죽고", "괴롭", "괴로",
    "막막", "답답", "무서", "무섭", "두렵", "두려", "실망", "불편", "속상",
)  # fmt: skip
POSITIVE_EN = frozenset(
    "thank thanks good great happy glad love excellent nice wonderful helpful fine awesome "
    "pleased grateful".split()
)
NEGATIVE_EN = frozenset(
    "bad sad angry hate terrible awful worried worry upset lonely depressed difficult "
    "problem sick pain afraid scared frustrated disappointed unhappy annoyed".split()
)
_NEGATED_AFTER_KO = ("않", "없", "못")  # 좋지 않다, 걱정 없다, 행복하지 못하다
_NEGATING_BEFORE = frozenset({"안", "못", "not", "no", "never", "don't", "isn't", "wasn't"})
_WORDS = re.compile(r"[\w']+")


def lexicon_score(text: str) -> float:
    """0 = very negative, 0.5 = neutral (or no feeling words), 1 = very positive."""
    words = [w.lower() for w in _WORDS.findall(text)]
    positive = negative = 0
    for i, word in enumerate(words):
        polarity = _polarity(word)
        if polarity == 0:
            continue
        if _negated(words, i):
            polarity = -polarity
        if polarity > 0:
            positive += 1
        else:
            negative += 1
    return 0.5 + 0.5 * (positive - negative) / (positive + negative + 1)


def _polarity(word: str) -> int:
    if word in POSITIVE_EN:
        return 1
    if word in NEGATIVE_EN:
        return -1
    if any(stem in word for stem in NEGATIVE_KO):
        return -1
    if any(stem in word for stem in POSITIVE_KO):
        return 1
    return 0


def _negated(words: list[str], i: int) -> bool:
    before = words[i - 1] if i > 0 else ""
    if before in _NEGATING_BEFORE or before.endswith("n't"):
        return True
    word, after = words[i], words[i + 1] if i + 1 < len(words) else ""
    # a Korean stem negated later in the same word (좋지않아) or by the next one (좋지 않아)
    tail = word[1:] + " " + after
    return any(mark in tail for mark in _NEGATED_AFTER_KO) and not word.isascii()
