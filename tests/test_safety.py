"""The crisis detector, its lexicon, the safety layer's report (metric, log, webhook) and
the webhook notifier against a local receiver and one that is down."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from server.ai.base import PromptMessage
from server.safety.detector import CrisisDetector, default_detector
from server.safety.layer import SafetyLayer, with_crisis_instruction
from server.safety.lexicon import load_lexicon
from server.safety.metrics import SAFETY_FLAGS
from server.safety.notifier import SafetyNotifier
from server.safety.prompts import RISK_GUIDANCE, with_risk_guidance
from server.safety.replies import CRISIS_REPLIES, REQUIRED_LINES, crisis_reply
from tests.support.safety_cases import AT_RISK, IDIOMS, ORDINARY
from tests.support.waiting import until

DETECTOR = default_detector()
LEXICON = load_lexicon()


@pytest.mark.parametrize("entry", LEXICON, ids=lambda e: f"line{e.line}")
def test_every_lexicon_example_is_caught_by_its_entry_and_exclusions_stay_quiet(entry) -> None:  # type: ignore[no-untyped-def]
    flag = DETECTOR.check(entry.example)
    if entry.category is None:
        assert flag is None, (entry.example, flag)
    else:
        assert flag is not None and flag.category == entry.category, (entry.example, flag)


@pytest.mark.parametrize(("message", "category"), AT_RISK)
def test_messages_at_risk_are_flagged_with_their_category(message: str, category: str) -> None:
    flag = DETECTOR.check(message)
    assert flag is not None and flag.category == category, (message, flag)


def test_crisis_recall_on_the_whole_set() -> None:
    caught = sum(1 for message, _ in AT_RISK if DETECTOR.check(message) is not None)
    assert len(AT_RISK) >= 40
    assert caught / len(AT_RISK) >= 0.95


@pytest.mark.parametrize("message", IDIOMS + ORDINARY)
def test_sayings_and_ordinary_questions_are_not_flagged(message: str) -> None:
    assert DETECTOR.check(message) is None, message


def test_a_plan_or_means_outranks_a_wish() -> None:
    flag = DETECTOR.check("죽고 싶어요. 번개탄도 사 놨어요")
    assert flag is not None and (flag.category, flag.level) == ("suicide", "high")
    assert DETECTOR.check("죽고 싶어요") == DETECTOR.check("죽고싶어요")
    assert DETECTOR.check("죽고 싶어요").level == "medium"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\n\t",
        "😀😀😀",
        "ㅋㅋㅋㅋ",
        "가" * 2000,
        "🙂 hello 안녕 " * 150,
        "\x00\ufeff",
        "?!" * 999,
    ],
)
def test_bad_input_never_raises(text: str) -> None:
    assert DETECTOR.check(text) is None


def test_a_risk_at_the_end_of_a_2000_character_message_is_found() -> None:
    text = "요즘 일이 많아요. " * 200
    text = text[: 2000 - 10] + "사실 죽고 싶어요"
    assert len(text) == 1999
    assert DETECTOR.check(text) is not None


def test_a_malformed_lexicon_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.tsv"
    path.write_text("# header\nsuicide\turgent\t죽다 싶다\t죽고 싶어\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lexicon.tsv:2: unknown level"):
        load_lexicon(path)
    path.write_text("suicide\tmedium\t죽다 싶다\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r":1: expected 4"):
        load_lexicon(path)


def test_a_new_lexicon_entry_is_data_only(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.tsv"
    path.write_text("violence\thigh\t스토킹 당하다\t스토킹을 당하고 있어요\n", encoding="utf-8")
    detector = CrisisDetector(load_lexicon(path))
    flag = detector.check("요즘 스토킹 당하는 중이에요")
    assert flag is not None and flag.category == "violence"


def test_every_category_has_a_reply_with_its_lines() -> None:
    for category, lines in REQUIRED_LINES.items():
        assert all(line in crisis_reply(category) for line in lines), category
    assert "109" in CRISIS_REPLIES["suicide"] and "1366" in CRISIS_REPLIES["violence"]


def test_the_crisis_instruction_is_added_to_the_system_prompt() -> None:
    flag = DETECTOR.check("남편이 때려요")
    assert flag is not None
    prompt = [
        PromptMessage("system", "당신은 상담원입니다."),
        PromptMessage("user", "남편이 때려요"),
    ]
    amended = with_crisis_instruction(prompt, flag)
    assert amended[0].content.startswith("당신은 상담원입니다.")
    assert "1366" in amended[0].content and amended[1:] == prompt[1:]
    assert with_crisis_instruction(prompt[1:], flag)[0].role == "system"


def test_risk_guidance_is_added_once() -> None:
    once = with_risk_guidance("프롬프트")
    assert RISK_GUIDANCE in once and with_risk_guidance(once) == once
    assert "109" in RISK_GUIDANCE and "1577-0199" in RISK_GUIDANCE and "1366" in RISK_GUIDANCE


# --- the layer's report and the webhook ---


class Receiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.calls = 0
        self.fail_first = fail_first

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.calls <= self.fail_first:
            return web.Response(status=503)
        self.alerts.append(await request.json())
        return web.Response(status=204)


async def _serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/alert", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/alert"


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    got = Receiver(fail_first=1)  # the first attempt fails: the alert arrives by a retry
    runner, url = await _serve(got)
    yield got, url
    await runner.cleanup()


def _closed_port_url() -> str:
    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/alert"


def _count(protocol: str, category: str, level: str) -> float:
    return SAFETY_FLAGS.labels(protocol, category, level)._value.get()


async def test_a_flag_is_counted_logged_and_posted_with_a_retry(
    receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    got, url = receiver
    notifier = SafetyNotifier(url, backoff=(0.05,))
    await notifier.start()
    layer = SafetyLayer(DETECTOR, notifier)
    before = _count("/test", "suicide", "medium")
    message = "죽고 싶어요 " + "정말로 너무 힘들어서 더는 못 버티겠어요 " * 5
    try:
        with caplog.at_level(logging.WARNING, logger="server.safety.layer"):
            flag = await layer.assess(message, protocol="/test", session_id="s-1")
        assert flag is not None and flag.category == "suicide"
        await until(lambda: got.alerts, what="the webhook alert")
    finally:
        await notifier.aclose()
    assert _count("/test", "suicide", "medium") == before + 1
    alert = got.alerts[0]
    assert set(alert) == {"protocol", "sessionId", "category", "level", "timestamp"}
    assert (alert["protocol"], alert["sessionId"], alert["category"], alert["level"]) == (
        "/test",
        "s-1",
        "suicide",
        "medium",
    )
    assert alert["timestamp"].endswith("Z") and got.calls == 2
    record = next(r for r in caplog.records if r.getMessage() == "message at risk")
    assert record.levelno == logging.WARNING
    assert (record.protocol, record.session, record.category) == ("/test", "s-1", "suicide")  # type: ignore[attr-defined]
    assert len(record.text) <= 51 and message not in caplog.text  # type: ignore[attr-defined]


async def test_a_webhook_that_is_down_is_logged_and_nothing_else_breaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = SafetyNotifier(_closed_port_url(), backoff=(0.01, 0.01, 0.01))
    await notifier.start()
    layer = SafetyLayer(DETECTOR, notifier)
    try:
        with caplog.at_level(logging.ERROR, logger="server.safety.notifier"):
            flag = await layer.assess("남편이 때려요", protocol="/test", session_id="s-2")
            assert flag is not None  # the answer does not wait for the webhook
            await until(
                lambda: any("safety webhook failed" in r.getMessage() for r in caplog.records),
                what="the failure logged",
            )
    finally:
        await notifier.aclose()
    failure = next(r for r in caplog.records if "safety webhook failed" in r.getMessage())
    assert "4 attempt" in failure.getMessage() and failure.category == "violence"  # type: ignore[attr-defined]


async def test_notify_returns_at_once_and_a_full_queue_drops_with_a_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.safety.notifier.QUEUE_SIZE", 2)
    notifier = SafetyNotifier(_closed_port_url())  # not started: nothing takes from the queue
    with caplog.at_level(logging.ERROR, logger="server.safety.notifier"):
        for n in range(3):
            notifier.notify({"protocol": "/test", "sessionId": f"s{n}", "category": "medical"})
    assert any("alert dropped" in r.getMessage() for r in caplog.records)


async def test_long_text_is_assessed_off_the_event_loop() -> None:
    layer = SafetyLayer(DETECTOR)
    text = "평범한 문장입니다. " * 200 + "손목을 그었어요"
    flag = await layer.assess(text, protocol="/test", session_id="s-3")
    assert flag is not None and flag.category == "self_harm"
    await asyncio.sleep(0)
