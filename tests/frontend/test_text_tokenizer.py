"""packager/frontend/text_tokenizer.py against Hugging Face ``tokenizers`` (docs/tokenizer.md).

A synthetic Qwen2-style tokenizer is trained here with ``tokenizers`` (NFC, Qwen2's split regex, byte-level, BPE,
added specials) on a small multilingual corpus; ours must give identical ids on every test string, in both the
``vocab.json + merges.txt + tokenizer_config.json`` layout (what CosyVoice-BlankEN ships) and ``tokenizer.json``.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from packager.build.checkpoint import Source
from packager.components.llm.component import LLM
from packager.components.llm.model import TINY
from packager.contract.errors import CheckpointError
from packager.components.llm.tokenizer import UPSTREAM_ENDOFPROMPT_ID as ENDOFPROMPT_ID
from packager.frontend.text_tokenizer import (COSYVOICE3_SPECIALS, ENDOFPROMPT, NO_TOKENIZER, Qwen2Tokenizer,
                                              bytes_to_unicode, pretokenize)
from packager.components.llm.tiny_tokenizer import CORPUS as TINY_CORPUS
from packager.components.llm.tiny_tokenizer import (TINY_MERGES, TINY_VOCAB, tiny_tokenizer, train_bpe,
                                                    write_tiny_tokenizer)
from tests.conftest import DESIGN_NOTES

tokenizers = pytest.importorskip("tokenizers")  # the `test` extra; only these comparisons need it

DESIGN = DESIGN_NOTES  # upstream facts (design/frontend.md); optional checks when present
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



def special_strings() -> list[str]:
    """Each of CosyVoice3's 280 specials alone and inside text, plus near misses (prefixes, other case, NFD)."""
    S = COSYVOICE3_SPECIALS
    return [*S, *(f"a{s}b" for s in S), *(f"{s}{s} x{s}.\n" for s in S[::7]), " ".join(S), "".join(S),
            "[j][ǐ]", "<strong>x</strong>", "[laughter]", "a[breath]b", "<laughter>haha</laughter>",
            "You are a helpful assistant.<|endofprompt|>[breath]因为他们那一辈人[breath]在乡里面住的要习惯一点",
            "<|endofsystem|>sys<|endofprompt|>[AA1][B][ch][iàng][uǎng]", "[AA][AA0][AA1][AA2][AA3]", "[a", "[ai",
            "[ai]]", "[[a]]", "<strong", "</strong", "[ià]ng]", "[iàng]", "[ǜ][ǘ][ǚ]", "[quick_breath][breath]",
            "[vocalized-noise]-", " [breath] ", "[Breath] [BREATH] [A] [Zh]", "[i\u0300ang] [u\u030c]",
            "[mn][m][n][ng][NG]", "word[sigh]word [cough]. [noise]!"]

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
    """A folder without CosyVoice3's specials (like the real BlankEN): we add all 280 as add_special_tokens does,
    and every one is matched atomically, alone or inside text, exactly like HF ``tokenizers``."""
    base = hf_tokenizer(600, SPECIALS[:1])
    folder = write_folder(base, tmp_path / "t", "qwen2")
    ours = Qwen2Tokenizer.from_folder(folder, COSYVOICE3_SPECIALS)
    base.add_special_tokens(list(COSYVOICE3_SPECIALS))
    for s in STRINGS + special_strings():
        assert ours.encode(s) == base.encode(s, add_special_tokens=False).ids, repr(s)
    assert ours.token_id(ENDOFPROMPT) == base.token_to_id(ENDOFPROMPT) == 602
    assert [ours.token_id(s) for s in COSYVOICE3_SPECIALS] == list(range(600, 880))
    for k, s in enumerate(COSYVOICE3_SPECIALS):
        assert ours.encode(s) == [600 + k] and ours.encode(f"a{s}b") == ours.encode("a") + [600 + k] + ours.encode("b")
    assert ours.encode("[j][ǐ]") == [ours.token_id("[j]"), ours.token_id("[ǐ]")]
    assert ours.encode("<strong>x</strong>") == [ours.token_id("<strong>"), *ours.encode("x"), ours.token_id("</strong>")]


def test_cosyvoice3_specials_list():
    """280 unique strings in upstream's order (design/frontend.md §1.2): 3 head + 17 tags + 84 ARPAbet + 176 pinyin."""
    S = COSYVOICE3_SPECIALS
    assert len(S) == len(set(S)) == 280 and S[:3] == ("<|im_start|>", "<|im_end|>", ENDOFPROMPT)
    assert S[3:5] == ("[breath]", "<strong>") and S[18:21] == ("[mn]", "<|endofsystem|>", "[AA]")
    assert S[103:105] == ("[ZH]", "[a]") and S[-1] == "[ǜ]"
    assert all(unicodedata.normalize("NFC", s) == s and " " not in s for s in S)
    doc = DESIGN / "frontend.md"
    if doc.is_file():  # the whole list, when the design notes are beside the repository
        listed = json.loads(re.search(r"```json\n(\[.*?\])\n```", doc.read_text(encoding="utf-8"), re.S).group(1))
        assert tuple(listed) == S


