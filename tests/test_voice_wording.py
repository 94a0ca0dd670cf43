"""The words' side of the end of turn (`server.voice.wording`): how a transcript ends."""

from __future__ import annotations

import pytest

from server.voice.wording import Wording, judge

FINISHED = [
    "노인 복지 서비스 알려줘",  # -어, a plain final ending
    "노인 복지 서비스 알려주세요.",
    "어떻게 신청해요?",
    "도와주실 수 있나요",
    "감사합니다",
    "돈이 없어서요",  # a connective ending made final by the polite 요
    "기초연금이요",
    "네",  # an answer
    "아니요",
    "My mother is seventy years old, and she lives alone.",
    "Can you help me?",
]
UNFINISHED = [
    "저희 어머니가 다리가 불편하셔서",  # -어서, a connective ending
    "어머니가 일흔 살이신데",
    "어머니가 혼자 사시고",
    "기초연금 신청하려면",
    "기초연금 받을 수 있는",  # an adnominal ending: a noun must follow
    "노인 복지 서비스에 대해서",
    "어머니가",  # a subject particle
    "복지관에",
    "제가 알고 싶은 건",  # a topic particle
    "그리고",  # a conjunction
    "음",  # hesitation
    "노인 복지 서비스 알려줘...",  # trailing off
    "노인 복지 서비스,",
    "My mother is seventy years old, and",
    "I want to know about",
]
UNSURE = [
    "",
    "   ",
    "노인 복지 서비스",  # a noun phrase: an answer, or the start of a sentence
    "장애인 활동지원",
    "I want to know about services for senior citizens",  # no punctuation to go by
    "129",
]


@pytest.mark.parametrize("text", FINISHED)
def test_a_closed_sentence_is_finished(text: str) -> None:
    assert judge(text) is Wording.FINISHED


@pytest.mark.parametrize("text", UNFINISHED)
def test_a_sentence_left_open_is_unfinished(text: str) -> None:
    assert judge(text) is Wording.UNFINISHED


@pytest.mark.parametrize("text", UNSURE)
def test_words_that_cannot_tell_leave_it_to_the_sound(text: str) -> None:
    assert judge(text) is Wording.UNSURE
