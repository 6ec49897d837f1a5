"""Voice packs: what upstream's ``frontend_zero_shot`` computes from a reference recording, computed once.

A voice pack is a folder ``NAME.voice/`` (docs/voice.md, schema ``schemas/voice.schema.json``)::

    voice.json                       metadata: format version, the model it belongs to, the reference, arrays
    prompt_text.npy.bytes            int32 [1, n]      Qwen2 ids of system prompt + <|endofprompt|> + transcript
    prompt_speech_token.npy.bytes    int32 [1, L]      speech tokens of the reference (llm and flow prompt tokens)
    prompt_speech_feat.npy.bytes     float32 [1, R L, 80]  24 kHz Matcha mel, trimmed to R = token_mel_ratio frames
    embedding.npy.bytes              float32 [1, 192]  CAMPPlus speaker embedding (llm and flow embedding)

Arrays are ``.npy`` content with a ``.bytes`` suffix, exactly like a bundle's ``Data/`` (Unity imports them as
TextAsset; the C# runtime reads them with the same NPY reader). Every array's sha256 and size are in voice.json.
A pack is tied to a model by the bundle manifest's ``source.model_id``: synthesis with another model's bundle is
refused. This module reads, writes and checks packs; it imports neither torch nor onnxruntime.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from packager.contract import staging
from packager.contract.manifest import SCHEMA_DIR, schema_errors
from packager.contract.errors import PackagerError
from packager.contract.arrays import npy_bytes
from packager.frontend.text_tokenizer import ENDOFPROMPT

FORMAT = "cosyvoice3-voice"
FORMAT_VERSION = 1
VOICE_FILE = "voice.json"
SUFFIX = ".voice"
SCHEMA_PATH = SCHEMA_DIR / "voice.schema.json"
SYSTEM_PROMPT = "You are a helpful assistant."  # upstream's CosyVoice3 zero-shot prompt prefix (frontend.md §3)

# name -> (dtype, rank, description); the order is the order in voice.json
ARRAYS: dict[str, tuple[str, int, str]] = {
    "prompt_text": ("int32", 2, "Qwen2 ids of the zero-shot prompt text (system prompt, <|endofprompt|>, transcript)"),
    "prompt_speech_token": ("int32", 2, "speech tokens of the reference, trimmed with the mel (upstream's 2:1 trim); "
                                        "upstream's llm_prompt_speech_token and flow_prompt_speech_token"),
    "prompt_speech_feat": ("float32", 3, "24 kHz 80-bin Matcha log-mel of the reference, time-major [1, frames, 80], "
                                         "frames = token_mel_ratio x tokens"),
    "embedding": ("float32", 2, "CAMPPlus speaker embedding (the bundle's campplus_fbank + campplus graphs); "
                                "upstream's llm_embedding and flow_embedding"),
}
# upstream frontend names (``synth --inputs``) of each pack array
FRONTEND_NAMES = {
    "prompt_text": ("prompt_text",),
    "prompt_speech_token": ("llm_prompt_speech_token", "flow_prompt_speech_token"),
    "prompt_speech_feat": ("prompt_speech_feat",),
    "embedding": ("llm_embedding", "flow_embedding"),
}


def validate_meta(meta: Any, where: str) -> None:
    errors = schema_errors(meta, SCHEMA_PATH)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PackagerError(f"is not a valid voice pack: {errors[0]}{more} (schemas/voice.schema.json)", file=where)


@dataclass
class VoicePack:
    """A loaded, checked voice pack."""

    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def model_id(self) -> str:
        return self.meta["model"]["model_id"]

    @property
    def name(self) -> str:
        return self.meta["name"]

    def frontend_arrays(self) -> dict[str, np.ndarray]:
        """The pack under upstream's frontend names (what ``synth --inputs`` takes, without ``text``)."""
        return {alias: self.arrays[k] for k, names in FRONTEND_NAMES.items() for alias in names}

    def check_model(self, manifest: Mapping[str, Any], bundle: Path) -> None:
        """Refuse a bundle of another model (compares ``source.model_id``)."""
        theirs = manifest.get("source", {}).get("model_id")
        if theirs != self.model_id:
            src = self.meta["model"]
            made = src.get("bundle", "?")
            raise PackagerError(
                f"this voice pack was made for another model (bundle {made!r}, model_id {self.model_id[:12]}…); "
                f"make a voice for this bundle with `python -m packager voice {bundle} --wav REF.wav "
                f"--transcript ...`", file=str(self.path), key="model.model_id",
                expected=f"model_id {str(theirs)[:12]}… of {bundle}", found=f"{self.model_id[:12]}…")
        self.check_sizes(manifest)

    def check_sizes(self, manifest: Mapping[str, Any]) -> None:
        """Every array fits the bundle's graphs (sizes the manifest carries): embedding width, mel bins, mel frames per
        token, speech and text ids within their vocabularies. A pack of the right model always does; this catches
        a pack edited by hand (its sha256 entries rewritten) before a graph sees out-of-range ids."""
        consts = {c["name"]: c.get("constants", {}) for c in manifest.get("components", [])}
        llm, flow = consts.get("llm", {}), consts.get("flow", {})
        a = self.arrays
        checks = [
            ("embedding", a["embedding"].shape[1], flow.get("spk_embed_dim"), "values per speaker embedding"),
            ("prompt_speech_feat", a["prompt_speech_feat"].shape[2], flow.get("mel_bins"), "mel bins"),
            ("prompt.token_mel_ratio", int(self.meta["prompt"]["token_mel_ratio"]), flow.get("token_mel_ratio"),
             "mel frames per speech token"),
        ]
        for key, found, want, what in checks:
            if want is not None and int(found) != int(want):
                raise PackagerError(f"does not fit this bundle: {found} {what}", file=str(self.path), key=key,
                                    expected=f"{want} (the bundle manifest's flow constants)", found=str(found))
        speech_limits = [int(v) for v in (llm.get("speech_token_size"), flow.get("vocab_size")) if v is not None]
        limits = [("prompt_speech_token", min(speech_limits) if speech_limits else None),
                  ("prompt_text", llm.get("text_vocab_size"))]
        for name, limit in limits:
            ids = a[name]
            if limit is not None and ids.size and (ids.min() < 0 or ids.max() >= int(limit)):
                raise PackagerError("holds ids outside the bundle's vocabulary", file=str(self.path),
                                    key=f"arrays/{name}", expected=f"ids in 0..{int(limit) - 1}",
                                    found=f"{int(ids.min())}..{int(ids.max())}")


