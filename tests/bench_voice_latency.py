"""Voice latency: end of the caller's speech -> the AI's first audio frame out.

Offline providers (pocketsphinx, the local model, espeak-ng), a Python WebRTC caller on
127.0.0.1, five utterances; prints each turn's breakdown and the median.

    .venv/bin/python -m tests.bench_voice_latency [turns]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from server.calls.keys import CALLS
from server.voice.keys import VOICE_CALLS
from tests.conftest import make_settings, serve
from tests.sio import RecordingClient
from tests.voice_client import Caller, eventually, spoken_wav


async def measure(turns: int) -> list[dict[str, int | None]]:
    os.environ["RTC_ICE_LOOPBACK"] = "1"
    os.environ["VOICE_GREETING_DELAY_MS"] = "200"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        async with serve(make_settings(url, log_level="WARNING")) as live:
            call = await live.app[CALLS].create("01012345678")
            signaling = RecordingClient("/signaling")
            await signaling.connect(live.url)
            peer = {"sessionId": call.session_id, "peerId": "bench"}
            await signaling.call("join-session", peer)
            caller = Caller()
            await signaling.emit("offer", {**peer, "offer": await caller.offer()})
            await caller.accept((await signaling.next("answer", timeout=10))["answer"])
            await signaling.next("ai-audio-response", timeout=20)  # the greeting
            ai_call = live.app[VOICE_CALLS].get(call.session_id, "bench")
            assert ai_call is not None
            await eventually(lambda: not ai_call.track.playing)
            wav = spoken_wav()
            done = ai_call.pipeline.turns
            try:
                for turn in range(turns):
                    await caller.say(wav)
                    await eventually(lambda: len(done) > turn, timeout=60)  # noqa: B023
                    await eventually(lambda: done[turn].first_audio_out is not None)  # noqa: B023
                    await eventually(lambda: not ai_call.track.playing, timeout=60)
                return [t.breakdown_ms() for t in ai_call.pipeline.turns]
            finally:
                await caller.close()
                await signaling.close()


def main() -> None:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    results = asyncio.run(measure(turns))
    for number, breakdown in enumerate(results, 1):
        print(f"turn {number}: " + ", ".join(f"{k}={v} ms" for k, v in breakdown.items()))
    totals = [b["first_audio_out"] for b in results if b["first_audio_out"] is not None]
    print(f"median end of speech -> first AI audio frame: {statistics.median(totals):.0f} ms")


if __name__ == "__main__":
    main()
