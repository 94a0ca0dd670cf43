"""The voice pipeline's neural models, read from an installed package and never downloaded.

Both are ONNX files inside the `pipecat-ai` wheel (PyPI, BSD-2-Clause; tested 1.14.0),
read as data files without importing the framework:

- Silero VAD (`pipecat/audio/vad/data/silero_vad.onnx`, MIT, from snakers4/silero-vad):
  speech or not per 32 ms.
- Smart Turn v3.2 (`pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx`,
  BSD-2-Clause, pipecat-ai/smart-turn): has the caller finished their turn, from the audio.

Each file must match the SHA-256 it had in that wheel (its RECORD) before onnxruntime loads
it: a different file is refused (`ModelUnavailable`), never used. Sessions are made once per
process and shared by every call; loading blocks (~0.1-0.2 s), so it runs in a thread.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import onnxruntime as ort


class ModelUnavailable(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class ModelFile:
    package: str  # the distribution that ships it
    path: str  # inside the distribution
    sha256: str

    def locate(self) -> Path:
        try:
            return Path(str(distribution(self.package).locate_file(self.path)))
        except PackageNotFoundError as exc:
            raise ModelUnavailable(f"{self.package} is not installed") from exc

    def read(self) -> bytes:
        path = self.locate()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelUnavailable(f"cannot read {path}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise ModelUnavailable(f"{path} has SHA-256 {digest}, expected {self.sha256}")
        return data


SILERO_VAD = ModelFile(
    "pipecat-ai",
    "pipecat/audio/vad/data/silero_vad.onnx",
    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
)
SMART_TURN = ModelFile(
    "pipecat-ai",
    "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
    "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
)

_sessions: dict[ModelFile, ort.InferenceSession] = {}
_lock = threading.Lock()


def session(model: ModelFile) -> ort.InferenceSession:
    """The process's session for `model` (loaded on first use: blocking, call it in a
    thread). One thread per inference: calls run side by side on the few cores there are."""
    with _lock:
        loaded = _sessions.get(model)
        if loaded is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            loaded = ort.InferenceSession(
                model.read(), sess_options=options, providers=["CPUExecutionProvider"]
            )
            _sessions[model] = loaded
        return loaded
