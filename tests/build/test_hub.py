"""`--checkpoint OWNER/NAME`: a model id read from the Hugging Face cache or downloaded into it, with the same strict
checks and the same bundle as a local folder; every failure one message naming the argument, nothing written.

No network: the hub cache is laid out here (``models--OWNER--NAME/snapshots/<commit>/`` + ``refs/main``) from the
upstream-format ``tiny_a`` checkpoint, with ``HF_HUB_CACHE`` pointing at it and ``HF_HUB_OFFLINE=1``; a download is
a fake ``snapshot_download``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from packager.build import checkpoint
from tests.conftest import run_cli

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL = "test-owner/tiny_a"  # named like the local folder, so that both builds give the same bundle name
HIFT_FILES = ("cosyvoice3.yaml", "hift.pt")  # what `--components hift` reads


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _no_temps(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def _cache(root: Path, tiny_a: Path, files=HIFT_FILES) -> Path:
    repo = root / "models--test-owner--tiny_a"
    snapshot = repo / "snapshots" / COMMIT
    for f in files:
        (snapshot / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_a / f, snapshot / f)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return root


@pytest.fixture()
def offline(monkeypatch, tmp_path, tiny_a) -> Path:
    cache = _cache(tmp_path / "hf-cache", tiny_a)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="module")
def hub_bundle(tiny_a, tmp_path_factory) -> tuple[Path, Path]:
    """(bundle built from the model id in an offline hub cache, the cache)."""
    root = tmp_path_factory.mktemp("hub")
    cache = _cache(root / "hf-cache", tiny_a)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        code, out, err = run_cli("build", "--checkpoint", MODEL, "--components", "hift", "--out", root / "b")
    assert code == 0, err
    assert "HF_HUB_OFFLINE" in err and "graphs" in out  # where the files came from, then the usual summary
    return root / "b", cache


def test_model_id_in_the_cache_builds_the_same_bundle_as_the_folder(hub_bundle, tiny_a, tmp_path):
    bundle, _ = hub_bundle
    code, _, err = run_cli("build", "--checkpoint", tiny_a, "--components", "hift", "--out", tmp_path / "local",
                           "--quiet")
    assert code == 0, err
    local, hub = _tree(tmp_path / "local"), _tree(bundle)
    assert sorted(local) == sorted(hub)
    assert [k for k in local if local[k] != hub[k]] == []


def test_quiet_download_prints_nothing(offline, tmp_path):
    code, out, err = run_cli("build", "--checkpoint", MODEL, "--components", "hift", "--out", tmp_path / "b",
                             "--quiet", "--force")
    assert code == 0 and (out, err) == ("", ""), (out, err)


def test_model_id_not_in_the_cache_while_offline(offline, tmp_path):
    out = tmp_path / "b"
    code, _, err = run_cli("build", "--checkpoint", "test-owner/absent", "--components", "hift", "--out", out)
    assert code == 2 and "--checkpoint" in err and "not in the Hugging Face cache" in err and "HF_HUB_OFFLINE" in err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")
    assert not out.exists() and _no_temps(tmp_path)


@pytest.mark.parametrize("failure", ["connection", "interrupt"])
def test_interrupted_download_writes_nothing(failure, monkeypatch, tmp_path):
    """A download that dies half-way: the partial file stays in huggingface_hub's cache (resumable), the bundle
    folder is never started."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    seen = {}

    def fake_snapshot_download(repo_id, *, revision=None, allow_patterns=None, cache_dir=None, local_files_only=False,
                               **kwargs):
        seen.update(repo_id=repo_id, revision=revision, patterns=allow_patterns, offline=local_files_only)
        blobs = Path(cache_dir) / "models--test-owner--tiny_a" / "blobs"
        blobs.mkdir(parents=True)
        (blobs / "abc.incomplete").write_bytes(b"half a file")
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise ConnectionError("Connection reset by peer")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    out = tmp_path / "b"
    code, _, err = run_cli("build", "--checkpoint", MODEL, "--revision", "v1", "--out", out)
    assert seen["repo_id"] == MODEL and seen["revision"] == "v1" and not seen["offline"]
    # every file of the default components, the text tokenizer beside the Qwen config; not its ~1 GB weights
    assert seen["patterns"] == sorted(["cosyvoice3.yaml", "llm.pt", "flow.pt", "hift.pt", "campplus.onnx",
                                       "CosyVoice-BlankEN/config.json", *checkpoint.TOKENIZER_FILES])
    if failure == "interrupt":
        assert code == 130 and "nothing was written" in err
    else:
        assert code == 2 and "--checkpoint" in err and "ConnectionError: Connection reset by peer" in err
        assert "run the command again" in err and "Traceback" not in err
    assert not out.exists() and _no_temps(tmp_path)