def test_a_special_that_is_a_vocabulary_entry_keeps_its_id(tmp_path):
    """add_special_tokens on a token the model vocabulary has already: HF keeps that id (no new one)."""
    base = hf_tokenizer(600, SPECIALS[:1])
    folder = write_folder(base, tmp_path / "t", "qwen2")
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    vocab["[a]"] = len(vocab)  # id 600, an (unreachable) BPE entry
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    ours = Qwen2Tokenizer.from_folder(folder, COSYVOICE3_SPECIALS)
    from tokenizers import Tokenizer, models
    hf = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    hf.add_special_tokens(["<|endoftext|>", *COSYVOICE3_SPECIALS])
    assert [ours.token_id(s) for s in COSYVOICE3_SPECIALS] == [hf.token_to_id(s) for s in COSYVOICE3_SPECIALS]
    assert ours.token_id("[a]") == 600 and ours.token_id("[ǜ]") == 600 + 279 and ours.encode("x[a]") [-1] == 600


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
    # design/frontend.md appendix: list index i -> id 151644 + i (im_start/im_end already there), 151924 ids in all
    assert {s: ours.token_id(s) for s in COSYVOICE3_SPECIALS} == {s: 151644 + i for i, s in enumerate(COSYVOICE3_SPECIALS)}
    anchors = {"<|im_start|>": 151644, "<|im_end|>": 151645, "[breath]": 151647, "<strong>": 151648,
               "</strong>": 151649, "[laughter]": 151651, "[mn]": 151662, "<|endofsystem|>": 151663, "[AA]": 151664,
               "[ZH]": 151747, "[a]": 151748, "[j]": 151797, "[ǐ]": 151913, "[ǜ]": 151923}
    assert all(ours.encode(s) == [i] for s, i in anchors.items())
    assert max(t.id for t in ours.added) + 1 == 151924
    doc = DESIGN / "frontend.md"
    if doc.is_file():  # the appendix table itself, when the design notes are beside the repository
        rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+(\S+)$", doc.read_text(encoding="utf-8").split("## Appendix")[1], re.M)
        assert len(rows) == 280 and all(ours.token_id(tok) == int(tid) for _, tid, tok in rows)


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

def checkpoint_with_tokenizer(tiny_a: Path, dst: Path, vocab_size: int, text_vocab: int = 1024) -> Path:
    """tiny_a plus a synthetic CosyVoice-BlankEN tokenizer (``vocab_size`` BPE entries + the 280 specials). tiny_a's
    300 text ids cannot hold the specials, so its text embedding is grown to ``text_vocab`` rows (the extra rows
    random; ``text_vocab=300`` keeps tiny_a's llm.pt and config.json as they are)."""
    import torch
    dst.mkdir()
    (dst / "CosyVoice-BlankEN").mkdir()
    grow = text_vocab != 300
    for p in tiny_a.iterdir():
        if p.is_file() and not (grow and p.name == "llm.pt"):
            (dst / p.name).symlink_to(p)
    qwen = tiny_a / "CosyVoice-BlankEN" / "config.json"
    if grow:
        sd = torch.load(tiny_a / "llm.pt", weights_only=True)
        emb = sd["llm.model.model.embed_tokens.weight"]
        extra = 0.1 * torch.randn(text_vocab - emb.shape[0], emb.shape[1], generator=torch.Generator().manual_seed(0))
        sd["llm.model.model.embed_tokens.weight"] = sd["llm.model.lm_head.weight"] = torch.cat([emb, extra])
        torch.save(sd, dst / "llm.pt")
        cfg = json.loads(qwen.read_text(encoding="utf-8"))
        (dst / "CosyVoice-BlankEN" / "config.json").write_text(json.dumps({**cfg, "vocab_size": text_vocab}))
    else:
        (dst / "CosyVoice-BlankEN" / "config.json").symlink_to(qwen)
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
    built = LLM().build(Source(checkpoint=Path(tiny_a)))  # tiny_a: 300 text ids, no tokenizer files
    assert built.data == [] and built.constants["text_tokenizer"] == NO_TOKENIZER
    assert not NO_TOKENIZER["available"] and "tiny_a" in NO_TOKENIZER["reason"]


