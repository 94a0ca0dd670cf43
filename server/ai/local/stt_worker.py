"""The offline recognizer's own process: `python -m server.ai.local.stt_worker MODEL LANGUAGE
CACHE_DIR THREADS HOTWORDS`.

faster-whisper (CTranslate2) releases the GIL for most of its work, but not all of it: in a
thread of the server it still adds ~1.5 ms to the event loop's median lag, and its 150 MB of
weights and ~300 MB of working memory would sit in every server process's heap. In a process
of its own it cannot stall a call's outgoing audio at all. The model is loaded (and its
files joined and checked, `whisper_files`) once, when the process starts.

The protocol on stdin/stdout is framed: a request is `<u32 length><audio file>`, a reply
`<u8 status><u32 length><utf-8 text>` (status 0: the transcript, 1: an error). The first
reply, sent once the model is loaded, is an empty "ready" (or an error: the model could not
be loaded).
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from server.ai.audio import decode_to_pcm
from server.ai.local.transcript_guard import (
    COMPRESSION_RATIO_LIMIT,
    Segment,
    clean_transcript,
    token_budget,
)
from server.ai.speech import SpeechError

OK, FAILED = 0, 1
SAMPLE_RATE = 16000
QUIET_PEAK = 200  # of 32767: below this nothing was said
# a little silence on both sides helps the recognizer settle at the edges of an utterance
_PADDING = np.zeros(SAMPLE_RATE // 4, dtype=np.float32)


def load(model: str, cache_dir: Path, threads: int) -> Any:
    from faster_whisper import WhisperModel

    from server.ai.local.whisper_files import resolve_model

    # int8 on the CPU: the fastest CTranslate2 has there, and the smallest in memory
    return WhisperModel(
        resolve_model(model, cache_dir), device="cpu", compute_type="int8", cpu_threads=threads
    )


def transcribe(model: Any, audio: bytes, language: str | None, hotwords: str = "") -> str:
    """The words in an audio file (any container PyAV reads); '' for silence."""
    pcm = np.frombuffer(decode_to_pcm(audio, SAMPLE_RATE), dtype="<i2")
    if pcm.size == 0 or int(np.abs(pcm.astype(np.int32)).max()) < QUIET_PEAK:
        return ""  # Whisper writes captions on silence: never give it any
    samples = np.concatenate([_PADDING, pcm.astype(np.float32) / 32768.0, _PADDING])
    segments, _ = model.transcribe(
        samples,
        language=language,
        beam_size=5,
        # Fallback to a warmer decode only when the text compresses like a loop
        temperature=(0.0, 0.4),
        compression_ratio_threshold=COMPRESSION_RATIO_LIMIT,
        # whisper's own "no speech" skip drops espeak-ng's Korean (no_speech_prob ~0.6):
        # the VAD and the loudness gate keep silence out; `keep` judges the rest
        no_speech_threshold=None,
        log_prob_threshold=None,
        condition_on_previous_text=False,  # a loop in one window does not seed the next
        without_timestamps=True,
        max_new_tokens=token_budget(pcm.size / SAMPLE_RATE),
        vad_filter=True,  # Silero VAD (shipped inside faster-whisper): noise is no speech
        hotwords=hotwords or None,
    )
    return clean_transcript(
        [Segment(s.text, s.no_speech_prob, s.avg_logprob, s.compression_ratio) for s in segments]
    )


def serve(requests: BinaryIO, replies: BinaryIO, argv: list[str]) -> None:
    name, language, cache_dir, threads, hotwords = argv
    try:
        model = load(name, Path(cache_dir), int(threads))
    except Exception as exc:  # missing package, bad digest, unknown model, no internet
        _reply(replies, FAILED, f"the offline Whisper model could not be loaded: {exc}")
        return
    _reply(replies, OK, "")
    while len(header := requests.read(4)) == 4:
        (size,) = struct.unpack("<I", header)
        audio = requests.read(size)
        try:
            _reply(replies, OK, transcribe(model, audio, language or None, hotwords))
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
    serve(sys.stdin.buffer, protocol, sys.argv[1:])
