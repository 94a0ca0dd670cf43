"""The echo guard: is the speech the VAD heard the caller, or the AI's own voice coming back?

A speakerphone, or a browser without echo cancellation, plays the AI's voice into the
caller's microphone. Unchecked, that echo holds and interrupts the AI and becomes an
utterance the AI answers. The server knows what it sent, so it checks, on levels:

    each 20 ms unit the track sends while the AI talks -> its level and when it went out
    each caller chunk while the AI talks               -> its level, kept for 0.77 s
    a caller chunk the VAD calls speech is echo only if
      1. no louder than the loudest unit sent in the  (Geigel's double-talk test)
         last ECHO_PATH_SECONDS minus ECHO_RETURN_LOSS_DB, and
      2. the caller's levels of the last 0.77 s follow (the envelope: echo is the AI's
         the AI's, some delay within the path later     syllables, a caller their own)
         (correlation >= ECHO_CORRELATION), a delay
         at which this chunk is no louder than what
         was sent minus the loss (+ALIGNMENT_SLACK_DB)

The first test alone takes a caller speaking softer than the AI's loudest syllables for
echo, and the two levels are not on one scale: the sent one is the TTS audio's RMS (dBFS,
48 kHz, before Opus), the heard one the caller's microphone's after its gain control, Opus,
16 kHz and without DC. So a quiet chunk is echo only if it is also shaped like what was
sent. A chunk louder than any echo keeps the caller's next speech theirs for
HANGOVER_SECONDS. For the first CORRELATED_CHUNKS of the AI talking there is too little
history to correlate: the level test alone decides.

When the AI has sent nothing for ECHO_PATH_SECONDS, a chunk costs one comparison. Not
caught: an echo louder than the assumed loss (a loud speakerphone, the browser's gain
control raising it), or later than the window. Figures and limits: docs/voice.md#barge-in.
"""

from __future__ import annotations

import math

import numpy as np

from server.metrics import VOICE_TURN_EVENTS
from server.voice.vad import FRAME_MS, sound_power

ECHO_RETURN_LOSS_DB = 6.0  # the echo comes back at least this much softer than it went out
ECHO_PATH_SECONDS = 0.6  # the longest delay from a unit sent to its echo heard
ECHO_CORRELATION = 0.7  # echo measured >= 0.78, a caller's own speech mostly < 0.7
ALIGNMENT_SLACK_DB = 3.0  # the chunk against the units sent one delay earlier: Opus, timing
# once a chunk was louder than any echo, the caller's speech is theirs until it stops this
# long (their softer syllables under the AI's louder ones): the guard does not cut a turn the
# caller has plainly started into pieces
HANGOVER_SECONDS = 0.15
SILENT_DB = -120.0  # a unit of digital silence (the track held, or starved)
HISTORY_UNITS = 200  # 4 s of 20 ms units, far more than the echo path
HEARD_CHUNKS = 24  # the caller's levels correlated: 0.77 s
CORRELATED_CHUNKS = 10  # fewer (the AI just started) and the level test alone decides
_FLOOR_DB = -60.0  # quieter is all "nothing" to the correlation (the VAD's gate is -55)
_LAGS = np.arange(0.0, ECHO_PATH_SECONDS + 0.01, 0.02)  # the echo delays tried
_CHUNK_SECONDS = FRAME_MS / 1000
_UNIT_SECONDS = 0.02  # the track's unit
_FULL_SCALE_POWER = 32768.0**2
_SILENT_POWER = 10 ** (SILENT_DB / 10)  # relative to full scale
_SUPPRESSED = VOICE_TURN_EVENTS.labels("echo_suppressed")


def unit_levels(pcm: bytes, unit_samples: int) -> list[float]:
    """The RMS level (dBFS) of each `unit_samples` of s16 mono PCM, in one numpy pass."""
    samples = np.frombuffer(pcm, dtype="<i2")
    usable = samples.size - samples.size % unit_samples
    units = samples[:usable].astype(np.float32).reshape(-1, unit_samples)
    power = np.einsum("ij,ij->i", units, units) / unit_samples
    return (10 * np.log10(np.maximum(power / _FULL_SCALE_POWER, _SILENT_POWER))).tolist()


def chunk_level(chunk: bytes) -> float:
    """The RMS level (dBFS) of s16 PCM, its DC offset removed."""
    power, _ = sound_power(np.frombuffer(chunk, dtype="<i2").astype(np.float32))
    return 10 * math.log10(max(power / _FULL_SCALE_POWER, _SILENT_POWER))


