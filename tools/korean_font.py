"""Make `public/fonts/korean-fallback.woff2`, the pages' last-resort Korean font.

Source: Pretendard 1.3.9 (SIL Open Font License 1.1), npm package `pretendard`,
`dist/web/static/woff2-subset/Pretendard-Regular.subset.woff2`. Kept: ASCII, the 2,350
Hangul syllables of KS X 1001 (what EUC-KR encodes), the compatibility jamo, and the
punctuation the pages use; no hinting. Run again after changing the source:

    npm pack pretendard@1.3.9 && tar xzf pretendard-1.3.9.tgz
    .venv/bin/pip install fonttools brotli
    .venv/bin/python tools/korean_font.py \
        package/dist/web/static/woff2-subset/Pretendard-Regular.subset.woff2
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

OUT = Path(__file__).resolve().parent.parent / "public" / "fonts" / "korean-fallback.woff2"


def ks_x_1001_syllables() -> set[int]:
    out = set()
    for code in range(0xAC00, 0xD7A4):
        # two bytes: one of KS X 1001's; CPython spells the others as 8-byte jamo sequences
        if len(chr(code).encode("euc_kr")) == 2:
            out.add(code)
    return out


def wanted() -> set[int]:
    punctuation = {0xA0, 0xB7, 0xD7, 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
                   0x2026, 0x20A9}  # fmt: skip
    return (
        set(range(0x20, 0x7F))
        | ks_x_1001_syllables()
        | set(range(0x3131, 0x318F))  # compatibility jamo (ㄱ ... ㅣ)
        | set(range(0x3000, 0x3020))  # CJK punctuation
        | set(range(0xFF01, 0xFF5F))  # full-width forms
        | punctuation
    )


def main(source: str) -> None:
    cmap = TTFont(source).getBestCmap()
    options = subset.Options()
    options.flavor = "woff2"
    options.hinting = False
    options.desubroutinize = True
    options.layout_features = ["kern", "liga", "calt", "ccmp", "locl", "mark", "mkmk"]
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]  # the copyright and licence stay
    options.name_languages = [0x409]
    font = subset.load_font(source, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(wanted() & set(cmap)))
    subsetter.subset(font)
    subset.save_font(font, str(OUT), options)
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
