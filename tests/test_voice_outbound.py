"""The AI's outgoing audio without a peer: clips streamed into the track as they are decoded,
Opus packets instead of frames once Opus is negotiated, and the track's own accounting."""

from __future__ import annotations

import asyncio

import numpy as np
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from av.audio.frame import AudioFrame
from av.packet import Packet

from server.voice import opus
from server.voice.clips import units
from server.voice.outbound import FRAME_BYTES, SAMPLE_RATE, SpeakerTrack
from tests.support.fakes.openai_server import tone_mp3
from tests.support.fakes.spoken import pcm_wav

TONE = (np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE) * 8000).astype("<i2")


def loudness(packets: list[bytes]) -> list[int]:
    """Each Opus packet decoded, as its peak sample value."""
    decoder = OpusDecoder()
    return [
        int(np.abs(frame.to_ndarray()).max())  # type: ignore[attr-defined]
        for i, packet in enumerate(packets)
        for frame in decoder.decode(JitterFrame(packet, i * 960))
    ]


async def pcm_out(track: SpeakerTrack) -> bytes:
    frame = await track.recv()
    assert isinstance(frame, AudioFrame)
    return bytes(frame.planes[0])[:FRAME_BYTES]


async def test_a_streamed_clip_waits_for_its_audio_then_plays_it_in_order() -> None:
    track = SpeakerTrack()
    started: list[float] = []
    try:
        clip = track.open_clip(on_start=started.append)
        silent = await track.recv()  # nothing decoded yet: silence, and the clip waits
        assert isinstance(silent, AudioFrame) and not np.any(silent.to_ndarray())
        assert track.playing and not started
        first, second, third = (bytes([n]) * FRAME_BYTES for n in (1, 2, 3))
        clip.add([first, second], [-20.0, -30.0])
        assert await pcm_out(track) == first
        assert len(started) == 1
        assert await pcm_out(track) == second
        await track.recv()  # the next units are late: silence, counted as starving
        assert track.pacing.starved == 1 and not clip.finished.done()
        clip.add([third], [-40.0])
        clip.close()
        assert await pcm_out(track) == third
        await asyncio.wait_for(clip.finished, 1)
        assert not track.playing
        # what went out, for the echo guard: the units' levels while the clip played
        assert track.sent.loudest_since(0.0) == -20.0
        last_sent = track.sent.last_at
        pts = [(await track.recv()).pts for _ in range(2)]
        assert pts[1] - pts[0] == 960  # the clock runs on through silence
        assert track.pacing.frames == 7
        assert track.sent.last_at == last_sent  # idle silence is not recorded
    finally:
        track.stop()


async def test_an_opus_track_sends_packets_and_the_silence_packet() -> None:
    track = SpeakerTrack()
    track.send_opus = True
    try:
        idle = await track.recv()
        assert isinstance(idle, Packet) and bytes(idle) == opus.SILENCE
        encoder = opus.StreamEncoder()
        clip = track.open_clip()
        clip.add(encoder.encode(TONE.tobytes()), [-13.0] * 50)
        clip.close()
        sent = [await track.recv() for _ in range(50)]
        packets = [p for p in sent if isinstance(p, Packet)]
        assert len(packets) == 50
        assert [p.pts for p in packets] == [960 * n for n in range(1, 51)]
        heard = loudness([bytes(p) for p in packets])
        assert min(heard[5:]) > 4000  # the tone (after the codec's first few ms)
        assert loudness([opus.SILENCE]) == [0]
    finally:
        track.stop()


async def test_tts_audio_is_decoded_into_20_ms_units_a_step_at_a_time() -> None:
    wav = pcm_wav(TONE.tobytes(), SAMPLE_RATE)
    batches = list(units(wav, None))
    frames = [unit for batch, _ in batches for unit in batch]
    levels = [level for _, batch_levels in batches for level in batch_levels]
    assert len(levels) == len(frames)
    assert all(abs(level + 15.2) < 0.5 for level in levels[:50])  # the tone: 8000 RMS/sqrt(2)
    assert len(batches) > 10 and max(map(len, batches)) <= 3  # small steps
    assert all(len(unit) == FRAME_BYTES for unit in frames)
    assert b"".join(frames)[: len(TONE) * 2] == TONE.tobytes()

    encoded = [unit for batch, _ in units(tone_mp3(), opus.StreamEncoder()) for unit in batch]
    assert 25 <= len(encoded) <= 28  # 0.5 s, plus the encoder's lookahead pushed out
    assert max(loudness(encoded)) > 4000