class Levels:
    """A ring of (time, level): the last `size` recorded."""

    def __init__(self, size: int) -> None:
        self._at = np.full(size, -math.inf)
        self._level = np.full(size, SILENT_DB)
        self._next = 0
        self.last_at = -math.inf  # monotonic: when the last one was recorded

    def record(self, at: float, level: float) -> None:
        self._at[self._next] = at
        self._level[self._next] = level
        self._next = (self._next + 1) % self._at.size
        self.last_at = at

    def loudest_since(self, since: float) -> float:
        """The loudest level (dBFS) recorded at or after `since`; SILENT_DB if none."""
        recent = self._level[self._at >= since]
        return float(recent.max()) if recent.size else SILENT_DB

    def since(self, since: float) -> tuple[np.ndarray, np.ndarray]:
        """(times, levels) recorded at or after `since`, oldest first."""
        at, level = np.roll(self._at, -self._next), np.roll(self._level, -self._next)
        recent = at >= since
        return at[recent], level[recent]


class SentLevels(Levels):
    """What the AI's track sent, unit by unit: the last HISTORY_UNITS units. The track
    records only while it has clips to play."""

    def __init__(self) -> None:
        super().__init__(HISTORY_UNITS)


class EchoGuard:
    """Every caller chunk goes through `callers`: the VAD's verdict, minus the AI's echo."""

    def __init__(self, sent: SentLevels, return_loss_db: float = ECHO_RETURN_LOSS_DB) -> None:
        self._sent = sent
        self._return_loss = return_loss_db
        self._heard = Levels(HEARD_CHUNKS)
        self._caller_until = -math.inf  # the hangover of the caller's last loud chunk

    def callers(self, chunk: bytes, speech: bool, now: float) -> bool:
        """True when `chunk` is the caller speaking: speech, and not the AI's echo."""
        since = now - ECHO_PATH_SECONDS
        if self._sent.last_at < since:
            return speech  # the AI has been quiet longer than any echo takes
        level = chunk_level(chunk)
        self._heard.record(now, level)
        if not speech:
            return False
        if level > self._sent.loudest_since(since) - self._return_loss:
            self._caller_until = now + HANGOVER_SECONDS
            return True  # louder than the echo can be: the caller (over the echo, maybe)
        if now < self._caller_until:  # the caller still talking: their turn goes on
            self._caller_until = now + HANGOVER_SECONDS
            return True
        if not self._follows_what_was_sent(level, now):
            return True
        _SUPPRESSED.inc()
        return False

    def _follows_what_was_sent(self, level: float, now: float) -> bool:
        """Do the caller's recent levels follow the AI's, at a delay within the path at which
        this chunk is also no louder than what was sent then, minus the loss? (Pearson's
        correlation of the dB envelopes, every delay tried.)"""
        heard_at, heard = self._heard.since(now - HEARD_CHUNKS * _CHUNK_SECONDS - 0.01)
        if heard.size < CORRELATED_CHUNKS:
            return True  # too early to tell: the level test alone decides
        sent_at, sent = self._sent.since(now - HEARD_CHUNKS * _CHUNK_SECONDS - 1.0)
        if sent.size < 2:
            return True
        # the sent level at each chunk's middle, each delay a row: the nearest unit's, or
        # nothing where the track sent nothing (idle between replies)
        when = heard_at[None, :] - _LAGS[:, None] - _CHUNK_SECONDS / 2
        after = np.clip(np.searchsorted(sent_at, when), 1, sent_at.size - 1)
        nearest = np.where(when - sent_at[after - 1] < sent_at[after] - when, after - 1, after)
        expected = np.where(
            np.abs(sent_at[nearest] - when) <= _UNIT_SECONDS,
            np.maximum(sent[nearest], _FLOOR_DB),
            _FLOOR_DB,
        )
        x = np.maximum(heard, _FLOOR_DB)
        x -= x.mean()
        y = expected - expected.mean(axis=1, keepdims=True)
        spread = math.sqrt(float(x @ x)) * np.sqrt(np.einsum("ij,ij->i", y, y))
        correlation = (y @ x) / np.maximum(spread, 1e-9)
        then = expected[:, -2:].max(axis=1)  # what was sent as this chunk's sound, per delay
        explained = level <= then - self._return_loss + ALIGNMENT_SLACK_DB
        return bool(np.any((correlation >= ECHO_CORRELATION) & explained))
