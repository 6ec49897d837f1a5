"""Run CosyVoice3's speech tokenizer (``speech_tokenizer_v3.onnx``) on a Whisper log-mel, as upstream's zero-shot
frontend does (design/frontend.md §4a): onnxruntime on the CPU, inputs by position

    input[0] = log-mel  float32 [1, 128, T]   (100 frames / s)
    input[1] = T        int32   [1]
    output[0] = speech token ids, integer [1, L]   (25 / s; L = ceil(T / 4) for our graphs)

Works the same for the real checkpoint's graph and for the tiny preset's own graph
(``packager.frontend.speech_tokenizer_model``). onnxruntime + numpy only: this module does not import torch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from packager.contract.files import LFS_PREFIX, SPEECH_TOKENIZER_FILE, reject_lfs_pointer
from packager.contract.errors import CheckpointError, InputError, PackagerError
from packager.onnx.session import session_options

N_MELS = 128
MAX_FRAMES = 3000  # upstream frontend: reference audio of at most 30 s (frontend.md §4a)
_FLOAT = "tensor(float)"
_INTEGER = ("tensor(int32)", "tensor(int64)")


def _shape(arg: ort.NodeArg) -> list:
    return list(arg.shape) if arg.shape is not None else []


def _fixed(dim, value: int) -> bool:
    """A dimension that is either symbolic / unknown or equal to ``value``."""
    return not isinstance(dim, int) or dim == value


class SpeechTokenizer:
    """A loaded speech tokenizer graph. Build with ``from_file`` or ``from_bytes``; ``tokens(mel)`` runs it."""

    def __init__(self, session: ort.InferenceSession, name: str) -> None:
        self.name = name
        self._session = session
        self._check_io()
        self._inputs = [a.name for a in session.get_inputs()]
        self._output = session.get_outputs()[0].name

    # ------------------------------------------------------------ construction

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> "SpeechTokenizer":
        """Open ``speech_tokenizer_v3.onnx`` (or another file with the same I/O). onnxruntime reads the file itself,
        so the 969 MB graph is not held twice. ``threads``: intra-op threads (None: onnxruntime's default)."""
        path = Path(path)
        cls.check_file(path)
        return cls(cls._open(str(path), str(path), threads), str(path))

    @classmethod
    def check_file(cls, path: str | Path) -> None:
        """The cheap checks of ``from_file``: a non-empty file that is not a Git LFS pointer."""
        path = Path(path)
        name = str(path)
        if not path.is_file():
            raise CheckpointError("missing" if not path.exists() else "is not a file", file=name,
                                  expected=f"the speech tokenizer graph ({SPEECH_TOKENIZER_FILE})")
        with open(path, "rb") as f:
            head = f.read(len(LFS_PREFIX))
        cls._check_head(head, path.stat().st_size, name)

    @classmethod
    def from_bytes(cls, data: bytes, name: str, threads: int | None = None) -> "SpeechTokenizer":
        """A graph held in memory (e.g. the tiny preset's); ``name`` is what errors call it."""
        data = bytes(data)
        cls._check_head(data[: len(LFS_PREFIX)], len(data), name)
        return cls(cls._open(data, name, threads), name)

    @staticmethod
    def _check_head(head: bytes, size: int, name: str) -> None:
        if size == 0:
            raise CheckpointError("is empty", file=name, expected="an ONNX model")
        reject_lfs_pointer(Path(name), head)

    @staticmethod
    def _open(model: str | bytes, name: str, threads: int | None) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(model, sess_options=session_options(threads, log_severity=4),
                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises InvalidProtobuf, Fail, InvalidGraph ... for bad files
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"is not a loadable ONNX model (truncated, or another format): {first[:300]}",
                                  file=name) from None

    def _check_io(self) -> None:
        name = self.name
        ins, outs = self._session.get_inputs(), self._session.get_outputs()
        if len(ins) != 2 or not outs:
            raise CheckpointError("is not a speech tokenizer graph", file=name,
                                  expected="2 inputs (log-mel [1, 128, T] float32, length [1] int32) and an integer "
                                           "token output",
                                  found=f"{len(ins)} inputs, {len(outs)} outputs")
        feats, length, out = ins[0], ins[1], outs[0]
        fs = _shape(feats)
        if feats.type != _FLOAT or len(fs) != 3 or not _fixed(fs[0], 1) or not _fixed(fs[1], N_MELS):
            raise CheckpointError("wrong first input", file=name, key=f"input {feats.name!r}",
                                  expected=f"float32 log-mel [1, {N_MELS}, T]", found=f"{feats.type} {fs}")
        ls = _shape(length)
        if length.type != "tensor(int32)" or len(ls) != 1 or not _fixed(ls[0], 1):
            raise CheckpointError("wrong second input", file=name, key=f"input {length.name!r}",
                                  expected="int32 frame count [1]", found=f"{length.type} {ls}")
        os_ = _shape(out)
        if out.type not in _INTEGER or len(os_) not in (1, 2):
            raise CheckpointError("wrong output", file=name, key=f"output {out.name!r}",
                                  expected="integer token ids [1, L]", found=f"{out.type} {os_}")
        self._n_mels = fs[1] if isinstance(fs[1], int) else N_MELS

    # ------------------------------------------------------------ use

    @property
    def n_mels(self) -> int:
        return self._n_mels

    @property
    def input_names(self) -> tuple[str, str]:
        return tuple(self._inputs)

    @property
    def output_name(self) -> str:
        return self._output

    def tokens(self, mel: np.ndarray) -> np.ndarray:
        """Speech token ids int32 [L] of one log-mel ``mel`` [n_mels, T] (Whisper's, 100 frames / s)."""
        mel = np.asarray(mel)
        if mel.ndim != 2 or mel.shape[0] != self.n_mels or not np.issubdtype(mel.dtype, np.floating):
            raise InputError("wrong log-mel for the speech tokenizer", key="mel",
                             expected=f"float32 [{self.n_mels}, T]", found=f"{mel.dtype} {list(mel.shape)}")
        frames = mel.shape[1]
        if frames < 1:
            raise InputError("empty log-mel", key="mel", expected="at least 1 frame", found="0 frames")
        feats = np.ascontiguousarray(mel, dtype=np.float32)[None]
        try:
            out = self._session.run([self._output], {self._inputs[0]: feats,
                                                     self._inputs[1]: np.array([frames], dtype=np.int32)})[0]
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PackagerError(f"the speech tokenizer failed on {frames} frames (upstream's frontend accepts at most "
                                f"{MAX_FRAMES} frames = 30 s): {first[:300]}", file=self.name) from None
        return np.asarray(out).reshape(-1).astype(np.int32)