def test_tiny_preset_ships_its_tokenizer_like_a_checkpoint():
    """The preset's llm carries the tiny tokenizer's tables and the same constants a checkpoint bundle gets."""
    built = LLM().build(Source(preset="tiny"))
    tables = {d.name.removeprefix("text_tokenizer_"): d.array for d in built.data}
    assert sorted(tables) == ["added", "byte_ids", "classes", "merges"]
    c = built.constants["text_tokenizer"]
    assert c["available"] and c["kind"] == "qwen2_byte_bpe" and c["endofprompt_id"] == 746
    assert c["data"] == [d.name for d in built.data] and len(c["special_tokens"]) == 281
    assert built.constants["text_vocab_size"] == 1024 and c["special_tokens"]["[ǜ]"] == 1023
    tok = tiny_tokenizer()
    assert Qwen2Tokenizer.from_tables(tables).encode("Hi.<|endofprompt|>[breath]Hello 23!") == tok.encode(
        "Hi.<|endofprompt|>[breath]Hello 23!")


# ----------------------------------------------------------------------------------------------------------------
# The tiny preset's tokenizer (packager/components/llm/tiny_tokenizer.py)
# ----------------------------------------------------------------------------------------------------------------

def test_tiny_tokenizer_files_are_deterministic_and_qwen2_shaped(tmp_path):
    a, b = write_tiny_tokenizer(tmp_path / "a"), write_tiny_tokenizer(tmp_path / "b")
    names = ["merges.txt", "tokenizer_config.json", "vocab.json"]
    assert sorted(p.name for p in a.iterdir()) == names
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    vocab = json.loads((a / "vocab.json").read_text(encoding="utf-8"))
    merges = (a / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) - 1 == TINY_MERGES == 487
    assert sorted(vocab.values()) == list(range(256 + TINY_MERGES))
    assert list(vocab)[:256] == list(bytes_to_unicode().values())  # GPT-2's byte order, as in Qwen2's vocab.json
    cfg = json.loads((a / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert {int(k): v["content"] for k, v in cfg["added_tokens_decoder"].items()} == {
        743: "<|endoftext|>", 744: "<|im_start|>", 745: "<|im_end|>"}
    assert cfg["tokenizer_class"] == "Qwen2Tokenizer" and cfg["eos_token"] == "<|endoftext|>"


def test_tiny_tokenizer_sizes():
    tok = tiny_tokenizer()
    ids = [tok.token_id(s) for s in COSYVOICE3_SPECIALS]
    assert tok.token_id(ENDOFPROMPT) == 746 and ids[:3] == [744, 745, 746] and ids[3:] == list(range(747, 1024))
    assert len(tok.merges) == 487 and int(tok.merges[:, 2].max()) == 742 and tok.token_id("<|endoftext|>") == 743
    assert max(ids) + 1 == TINY_VOCAB == TINY.text_vocab == 1024
    assert sorted(tok.byte_ids.tolist()) == list(range(256))


def test_tiny_tokenizer_equals_hf_tokenizers_on_its_files(tmp_path):
    """HF ``tokenizers`` with Qwen2's pipeline on the tiny files gives our ids: the merges suit the pre-tokenizer."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    folder = write_tiny_tokenizer(tmp_path / "tiny")
    hf = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    hf.normalizer = normalizers.NFC()
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.add_special_tokens(["<|endoftext|>", *COSYVOICE3_SPECIALS])
    ours = tiny_tokenizer()
    for s in STRINGS + CORPUS + special_strings()[::5] + fuzz_strings(500, seed=4) + [TINY_CORPUS]:
        assert ours.encode(s) == hf.encode(s, add_special_tokens=False).ids, repr(s)


def test_tiny_tokenizer_reproduces_its_training_segmentation():
    """Encoding a training piece with the merges by rank gives the segmentation the trainer ended with, and the
    corpus is compact (far fewer tokens than bytes)."""
    vocab, merges = train_bpe(TINY_CORPUS, TINY_MERGES)
    tok = tiny_tokenizer()
    inv = {v: k for k, v in vocab.items()}
    text = "You are a helpful assistant. I have twenty-three apples."
    assert "".join(inv[i] for i in tok.encode(text)) == "".join(bytes_to_unicode()[b] for b in text.encode())
    assert len(tok.encode(TINY_CORPUS)) < len(TINY_CORPUS.encode()) / 2.5
    assert train_bpe(TINY_CORPUS, 40) == (dict(list(vocab.items())[:296]), merges[:40])  # prefix-stable


def test_ids_beyond_the_embedding_are_rejected(tiny_a, tmp_path):
    """tiny_a's 300 text ids cannot hold 256 bytes + CosyVoice3's 278 new specials."""
    ckpt = checkpoint_with_tokenizer(Path(tiny_a), tmp_path / "ckpt", 280, text_vocab=300)
    with pytest.raises(CheckpointError, match=r"exceed the LLM text embedding \(expected ids < 300, found 559\)"):
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
