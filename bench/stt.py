"""The offline recognizer measured: load time, character error rate on Korean clips,
real-time factor, the worker's memory, and the event loop's lag while it transcribes.

    .venv/bin/python -m bench.stt                   # default: Whisper base, ko, hotwords
    .venv/bin/python -m bench.stt --no-hotwords     # without the welfare words

The clips are espeak-ng's Korean voice (`-v ko -s 150`) saying what callers of a welfare
line say. One JSON line per clip, then a summary line. Needs espeak-ng.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from pathlib import Path

from server.ai.audio import decode_to_pcm
from server.ai.local.stt import KOREAN_HOTWORDS, WhisperSTT
from server.ai.local.stt_worker import SAMPLE_RATE
from server.config import ROOT

SENTENCES = (
    "노인 서비스 알려주세요",
    "노인 복지 서비스 알려주세요",
    "장애인 활동 지원을 받고 싶어요",
    "아이 양육비 지원이 궁금합니다",
    "일자리를 잃어서 실업 급여를 신청하고 싶어요",
    "기초생활수급자 신청은 어떻게 하나요",
    "안녕하세요 도움이 필요합니다",
    "혼자 사는 어르신 돌봄 서비스가 있나요",
)
LAG_PROBE_SECONDS = 0.01


def korean_clip(text: str) -> bytes:
    return subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", "150", "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate without spaces and punctuation: edit distance / length."""
    ref = [c for c in reference if c.isalnum()]
    hyp = [c for c in hypothesis if c.isalnum()]
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(1, len(ref))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(hotwords: bool) -> None:
    stt = WhisperSTT(
        language="ko",
        hotwords=KOREAN_HOTWORDS if hotwords else "",
        cache_dir=ROOT / "data" / "models",
    )
    lags: list[float] = []
    running = True

    async def probe() -> None:
        while running:
            started = time.monotonic()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            lags.append(time.monotonic() - started - LAG_PROBE_SECONDS)

    try:
        started = time.monotonic()
        await stt.warm_up()
        load_seconds = time.monotonic() - started
        clips = [(text, await asyncio.to_thread(korean_clip, text)) for text in SENTENCES]
        prober = asyncio.create_task(probe())
        audio_seconds = decode_seconds = 0.0
        errors: list[float] = []
        for text, clip in clips:
            seconds = len(decode_to_pcm(clip, SAMPLE_RATE)) / 2 / SAMPLE_RATE
            began = time.monotonic()
            heard = await stt.transcribe(clip)
            took = time.monotonic() - began
            audio_seconds += seconds
            decode_seconds += took
            errors.append(cer(text, heard))
            row = {"said": text, "heard": heard, "cer": round(errors[-1], 3)}
            row |= {"audio_s": round(seconds, 2), "rtf": round(took / seconds, 2)}
            print(json.dumps(row, ensure_ascii=False))
        running = False
        await prober
        assert stt._process is not None
        lags.sort()
        summary = {
            "hotwords": hotwords,
            "load_s": round(load_seconds, 2),
            "cer_mean": round(sum(errors) / len(errors), 3),
            "rtf": round(decode_seconds / audio_seconds, 2),
            "worker_peak_rss_mb": round(peak_rss_mb(stt._process.pid)),
            "loop_lag_ms_p50": round(lags[len(lags) // 2] * 1000, 1),
            "loop_lag_ms_p99": round(lags[int(len(lags) * 0.99)] * 1000, 1),
            "loop_lag_ms_max": round(lags[-1] * 1000, 1),
        }
        print(json.dumps(summary))
    finally:
        await stt.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-hotwords", action="store_true")
    args = parser.parse_args()
    asyncio.run(measure(hotwords=not args.no_hotwords))


if __name__ == "__main__":
    main()
