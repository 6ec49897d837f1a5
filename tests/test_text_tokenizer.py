"""packager/text_tokenizer.py against Hugging Face ``tokenizers`` (docs/tokenizer.md).

A synthetic Qwen2-style tokenizer is trained here with ``tokenizers`` (NFC, Qwen2's split regex, byte-level, BPE,
added specials) on a small multilingual corpus; ours must give identical ids on every test string, in both the
``vocab.json + merges.txt + tokenizer_config.json`` layout (what CosyVoice-BlankEN ships) and ``tokenizer.json``.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from packager.checkpoint import Source
from packager.components.llm import LLM
from packager.errors import CheckpointError
from packager.text_tokenizer import (COSYVOICE3_SPECIALS, ENDOFPROMPT, ENDOFPROMPT_ID, NO_TOKENIZER, Qwen2Tokenizer,
                                     bytes_to_unicode, pretokenize)

tokenizers = pytest.importorskip("tokenizers")  # the `test` extra; only these comparisons need it

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", ENDOFPROMPT, "[breath]", "<|endofsystem|>"]
CORPUS = [
    "You are a helpful assistant. The quick brown fox jumps over the lazy dog; it's 12:30 and we'll see.",
    "希望你以后能够做的比我还好呦。今天天气很好，我们去公园散步吧！收到好友从远方寄来的生日礼物。",
    "こんにちは、世界。カタカナとひらがな、漢字を混ぜた文章です。東京は晴れ。",
    "Numbers 0123456789, 3.14159, 1,000,000 and ٣٤٥ or ²³ Ⅻ; prices $5.99 €10 ¥500.",
    "Punctuation!!! ??? ... --- *** «quotes» „German“ (parens) [brackets] {braces} #hash @at",
    "Emoji 😀😃👍🏽 👨‍👩‍👧 ❤️ 🇯🇵 and whitespace   runs\t\ttabs\n\nnew lines\r\n  indented",
    "Ünïcödé café naïve résumé Ελληνικά Русский текст العربية עברית हिन्दी 한국어 ไทย",
    "I'M HERE, YOU'RE THERE, THEY'VE GONE, SHE'LL COME, HE'D SAY, IT'S DONE, DON'T",
]
STRINGS = [
    "", " ", "  ", "\n", "\r\n", " \n ", "a", "hello world", "Hello  world  ", "  leading and trailing  ",
    "You are a helpful assistant.<|endofprompt|>希望你以后能够做的比我还好呦。",
    "<|endofprompt|>", "<|endofprompt|><|endofprompt|>", "x<|endofprompt|>y", "<|endofprompt", "endofprompt|>",
    "<|im_start|>user\nhi<|im_end|>", "[breath] ok [breath]", "<|endoftext|>tail", "< |endofprompt|>",
    "<|endofsystem|>系统<|endofprompt|>", "it's we'll THEY'RE I'M you'VE he'D 'll 's' 'S ''s 'ſ",
    "3.14159 1,000,000 ٣٤٥ ²³ Ⅻ 𝟘𝟙", "😀😃👍🏽 👨‍👩‍👧 ❤️ 🇯🇵", "𠀀𠀁 𐐀𐐨", "e\u0301 cafe\u0301 ñ n\u0303",
    "tabs\t\there\t", "a\u00a0b\u3000c\u2028d\u0085e\x1cf", "zero\u200bwidth", "mixed中文English日本語123",
    "!!!???...", " !!!\n\n", "a \n\n b", "end with spaces   ", "\t\n \r\n\t x", "ＦＵＬＬ ｗｉｄｔｈ",
]


def hf_tokenizer(vocab_size: int, specials: list[str]):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials[:1], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.add_special_tokens(specials[1:])
    return tok


def write_folder(tok, folder: Path, layout: str) -> Path:
    """``qwen2``: vocab.json + merges.txt + tokenizer_config.json (added_tokens_decoder); ``json``: tokenizer.json."""
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "json":
        tok.save(str(folder / "tokenizer.json"))
        return folder
    tok.model.save(str(folder))
    decoder = {str(tid): {"content": t.content, "lstrip": False, "normalized": False, "rstrip": False,
                          "single_word": False, "special": True}
               for tid, t in tok.get_added_tokens_decoder().items()}
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    tok = hf_tokenizer(900, SPECIALS)
    root = tmp_path_factory.mktemp("tok")
    return tok, {layout: write_folder(tok, root / layout, layout) for layout in ("qwen2", "json")}


def fuzz_strings(n: int, seed: int = 0) -> list[str]:
    alphabet = list("aZé中日本語カナ0123٣²Ⅷ '\"sStTrRvVmMlLdDſKﬅ.,!?-…「」😀👍🏽\u200d\t\n\r \u00a0\u3000\u1680\u2028"
                    "\u0085\u001c\u001f\u180e\u200b\u0301\U00020000\U0001D7D8\U00010400#$%@") + ["<|endofprompt|>",
                                                                                               "<|im_end|>", "<|"]
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16))) for _ in range(n)]


# ----------------------------------------------------------------------------------------------------------------

def test_pretokenize_equals_qwen2_split_regex():
    """The hand-written scanner cuts exactly where HF's Split(Qwen2 regex, isolated) does, on 5000 fuzz strings."""
    from tokenizers import Regex, pre_tokenizers
    split = pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False)
    for s in STRINGS + CORPUS + fuzz_strings(5000):
        assert pretokenize(s) == [p for p, _ in split.pre_tokenize_str(s)], repr(s)