def _voice_json(path: Path) -> Path:
    """``path`` is the pack folder or its voice.json."""
    if path.is_file() and path.name == VOICE_FILE:
        return path
    if not path.exists():
        raise PackagerError("voice pack not found", file=str(path),
                            expected=f"a NAME{SUFFIX} folder made by `python -m packager voice`")
    if not path.is_dir():
        raise PackagerError("is not a voice pack folder", file=str(path),
                            expected=f"a NAME{SUFFIX} folder with {VOICE_FILE}")
    if not (path / VOICE_FILE).is_file():
        raise PackagerError(f"has no {VOICE_FILE}", file=str(path), expected="a voice pack made by `packager voice`")
    return path / VOICE_FILE


def _safe_member(root: Path, rel: str, field: str) -> Path:
    """A file name inside the pack folder: one plain path segment, no separators, not a link."""
    if (not isinstance(rel, str) or not rel or "/" in rel or "\\" in rel or rel in (".", "..")
            or any(ord(c) < 32 for c in rel)):
        raise PackagerError("must be a plain file name inside the voice pack", key=field, found=repr(rel))
    p = root / rel
    if p.is_symlink():
        raise PackagerError("is a symbolic link; refusing to follow it", file=str(p), key=field)
    return p


def load(path: Path) -> VoicePack:
    """Read and check a voice pack: schema, then every array's size, sha256, dtype and shape."""
    path = Path(path)
    vj = _voice_json(path)
    root = vj.parent
    try:
        meta = json.loads(vj.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackagerError(f"not valid JSON: {exc}", file=str(vj)) from None
    validate_meta(meta, str(vj))
    entries = {e["name"]: e for e in meta["arrays"]}
    if sorted(entries) != sorted(ARRAYS) or len(meta["arrays"]) != len(ARRAYS):
        raise PackagerError("wrong set of arrays", file=str(vj), key="arrays", expected=", ".join(ARRAYS),
                            found=", ".join(e["name"] for e in meta["arrays"]))
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, rank, _) in ARRAYS.items():
        e = entries[name]
        f = _safe_member(root, e["file"], f"arrays/{name}/file")
        if not f.is_file():
            raise PackagerError("missing from the voice pack", file=str(f), key=f"arrays/{name}")
        data = f.read_bytes()
        if len(data) != e["bytes"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise PackagerError("changed since the voice pack was made (size or sha256 differs from voice.json); "
                                "make the voice again", file=str(f), key=f"arrays/{name}")
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise PackagerError(f"not a readable .npy array: {exc}", file=str(f)) from None
        if str(arr.dtype) != dtype or arr.ndim != rank or list(arr.shape) != e["shape"] or e["dtype"] != dtype:
            raise PackagerError("array does not match its entry", file=str(f), key=f"arrays/{name}",
                                expected=f"{dtype} rank {rank} {e['shape']}", found=f"{arr.dtype} {list(arr.shape)}")
        if arr.shape[0] != 1:
            raise PackagerError("batch dimension must be 1", file=str(f), found=str(list(arr.shape)))
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise PackagerError("holds NaN or Inf", file=str(f))
        arrays[name] = arr
    ratio = int(meta["prompt"]["token_mel_ratio"])
    n_tok, n_feat = arrays["prompt_speech_token"].shape[1], arrays["prompt_speech_feat"].shape[1]
    if n_feat != ratio * n_tok:
        raise PackagerError("prompt_speech_feat frames must be token_mel_ratio x prompt_speech_token tokens",
                            file=str(vj), expected=f"{ratio * n_tok} frames", found=str(n_feat))
    return VoicePack(root, meta, arrays)


def write(out: Path, meta: dict[str, Any], arrays: Mapping[str, np.ndarray], force: bool = False) -> Path:
    """Write a pack atomically: a temporary sibling folder renamed onto ``out`` once complete."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not force:
            raise PackagerError("already exists; pass --force to replace it", file=str(out))
        if not out.is_dir() or out.is_symlink() or (any(out.iterdir()) and not (out / VOICE_FILE).is_file()):
            raise PackagerError("exists and is not a voice pack; refusing to replace it", file=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    blobs: dict[str, bytes] = {}
    for name, (dtype, rank, desc) in ARRAYS.items():
        arr = np.ascontiguousarray(arrays[name], dtype=dtype)
        assert arr.ndim == rank, (name, arr.shape)
        data = npy_bytes(arr)
        file = f"{name}.npy.bytes"
        blobs[file] = data
        entries.append({"name": name, "file": file, "dtype": dtype, "shape": [int(d) for d in arr.shape],
                        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "description": desc})
    meta = {**meta, "arrays": entries}
    validate_meta(meta, str(out / VOICE_FILE))
    with staging.staged_folder(out, parents=False) as tmp:
        for file, data in blobs.items():
            (tmp / file).write_bytes(data)
        (tmp / VOICE_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def prompt_text_string(transcript: str) -> str:
    """Upstream's CosyVoice3 zero-shot prompt text: ``You are a helpful assistant.<|endofprompt|>`` + transcript,
    unless the transcript already carries its own ``<|endofprompt|>`` (then it is used as given)."""
    return transcript if ENDOFPROMPT in transcript else SYSTEM_PROMPT + ENDOFPROMPT + transcript
