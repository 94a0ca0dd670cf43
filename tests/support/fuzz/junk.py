"""Hostile values: odd text, wrong types, nested junk, bytes, huge strings.

Each strategy here draws things a careless or hostile client sends: every JSON type, lone
surrogates, control characters, right-to-left marks, injection-looking strings, numbers past
64 bits, NaN, deep and wide nesting, and strings long enough to matter but under the
server's 1 MB payload limit (the limit itself is tested on its own).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

NASTY_TEXT = [
    "",
    " ",
    "\t\n\r ",
    "\u3000",  # ideographic space: whitespace to str.strip()
    "\x00",
    "a\x00b",
    "\ufeff",
    "\u202e",
    "null",
    "undefined",
    "NaN",
    "true",
    "0",
    "-1",
    "[]",
    "{}",
    "__proto__",
    "constructor",
    "__class__",
    "../../../etc/passwd",
    "%00",
    "%ED%A0%80",
    "' OR '1'='1' --",
    '"; DROP TABLE chat_messages; --',
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "안녕하세요",
    "🦀👩‍👩‍👧‍👦",
    "\U0010ffff",
    "\ud800",
    "\udfff",
    "x\udcffy",
]

# any code point, lone surrogates and controls included (hypothesis leaves surrogates out
# unless told)
_ANY_CHAR = st.characters(exclude_categories=())

text = st.one_of(
    st.text(max_size=24),
    st.text(_ANY_CHAR, max_size=24),
    st.sampled_from(NASTY_TEXT),
)

# long enough to cross every field limit (255, 1000, 2000...), far under 1 MB once encoded
# (ensure_ascii escapes a Hangul syllable into 6 bytes)
huge_text = st.one_of(
    st.integers(256, 120_000).map(lambda n: "x" * n),
    st.integers(2001, 60_000).map(lambda n: "가" * n),
    st.builds(
        lambda piece, n: piece * n,
        st.text(_ANY_CHAR, min_size=1, max_size=4),
        st.integers(300, 5000),
    ),
)

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) + 1),
    st.floats(),  # NaN and infinities included
    st.sampled_from([0, 1, -1, 0.5, 1e308, -0.0]),
)

scalars = st.one_of(st.none(), st.booleans(), numbers, text)


def json_values(*, binary: bool = False, max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, nested; with `binary`, bytes anywhere (Socket.IO attachments)."""
    leaves = st.one_of(scalars, st.binary(max_size=32)) if binary else scalars
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(text, children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def not_objects(*, binary: bool = False) -> st.SearchStrategy[Any]:
    """Anything but a JSON object."""
    return json_values(binary=binary).filter(lambda v: not isinstance(v, dict))


def deep(depth: int) -> Any:
    """A list nested `depth` times."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def junk_extra(known: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Extra keys a payload may carry besides its own fields (ignored by the server)."""
    return st.dictionaries(text.filter(lambda k: k not in known), json_values(), max_size=3)


def as_json_text(value: Any) -> str:
    """A JSON text as a browser would send it (ASCII-escaped, NaN allowed)."""
    return json.dumps(value)


def sendable(text: str) -> bool:
    """Text a client can put on the wire at all (UTF-8: no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# text frames that are not JSON at all, or not quite
raw_text_frames = st.one_of(
    text,
    huge_text,
    st.sampled_from(
        [
            "{",
            "}",
            "[1,",
            '{"type":',
            '{"a":1}}',
            "{'type': 'ping'}",
            '{"type":"ping"',
            "\ufeff{}",
            '{"\\ud800": 1}',
            '"\\ud800"',
            "1e99999",
            "-",
        ]
    ),
    st.builds(lambda: "[" * 2000 + "]" * 2000),
    st.builds(lambda: '{"a":' * 2000 + "1" + "}" * 2000),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
).filter(sendable)
