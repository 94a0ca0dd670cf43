"""Cut a streamed reply into sentences, so speech can start before the reply is finished."""

from __future__ import annotations

import re

# a sentence ends at . ! ? (and their full-width forms) followed by a space, or at a newline
_BOUNDARY = re.compile(r"(?<=[.!?。！？…])[ \t]+|\n+")
_LIST_NUMBER = re.compile(r"\d+[.)]")  # "1." of a numbered list is not a sentence
_MARKUP = re.compile(r"[*#`_>|]+")
_BULLET = re.compile(r"^[ \t]*[-•·][ \t]+", re.MULTILINE)
_WORD = re.compile(r"\w")


class SentenceSplitter:
    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, delta: str) -> list[str]:
        """The sentences `delta` completes, cleaned for speech."""
        self._buffer += delta
        sentences: list[str] = []
        start = 0
        for boundary in _BOUNDARY.finditer(self._buffer):
            candidate = self._buffer[start : boundary.start()]
            if _LIST_NUMBER.fullmatch(candidate.strip()):
                continue
            sentences.append(candidate)
            start = boundary.end()
        self._buffer = self._buffer[start:]
        return [s for s in map(speakable, sentences) if s]

    def flush(self) -> list[str]:
        """Whatever is left once the reply is complete."""
        rest, self._buffer = self._buffer, ""
        spoken = speakable(rest)
        return [spoken] if spoken else []


def speakable(text: str) -> str:
    """The text without the markup a voice would read out; '' when nothing is left to say."""
    text = _MARKUP.sub("", _BULLET.sub("", text))
    text = " ".join(text.split())
    return text if _WORD.search(text) else ""
