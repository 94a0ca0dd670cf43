"""Voice latency of one call with the offline providers: `make bench-voice` at N=1.

Kept for the command older notes give; the voice bench (`bench/voice.py`) measures
the same turn (end of speech -> first AI audio frame, with its breakdown) and more.

    .venv/bin/python -m bench.voice_latency [turns]
"""

from __future__ import annotations

import sys

from bench import voice


def main() -> int:
    turns = sys.argv[1] if len(sys.argv) > 1 else "5"
    return voice.run(["--providers", "local", "--calls", "1", "--turns", turns])


if __name__ == "__main__":
    sys.exit(main())
