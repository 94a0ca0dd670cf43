"""The offline recognizer's own process: `python -m server.ai.local.sphinx_worker`.

pocketsphinx holds the GIL while it decodes (up to a second for a long utterance): in a
thread of the server it would freeze every call's outgoing audio meanwhile; in a process of
its own it cannot. The protocol on stdin/stdout is framed: a request is `<u32 length><audio
file>`, a reply `<u8 status><u32 length><utf-8 text>` (status 0: the transcript, 1: an
error). The first reply, sent once the model is loaded, is an empty "ready".
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Any, BinaryIO

import numpy as np

from server.ai.audio import decode_to_pcm
from server.ai.speech import SpeechError

OK, FAILED = 0, 1
SAMPLE_RATE = 16000
QUIET_PEAK = 200  # of 32767: below this nothing was said
# a little silence on both sides helps the recognizer settle at the edges of an utterance
_PADDING = b"\0\0" * (SAMPLE_RATE // 4)


def load() -> Any:
    from pocketsphinx import Decoder

    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")


def transcribe(decoder: Any, audio: bytes) -> str:
    """The words in an audio file (any container PyAV reads); '' for silence."""
    pcm = decode_to_pcm(audio, SAMPLE_RATE)
    if _quiet(pcm):
        return ""  # the recognizer "hears" words in pure silence
    decoder.start_utt()
    decoder.process_raw(_PADDING + pcm + _PADDING, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr.strip() if hypothesis is not None else ""


def _quiet(pcm: bytes) -> bool:
    samples = np.frombuffer(pcm, dtype="<i2")
    return samples.size == 0 or int(np.abs(samples.astype(np.int32)).max()) < QUIET_PEAK


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    decoder = load()
    _reply(replies, OK, "")
    while len(header := requests.read(4)) == 4:
        (size,) = struct.unpack("<I", header)
        audio = requests.read(size)
        try:
            _reply(replies, OK, transcribe(decoder, audio))
        except SpeechError as exc:
            _reply(replies, FAILED, str(exc))


def _reply(replies: BinaryIO, status: int, text: str) -> None:
    data = text.encode("utf-8")
    replies.write(struct.pack("<BI", status, len(data)) + data)
    replies.flush()


if __name__ == "__main__":
    # the protocol owns stdout; anything a library prints goes to stderr instead
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, protocol)
