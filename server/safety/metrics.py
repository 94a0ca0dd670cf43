"""The safety figures on `/metrics`."""

from __future__ import annotations

from prometheus_client import Counter

from server.metrics import REGISTRY

SAFETY_FLAGS = Counter(
    "mobok_safety_flags_total",
    "User messages the crisis detector flagged, per protocol, category (suicide, self_harm, "
    "violence, medical) and level (high, medium)",
    ["protocol", "category", "level"],
    registry=REGISTRY,
)