def test_pretokenize_known_splits():
    assert pretokenize("it's  Hello 123!\n\n x") == ["it", "'s", " ", " Hello", " ", "1", "2", "3", "!\n\n", " x"]
    assert pretokenize("你好，世界") == ["你好", "，世界"]


def test_bytes_to_unicode_is_gpt2s():
    m = bytes_to_unicode()
    assert len(set(m.values())) == 256 and m[ord("A")] == "A" and m[ord(" ")] == "Ġ" and m[ord("\n")] == "Ċ"


@pytest.mark.parametrize("layout", ["qwen2", "json"])
def test_ids_equal_hf_tokenizers(hf, layout):
    tok, folders = hf
    ours = Qwen2Tokenizer.from_folder(folders[layout])
    strings = STRINGS + CORPUS + fuzz_strings(1500, seed=1)
    mismatches = [s for s in strings if ours.encode(s) != tok.encode(s, add_special_tokens=False).ids]
    assert not mismatches, [(s, ours.encode(s), tok.encode(s).ids) for s in mismatches[:3]]
    assert ours.encode("a<|endofprompt|>b").count(tok.token_to_id(ENDOFPROMPT)) == 1


def test_tables_round_trip(hf):
    ours = Qwen2Tokenizer.from_folder(hf[1]["qwen2"])
    back = Qwen2Tokenizer.from_tables(ours.to_tables())
    assert all(v.dtype == np.int32 for v in ours.to_tables().values())
    for s in STRINGS:
        assert back.encode(s) == ours.encode(s)


def test_cosyvoice3_specials_take_the_next_free_ids(tmp_path):
    """A folder without <|endofprompt|> (like the real BlankEN): we add it as add_special_tokens would."""
    base = hf_tokenizer(600, SPECIALS[:1])
    folder = write_folder(base, tmp_path / "t", "qwen2")
    ours = Qwen2Tokenizer.from_folder(folder, COSYVOICE3_SPECIALS)
    base.add_special_tokens(list(COSYVOICE3_SPECIALS))
    for s in STRINGS:
        assert ours.encode(s) == base.encode(s).ids, repr(s)
    assert ours.token_id(ENDOFPROMPT) == base.token_to_id(ENDOFPROMPT) == 602


def test_endofprompt_is_151646_on_a_blanken_sized_vocabulary(tmp_path):
    """User need #1: with BlankEN's 151,643 + 3 entries, <|endofprompt|> is ONE id, 151646 (never spelled out)."""
    base = hf_tokenizer(400, SPECIALS[:1])
    folder = write_folder(base, tmp_path / "t", "qwen2")
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    vocab.update({f"<pad{i}>": i for i in range(len(vocab), 151643)})  # unreachable filler entries
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    cfg = {"added_tokens_decoder": {str(151643 + k): {"content": c, "special": True}
                                    for k, c in enumerate(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])}}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    ours = Qwen2Tokenizer.from_folder(folder, COSYVOICE3_SPECIALS)
    ids = ours.encode("You are a helpful assistant.<|endofprompt|>Hello")
    assert ids.count(ENDOFPROMPT_ID) == 1 and ours.encode(ENDOFPROMPT) == [ENDOFPROMPT_ID]
    assert ids[:ids.index(ENDOFPROMPT_ID)] == ours.encode("You are a helpful assistant.")


