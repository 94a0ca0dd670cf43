"""Korean phone numbers: `010-1234-5678`, `02 123 4567` -> digits only, validated."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s-]")
_KOREAN_NUMBER = re.compile(r"0[0-9]{8,10}")  # 9-11 digits, starting with 0


def normalize_phone(number: str) -> str | None:
    """The number as digits only, or None when it is not a Korean phone number."""
    digits = _SEPARATORS.sub("", number)
    return digits if _KOREAN_NUMBER.fullmatch(digits) else None
