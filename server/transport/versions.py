"""The versions of the four libraries server/transport patches that the suite has been run on.

The server refuses to start on any other version (`check_versions`): their private internals
(hooks.py) change without notice between releases. pyproject.toml states the same ranges
(tests/test_transport_contract.py compares them). To move to a new release: install it, run
the whole suite (test_transport_contract.py first), then widen the range here and in
pyproject.toml together.
"""

from __future__ import annotations

import re
from importlib import metadata

Version = tuple[int, ...]

# distribution: (lowest tested, first untested). The lower bounds are the versions the suite
# ran on; none may go below what the code needs (python-engineio >= 4.11 for
# `reason=...TRANSPORT_CLOSE`, python-socketio >= 5.12 for its pairing with it).
TESTED: dict[str, tuple[Version, Version]] = {
    "aiohttp": ((3, 14, 5), (3, 15)),
    "python-engineio": ((4, 15, 1), (4, 16)),
    "python-socketio": ((5, 18, 1), (5, 19)),
    "websockets": ((17, 4), (17, 5)),
}


class UntestedVersion(RuntimeError):
    """An installed library is outside its tested range: the server does not start."""


def parse(version: str) -> Version:
    """The release numbers of a version string ("4.15.1" -> (4, 15, 1); "3.14.0rc1" ->
    (3, 14, 0)): pre-releases count as their release."""
    match = re.match(r"\d+(\.\d+)*", version)
    if match is None:
        raise UntestedVersion(f"unreadable version {version!r}")
    return tuple(int(part) for part in match.group().split("."))


def specifier(distribution: str) -> str:
    """The range as pyproject.toml writes it, e.g. ">=4.15.1,<4.16"."""
    low, high = TESTED[distribution]
    return f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"


def untested(installed: dict[str, str]) -> list[str]:
    """ "name version (tested: range)" for each installed version outside its range."""
    return [
        f"{name} {installed[name]} (tested: {specifier(name)})"
        for name, (low, high) in TESTED.items()
        if not low <= parse(installed[name]) < high
    ]


def check_versions() -> None:
    """Raises `UntestedVersion` naming every library outside its tested range."""
    wrong = untested({name: metadata.version(name) for name in TESTED})
    if wrong:
        raise UntestedVersion(
            "server/transport patches library internals and was tested only with other "
            "versions of: " + ", ".join(wrong) + ". Install the versions of the lock file "
            "(or widen server/transport/versions.py after running the suite on these)."
        )