def test_bad_files_raise_checkpoint_errors(hf, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(hf[1]["qwen2"], folder)
    (folder / "merges.txt").write_text("#version: 0.2\nĠ zzzz\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="line 2"):
        Qwen2Tokenizer.from_folder(folder)
    (folder / "merges.txt").unlink()
    (folder / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="has no tokenizer"):
        Qwen2Tokenizer.from_folder(folder)


# ----------------------------------------------------------------------------------------------------------------
# Shipping through the llm component
# ----------------------------------------------------------------------------------------------------------------

def checkpoint_with_tokenizer(tiny_a: Path, dst: Path, vocab_size: int) -> Path:
    """tiny_a (300 text ids) plus a synthetic CosyVoice-BlankEN tokenizer that fits its embedding."""
    dst.mkdir()
    for p in tiny_a.iterdir():
        if p.is_file():
            (dst / p.name).symlink_to(p)
    (dst / "CosyVoice-BlankEN").mkdir()
    (dst / "CosyVoice-BlankEN" / "config.json").symlink_to(tiny_a / "CosyVoice-BlankEN" / "config.json")
    write_folder(hf_tokenizer(vocab_size, SPECIALS[:1]), dst / "CosyVoice-BlankEN", "qwen2")
    return dst


def test_llm_component_ships_the_tokenizer(tiny_a, tmp_path):
    ckpt = checkpoint_with_tokenizer(Path(tiny_a), tmp_path / "ckpt", 280)
    source = Source(checkpoint=ckpt)
    built = LLM().build(source)
    tables = {d.name.removeprefix("text_tokenizer_"): d.array for d in built.data}
    assert sorted(tables) == ["added", "byte_ids", "classes", "merges"]
    c = built.constants["text_tokenizer"]
    assert c["available"] and c["endofprompt_id"] == 282 and c["special_tokens"][ENDOFPROMPT] == 282
    again = Qwen2Tokenizer.from_tables(tables)
    assert again.encode("hi<|endofprompt|>there") == Qwen2Tokenizer.from_folder(
        ckpt / "CosyVoice-BlankEN", COSYVOICE3_SPECIALS).encode("hi<|endofprompt|>there")
    used = {f["path"] for f in source.used_files()}
    assert {"CosyVoice-BlankEN/vocab.json", "CosyVoice-BlankEN/merges.txt"} <= used


def test_no_tokenizer_says_so(tiny_a):
    assert LLM().build(Source(preset="tiny")).constants["text_tokenizer"]["available"] is False
    built = LLM().build(Source(checkpoint=Path(tiny_a)))
    assert built.data == [] and built.constants["text_tokenizer"] == NO_TOKENIZER
    assert not NO_TOKENIZER["available"] and "tiny preset" in NO_TOKENIZER["reason"]


def test_ids_beyond_the_embedding_are_rejected(tiny_a, tmp_path):
    ckpt = checkpoint_with_tokenizer(Path(tiny_a), tmp_path / "ckpt", 400)
    with pytest.raises(CheckpointError, match="exceed the LLM text embedding"):
        LLM().build(Source(checkpoint=ckpt))


def test_bundle_carries_the_tables_and_verifies(tiny_a, tmp_path):
    """build --components llm on a checkpoint with a tokenizer: the tables are Data/ arrays the manifest lists (sha256
    checked by verify), and they load back into the same tokenizer."""
    from tests.conftest import run_cli
    ckpt = checkpoint_with_tokenizer(Path(tiny_a), tmp_path / "ckpt", 280)
    out = tmp_path / "bundle"
    code, _, err = run_cli("build", "--checkpoint", ckpt, "--out", out, "--components", "llm", "--precision", "fp32")
    assert code == 0, err
    code, _, err = run_cli("verify", out)
    assert code == 0, err
    llm = next(c for c in json.loads((out / "manifest.json").read_text())["components"] if c["name"] == "llm")
    tables = {d["name"].removeprefix("text_tokenizer_"): np.load(out / d["file"]) for d in llm["data"]}
    assert llm["constants"]["text_tokenizer"]["endofprompt_id"] == 282
    assert Qwen2Tokenizer.from_tables(tables).encode("Hi.<|endofprompt|>你好") == Qwen2Tokenizer.from_folder(
        ckpt / "CosyVoice-BlankEN", COSYVOICE3_SPECIALS).encode("Hi.<|endofprompt|>你好")