@pytest.mark.parametrize("arg", ["./models/Fun-CosyVoice3", "/no/such/folder", "a/b/c", "name-only"])
def test_missing_folder_that_is_no_model_id(arg, tmp_path):
    code, _, err = run_cli("build", "--checkpoint", arg, "--out", tmp_path / "b")
    assert code == 2 and "no such folder, and not a model id" in err and arg in err and "--checkpoint" in err
    assert "FunAudioLLM/Fun-CosyVoice3-0.5B-2512" in err and not (tmp_path / "b").exists()


def test_revision_needs_a_model_id(tiny_a, tmp_path):
    code, _, err = run_cli("build", "--checkpoint", tiny_a, "--revision", "main", "--out", tmp_path / "b")
    assert code == 2 and "--revision" in err and not (tmp_path / "b").exists()
    code, _, err = run_cli("build", "--revision", "main", "--out", tmp_path / "b")
    assert code == 2 and "--revision" in err and not (tmp_path / "b").exists()


def test_every_missing_checkpoint_file_is_named_at_once(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "flow.pt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    code, _, err = run_cli("build", "--checkpoint", ckpt, "--out", tmp_path / "b")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    missing = err.split("missing: ", 1)[1].split(";", 1)[0]
    assert missing.split(", ") == ["campplus.onnx", "cosyvoice3.yaml", "llm.pt", "CosyVoice-BlankEN/config.json",
                                   "hift.pt"]
    assert "Git LFS pointer file(s) instead of the model: flow.pt" in err
    assert not (tmp_path / "b").exists()


def test_voice_takes_the_model_id(hub_bundle, monkeypatch, tmp_path):
    bundle, cache = hub_bundle
    wav = tmp_path / "ref.wav"
    soundfile.write(wav, (0.3 * np.sin(np.arange(48000) / 10)).astype(np.float32), 24000)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["voice", bundle, "--wav", wav, "--transcript", "words", "--out", tmp_path / "v.voice"]
    code, _, err = run_cli(*args, "--checkpoint", "test-owner/other")
    assert code == 2 and "--checkpoint" in err and "not in the Hugging Face cache" in err
    # the id resolves to the cached snapshot, which matches the bundle; tiny_a has no speech tokenizer to read
    code, _, err = run_cli(*args, "--checkpoint", MODEL)
    assert code == 2 and "speech_tokenizer_v3.onnx" in err and "snapshots" in err, err
    assert not (tmp_path / "v.voice").exists()


def test_modelscope_model_id(hub_bundle, tiny_a, monkeypatch, tmp_path):
    """`modelscope:OWNER/NAME` goes through the modelscope client (a fake here): the same files, the same bundle."""
    import sys
    import types

    folder = tmp_path / "ms-cache" / "test-owner" / "tiny_a"
    for f in HIFT_FILES:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_a / f, folder / f)
    seen = {}

    def snapshot_download(model_id, revision=None, allow_patterns=None, **kwargs):
        seen.update(model_id=model_id, revision=revision, patterns=allow_patterns)
        return str(folder)

    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=snapshot_download))
    out = tmp_path / "b"
    code, stdout, err = run_cli("build", "--checkpoint", "modelscope:" + MODEL, "--components", "hift", "--out", out,
                                "--quiet")
    assert code == 0 and (stdout, err) == ("", ""), err
    assert seen == {"model_id": MODEL, "revision": None, "patterns": sorted(HIFT_FILES)}
    assert _tree(out) == _tree(hub_bundle[0])
    monkeypatch.setitem(sys.modules, "modelscope", None)  # the client not installed
    code, _, err = run_cli("build", "--checkpoint", "modelscope:" + MODEL, "--out", tmp_path / "c")
    assert code == 2 and "pip install -e '.[modelscope]'" in err and not (tmp_path / "c").exists()
