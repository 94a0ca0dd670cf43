"""The safety net's and the search's figures, as docs/safety.md reports them.

    .venv/bin/python -m bench.safety

Crisis recall on tests/support/safety_cases.AT_RISK, false alarms on its IDIOMS and ORDINARY
questions, the search's top-3 hit rate on tests/support/welfare_questions.QUESTIONS, and the cost of
one message (detector, search) in milliseconds: median and 95th percentile over every
message of the sets, and for a 2000-character message.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from server import korean
from server.safety.detector import default_detector
from server.welfare import WelfareCatalog
from tests.support.safety_cases import AT_RISK, IDIOMS, ORDINARY
from tests.support.welfare_questions import QUESTIONS

ROUNDS = 20
LONG = ("요즘 일이 많아서 복지 서비스를 찾고 있어요. " * 80)[:2000]


def _costs(run: Callable[[str], object], texts: list[str]) -> list[float]:
    costs = []
    for _ in range(ROUNDS):
        for text in texts:
            started = time.perf_counter()
            run(text)
            costs.append((time.perf_counter() - started) * 1000)
    return costs


def _summary(costs: list[float]) -> str:
    p95 = statistics.quantiles(costs, n=20)[-1]
    return f"median {statistics.median(costs):.2f} ms, p95 {p95:.2f} ms"


def main() -> None:
    started = time.perf_counter()
    korean.analyser()
    detector = default_detector()
    catalog = WelfareCatalog.load()
    print(f"analyser, detector and catalogue loaded in {time.perf_counter() - started:.1f} s")

    caught = sum(1 for text, _ in AT_RISK if detector.check(text) is not None)
    right = sum(1 for text, c in AT_RISK if (f := detector.check(text)) and f.category == c)
    quiet = IDIOMS + ORDINARY
    alarms = [text for text in quiet if detector.check(text) is not None]
    print(f"crisis recall: {caught}/{len(AT_RISK)} flagged, {right} with the right category")
    print(f"false alarms: {len(alarms)}/{len(quiet)} ({len(IDIOMS)} sayings, "
          f"{len(ORDINARY)} ordinary questions) {alarms}")  # fmt: skip

    hits = [
        q for q, expected in QUESTIONS if any(s.id in expected for s in catalog.search(q, limit=3))
    ]
    print(f"search top-3 hit rate: {len(hits)}/{len(QUESTIONS)} = {len(hits) / len(QUESTIONS):.0%}")

    texts = [t for t, _ in AT_RISK] + quiet + [q for q, _ in QUESTIONS]
    per_message = _summary(_costs(detector.check, texts))
    print(f"detector per message ({len(texts)} messages x {ROUNDS}): {per_message}")
    print(f"search per message: {_summary(_costs(catalog.search, texts))}")
    print(f"detector, 2000 characters: {_summary(_costs(detector.check, [LONG]))}")
    print(f"search, 2000 characters: {_summary(_costs(catalog.search, [LONG]))}")


if __name__ == "__main__":
    main()
