"""The offline recognizer: the shipped Whisper model's files, its guards, and Korean heard."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from server.ai.local import whisper_files
from server.ai.local.stt import WhisperSTT
from server.ai.local.transcript_guard import Segment, clean_transcript, token_budget
from server.ai.speech import SpeechError
from tests.conftest import require
from tests.support.fakes.spoken import espeak_available, silence_wav, tone_wav

SURE = {"no_speech_prob": 0.1, "avg_logprob": -0.3, "compression_ratio": 1.2}


def segment(text: str, **scores: float) -> Segment:
    return Segment(text, **{**SURE, **scores})


async def korean_wav(text: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        "espeak-ng", "-v", "ko", "-s", "150", "--stdout", text, stdout=asyncio.subprocess.PIPE
    )
    wav, _ = await process.communicate()
    assert process.returncode == 0
    return wav


def test_repetition_loops_are_cut_to_one() -> None:
    loop = "또는, " + ", ".join(["이 영상은"] * 40)
    assert clean_transcript([segment(loop)]) == "또는, 이 영상은"
    assert clean_transcript([segment("1,2,3," + "4," * 60)]) == "1,2,3,4,"
    leaked = "청년 임산부 청년 임산부 청년 임산부 청년"  # hotwords, looped
    assert clean_transcript([segment(leaked)]) == "청년 임산부 청년"
    # ordinary text, a phone number with repeated digits, a short repetition: unchanged
    for text in ("노인 복지 서비스 알려주세요", "010-1111-2222로 전화 주세요", "네 네 네"):
        assert clean_transcript([segment(text)]) == text


def test_captions_written_on_silence_are_dropped_real_words_kept() -> None:
    for caption in (
        "시청해 주셔서 감사합니다.",
        "구독과 좋아요 부탁드려요",
        "MBC 뉴스 김철수입니다.",
    ):
        assert clean_transcript([segment(caption)]) == ""
    # 시청 is also city hall
    assert clean_transcript([segment("시청에 가야 하나요?")]) == "시청에 가야 하나요?"
    # the model itself unsure and saying it is no speech: dropped; unsure alone: kept
    assert clean_transcript([segment("음", no_speech_prob=0.9, avg_logprob=-1.5)]) == ""
    assert clean_transcript([segment("노인", no_speech_prob=0.6, avg_logprob=-1.1)]) == "노인"


def test_the_token_budget_grows_with_the_audio_and_is_bounded() -> None:
    assert token_budget(0.2) < token_budget(3) < token_budget(10) <= 224
    assert token_budget(60) == 224


@pytest.mark.slow  # the model: joined, hashed, loaded
def test_the_shipped_model_is_joined_once_and_checked_every_time(tmp_path: Path) -> None:
    folder = whisper_files.shipped_base(tmp_path)
    assert folder == tmp_path / "whisper-base"
    assert sorted(p.name for p in folder.iterdir()) == sorted(whisper_files.BASE_FILES)
    joined = folder / "model.bin"
    first = joined.stat().st_mtime_ns
    assert whisper_files.shipped_base(tmp_path) == folder
    assert joined.stat().st_mtime_ns == first  # checked, not joined again
    # a damaged file fails its digest: the folder is rebuilt from the packages
    with joined.open("r+b") as f:
        f.seek(1000)
        f.write(b"\0\0\0\0")
    whisper_files.shipped_base(tmp_path)
    assert whisper_files.sha256_of(joined) == whisper_files.BASE_FILES["model.bin"]
    assert not list(tmp_path.glob("*.building-*"))


def test_whisper_model_names_a_folder_or_a_model(tmp_path: Path) -> None:
    assert whisper_files.resolve_model(str(tmp_path), tmp_path / "cache") == str(tmp_path)
    assert whisper_files.resolve_model("large-v3", tmp_path) == "large-v3"
    assert not (tmp_path / "whisper-base").exists()


@pytest.mark.slow  # the model: joined, hashed, loaded
async def test_a_model_that_cannot_load_is_a_clear_speech_error(tmp_path: Path) -> None:
    stt = WhisperSTT(model=str(tmp_path))  # a folder without a model
    try:
        with pytest.raises(SpeechError, match="could not be loaded"):
            await stt.transcribe(tone_wav())
    finally:
        await stt.aclose()


@pytest.fixture(scope="module")
def whisper_cache() -> Path:
    from server.config import ROOT

    return ROOT / "data" / "models"


@pytest.mark.slow  # the model: joined, hashed, loaded
async def test_korean_is_heard_offline_and_silence_is_nothing(whisper_cache: Path) -> None:
    require(espeak_available(), "espeak-ng is not installed")
    stt = WhisperSTT(language="ko", cache_dir=whisper_cache, threads=min(4, os.cpu_count() or 1))
    try:
        await stt.warm_up()
        heard = await stt.transcribe(await korean_wav("노인 복지 서비스 알려주세요"))
        assert "노인" in heard, heard
        assert await stt.transcribe(silence_wav()) == ""
    finally:
        await stt.aclose()
