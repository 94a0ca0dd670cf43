"""Cut a streamed reply into sentences, so speech can start before the reply is finished.

With `first_clause`, the reply's first piece ends at its first clause ("네, ..." -> "네,"):
speech starts a clause earlier, while the rest of the first sentence is still streaming.
"""

from __future__ import annotations

import re

# a sentence ends at . ! ? (and their full-width forms) followed by a space, or at a newline
_BOUNDARY = re.compile(r"(?<=[.!?。！？…])[ \t]+|\n+")
# a clause ends at , ; : (and full-width forms) followed by a space: "1,000" is no clause
_CLAUSE = re.compile(r"(?<=[,;:，、；：])[ \t]+")
_LIST_NUMBER = re.compile(r"\d+[.)]")  # "1." of a numbered list is not a sentence
_MARKUP = re.compile(r"[*#`_>|]+")
_BULLET = re.compile(r"^[ \t]*[-•·][ \t]+", re.MULTILINE)
_WORD = re.compile(r"\w")


class SentenceSplitter:
    def __init__(self, *, first_clause: bool = False) -> None:
        self._buffer = ""
        self._first_clause = first_clause  # until the first piece has been cut

    def feed(self, delta: str) -> list[str]:
        """The sentences `delta` completes, cleaned for speech."""
        self._buffer += delta
        if self._first_clause:
            return self._first_piece()
        return self._sentences()

    def _first_piece(self) -> list[str]:
        sentences = self._sentences()
        if sentences:
            self._first_clause = False
            return sentences
        clause = _CLAUSE.search(self._buffer)
        if clause is None or not speakable(self._buffer[: clause.start()]):
            return []
        self._first_clause = False
        first, self._buffer = self._buffer[: clause.start()], self._buffer[clause.end() :]
        return [speakable(first), *self._sentences()]

    def _sentences(self) -> list[str]:
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
