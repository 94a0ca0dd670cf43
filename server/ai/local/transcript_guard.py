"""Guards against Whisper's known failure modes, applied to what the model decoded.

- **Repetition loops**: on unclear audio Whisper may repeat a word or phrase until its token
  limit (`이 영상은, 이 영상은, ...`, `4,4,4,4,...`). The decoder is bounded (a token budget
  per second of audio) and retried once warmer when the text compresses too well; what still
  repeats is cut to one occurrence.
- **Text on silence**: fed silence or noise, Whisper writes the captions it was trained on
  (`시청해 주셔서 감사합니다`, `구독과 좋아요`, `MBC 뉴스 ...`). Silence and noise are kept
  out by the loudness gate and the VAD before decoding; a segment that is only such a
  caption, or that the model itself marks as probably not speech while unsure of its words,
  is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# whisper's own thresholds (openai/whisper transcribe.py): above this compression ratio a
# segment is a repetition loop; "no speech" when both of the others hold
COMPRESSION_RATIO_LIMIT = 2.4
NO_SPEECH_PROBABILITY = 0.8  # stricter than whisper's 0.6: synthetic voices score ~0.6
LOW_AVERAGE_LOGPROB = -1.0
# captions of the video subtitles Whisper was trained on, written on silence
CAPTION_PATTERNS = re.compile(
    r"(시청해\s*주셔서|시청\s*감사|구독과\s*좋아요|좋아요와\s*구독|구독\s*부탁|알림\s*설정"
    r"|자막\s*(제공|by)|(MBC|KBS|SBS|YTN)\s*뉴스|다음\s*영상에서\s*만나요"
    r"|thank(s| you) for watching|please subscribe|subtitles? by)",
    re.IGNORECASE,
)
# a phrase (two or more letters) 3+ times in a row, or one character 8+ times (a phone
# number's 1111 stays, and so does "네 네 네")
_REPEATED_PHRASE = re.compile(r"(\S.{0,28}?\S)(?:[\s,.]*\1){2,}", re.DOTALL)
_REPEATED_CHARACTER = re.compile(r"(\S)(?:[\s,.]*\1){7,}")
TOKENS_PER_SECOND = 12  # Korean runs ~5 syllables a second, ~2 tokens each at most
MIN_TOKENS = 24
MAX_TOKENS = 224  # whisper's own limit per 30 s window


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


def token_budget(seconds: float) -> int:
    """At most this many tokens for `seconds` of audio: bounds a loop's cost."""
    return max(MIN_TOKENS, min(MAX_TOKENS, round(seconds * TOKENS_PER_SECOND) + MIN_TOKENS))


def collapse_repeats(text: str) -> str:
    """`이 영상은, 이 영상은, 이 영상은, 이 영상은` -> `이 영상은`."""
    return _REPEATED_CHARACTER.sub(r"\1", _REPEATED_PHRASE.sub(r"\1", text))


def keep(segment: Segment) -> bool:
    text = segment.text.strip()
    if not text:
        return False
    unsure = segment.avg_logprob < LOW_AVERAGE_LOGPROB
    if segment.no_speech_prob > NO_SPEECH_PROBABILITY and unsure:
        return False
    return not (CAPTION_PATTERNS.search(text) and len(text) <= 40)


def clean_transcript(segments: list[Segment]) -> str:
    """The words worth answering: kept segments, repeats collapsed, spaces tidied."""
    text = " ".join(collapse_repeats(s.text.strip()) for s in segments if keep(s))
    # a token budget may end mid-character: byte-level tokens decode to U+FFFD then
    return re.sub(r"\s+", " ", text.replace("\ufffd", "")).strip()
