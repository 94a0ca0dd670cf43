"""Numbers as a Korean speaker says them aloud, for espeak-ng's Korean voice.

espeak-ng reads every digit string as a quantity: `010-1234-5678` becomes "영 십, 천이백삼십사,
오천육백칠십팔" and the counseling line `129` "백이십구". People say phone numbers digit by
digit ("공일공, 일이삼사, 오육칠팔") and hotlines too ("일이구"): that is what the caller must
hear to dial them. Amounts (`3만 원`, `65세`) stay quantities.
"""

from __future__ import annotations

import re

DIGITS = dict(zip("0123456789", "공일이삼사오육칠팔구", strict=True))
# phone numbers: 02-123-4567, 010-1234-5678, 1577-0199, (02) 123 4567
_PHONE = re.compile(r"(?<![\d-])(\(?0\d{1,2}\)?[-. ]\d{3,4}[-. ]\d{4}|1\d{3}-\d{4})(?![\d-])")
# hotlines said as digits when they stand alone (자살예방 109, 112, 119, 보건복지 129, 1366...)
_HOTLINE = re.compile(
    r"(?<![\d.,-])(109|112|119|120|129|131|182|1330|1366|1388|1393)"
    r"(?![\d%-]|[.,]\d|\s*[세원명개년월일째])"  # not 129명, 1,366, 112.5
)


def _digits(number: str) -> str:
    groups = re.findall(r"\d+", number)
    return ", ".join("".join(DIGITS[d] for d in group) for group in groups)


def speakable_numbers(text: str) -> str:
    """`text` with phone numbers and hotlines spelled digit by digit in Korean."""
    text = _PHONE.sub(lambda m: _digits(m.group(0)), text)
    return _HOTLINE.sub(lambda m: _digits(m.group(0)), text)
