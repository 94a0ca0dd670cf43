"""The words' side of the end of turn: does the transcript so far read as finished?

Korean marks the end of a sentence in its grammar: a final ending (`-요`, `-ㅂ니다`, `-어`,
`-나요`: EF in Kiwi's tags) closes it, while a connective ending (`-는데`, `-고`, `-어서`:
EC), a particle (`어머니가`, `복지관에`), an adnominal ending (`받을 수 있는`) or a
conjunction (`그리고`) leaves it open. Kiwi (`server.korean`, already loaded for the safety
detector) tells them apart in a fraction of a millisecond, so at a pause the transcript of
the utterance so far is a second judge beside Smart Turn's reading of the intonation, and
one that synthetic or monotone voices do not fool. Other languages (the model may answer
in English) are judged by their punctuation and a trailing conjunction or preposition.

    FINISHED    the words close a sentence: the turn may end now
    UNFINISHED  the words stop mid-sentence: the caller is still talking
    UNSURE      a bare noun phrase, a filler-free fragment, no punctuation: no opinion
"""

from __future__ import annotations

import enum
import re

from server.korean import Morpheme, analyse

# Punctuation and symbols, skipped when looking for the last word (Sejong tags)
_MARKS = {"SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB", "W_EMOJI"}
# The sentence stops in the middle of a clause
_OPEN_TAGS = {
    "EC",  # connective ending: 살이신데, 사시고, 힘들어서
    "ETM",  # adnominal ending: 받을 수 있는
    "EP",  # a pre-final ending with nothing after it
    "JKS", "JKC", "JKG", "JKO", "JKB", "JKV", "JKQ", "JC",  # case particles: 어머니가, 복지관에
    "MAJ",  # conjunctive adverb: 그리고, 그래서
    "MM",  # determiner: 이, 그, 저 (before a noun)
    "XPN",  # prefix
}  # fmt: skip
# 요 after a connective ending makes it polite and final: 없어서요, 살이신데요
_POLITE = {"요", "이요"}
# Hesitation: the caller is looking for words
_FILLERS = {"음", "어", "그", "저", "저기", "아", "뭐", "그러니까", "있잖아", "에"}

_LEFT_OPEN_MARK = re.compile(r"(\.\.\.|…|,|、)\s*$")
_FINAL_MARK = re.compile(r"[.?!。？！]\s*$")
_OPEN_WORDS = {
    "and", "or", "but", "so", "because", "about", "the", "a", "an", "to", "of", "for", "with",
    "in", "on", "at", "my", "your", "if", "that", "um", "uh", "like", "is", "are",
}  # fmt: skip
_LAST_WORD = re.compile(r"([A-Za-z']+)\W*$")


class Wording(enum.Enum):
    FINISHED = "finished"
    UNFINISHED = "unfinished"
    UNSURE = "unsure"


def judge(text: str) -> Wording:
    """How the transcript `text` ends. Blocking (Kiwi, ~0.1-0.4 ms; the first call loads it)."""
    if not text.strip():
        return Wording.UNSURE
    if _LEFT_OPEN_MARK.search(text):
        return Wording.UNFINISHED  # trailing off, or a clause still open
    last = _last_word(analyse(text))
    if last is None:
        return Wording.UNSURE
    if last.tag == "SL":  # a language written in Latin letters
        return _judge_latin(text)
    return _judge_korean(last)


def _last_word(morphemes: list[Morpheme]) -> Morpheme | None:
    for morpheme in reversed(morphemes):
        if morpheme.tag not in _MARKS:
            return morpheme
    return None


def _judge_korean(last: Morpheme) -> Wording:
    tag = last.tag.split("-")[0]  # VA-I (an irregular stem) -> VA
    if tag == "EF":
        return Wording.FINISHED
    if tag == "JX":  # a topic particle leaves it open, except the polite 요
        return Wording.FINISHED if last.form in _POLITE else Wording.UNFINISHED
    if tag == "IC":  # 네, 아니요 answer; 음, 저기 hesitate
        return Wording.UNFINISHED if last.form in _FILLERS else Wording.FINISHED
    if tag in _OPEN_TAGS:
        return Wording.UNFINISHED
    return Wording.UNSURE  # a noun phrase (장애인 활동지원), an adverb, a number


def _judge_latin(text: str) -> Wording:
    word = _LAST_WORD.search(text)
    if word is not None and word.group(1).lower() in _OPEN_WORDS:
        return Wording.UNFINISHED
    if _FINAL_MARK.search(text):
        return Wording.FINISHED
    return Wording.UNSURE
