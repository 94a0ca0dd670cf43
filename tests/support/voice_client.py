"""A caller in Python for the voice tests: an aiortc peer on 127.0.0.1 that speaks from a
PCM buffer and counts the sound it hears back; on a speakerphone without echo cancellation
(`echo_loss_db`), what it hears comes back into its microphone."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import deque
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame

from server.ai.audio import decode_to_pcm
from server.voice.outbound import FRAME_SAMPLES, SAMPLE_RATE, SpeakerTrack
from server.voice.peer import LOOPBACK, host_addresses

# pocketsphinx's bundled English model recognizes this espeak-ng voice and sentence well
UTTERANCE = "I want to know about services for senior citizens"
KEYWORDS = ("senior", "citizens", "services")
LOUD = 500  # peak sample value of a frame that carries sound rather than silence


def spoken_pcm(text: str = UTTERANCE, voice: str = "en-us+f2") -> np.ndarray:
    """`text` spoken by espeak-ng as 48 kHz mono float samples, silence trimmed off."""
    samples = np.frombuffer(decode_to_pcm(spoken_wav(text, voice), SAMPLE_RATE), dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) > 300)
    return samples[loud[0] : loud[-1] + 1].astype(np.float64)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE))


def pink_noise(seconds: float, rms: float, seed: int = 1) -> np.ndarray:
    """Steady pink (1/f) noise, as a fan or air conditioning sounds, at `rms`."""
    n = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
    noise = np.fft.irfft(spectrum, n)
    return noise * rms / np.sqrt(np.mean(noise**2))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples[np.abs(samples) > 300] ** 2)))


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples -> s16 bytes, clipped as a microphone would."""
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def spoken_wav(text: str = UTTERANCE, voice: str = "en-us+f2") -> bytes:
    """`text` spoken by espeak-ng (in English unless `voice` says), as a WAV file."""
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return result.stdout


class EchoingMic(SpeakerTrack):
    """A microphone next to the loudspeaker: what the caller says, plus what it hears
    `delay` seconds later and `loss_db` softer (a speakerphone without echo cancellation)."""

    def __init__(self, delay: float, loss_db: float) -> None:
        super().__init__()
        self._delay = delay
        self._gain = 10 ** (-loss_db / 20)
        self._heard: deque[tuple[float, np.ndarray]] = deque()

    def hear(self, samples: np.ndarray) -> None:
        self._heard.append((time.monotonic(), samples * self._gain))

    async def recv(self) -> Any:
        frame = await super().recv()
        due = time.monotonic() - self._delay
        while len(self._heard) > 1 and self._heard[1][0] <= due:
            self._heard.popleft()  # a backlog (the loop was late): keep the echo's delay
        if not self._heard or self._heard[0][0] > due:
            return frame
        echo = self._heard.popleft()[1][:FRAME_SAMPLES]
        mixed = frame.to_ndarray()[0].astype(np.float64)
        mixed[: echo.size] += echo
        out = AudioFrame.from_ndarray(
            np.clip(np.round(mixed), -32768, 32767).astype("<i2").reshape(1, -1),
            format="s16",
            layout="mono",
        )
        out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
        return out


class Caller:
    def __init__(self, echo_loss_db: float | None = None, echo_delay: float = 0.15) -> None:
        # no STUN server: nothing but 127.0.0.1 is ever contacted
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = SpeakerTrack() if echo_loss_db is None else EchoingMic(echo_delay, echo_loss_db)
        self.pc.addTrack(self.mic)
        self.frames_heard = 0
        self.loud_frames = 0
        self.last_loud = 0.0  # loop time of the last frame with sound in it
        self._sound = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    async def offer(self) -> dict[str, str]:
        offer = await self.pc.createOffer()
        with host_addresses([LOOPBACK]):
            await self.pc.setLocalDescription(offer)
        return {"type": "offer", "sdp": self.pc.localDescription.sdp}

    async def accept(self, answer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    def play(self, samples: np.ndarray) -> asyncio.Future[None]:
        """Play 48 kHz mono float samples into the call; done once sent."""
        return self.mic.play(pcm16(samples)).finished

    async def silent_for(self, seconds: float, timeout: float = 30) -> None:
        """Wait until the AI has been silent for `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() - self.last_loud < seconds:
            if loop.time() > deadline:
                raise TimeoutError("the AI kept talking")
            await asyncio.sleep(0.05)

    def say(self, wav: bytes) -> asyncio.Future[None]:
        """Play a WAV into the call; the future is done once it has been sent."""
        return self.mic.play(decode_to_pcm(wav, SAMPLE_RATE)).finished

    async def sound(self, timeout: float = 20) -> None:
        """Wait until frames with sound in them arrive on the AI's track."""
        await asyncio.wait_for(self._sound.wait(), timeout)

    def quiet(self) -> None:
        """Forget the sound heard so far."""
        self._sound.clear()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.create_task(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, AudioFrame):
                continue
            self.frames_heard += 1
            samples = frame.to_ndarray()
            if isinstance(self.mic, EchoingMic):
                channels = len(frame.layout.channels)
                self.mic.hear(samples[0, ::channels].astype(np.float64))
            if int(np.abs(samples).max()) > LOUD:
                self.loud_frames += 1
                self.last_loud = asyncio.get_running_loop().time()
                self._sound.set()

    async def close(self) -> None:
        await self.pc.close()
        self.mic.stop()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
