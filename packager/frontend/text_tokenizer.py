"""Our own Qwen2 text tokenizer (byte-level BPE + added tokens), the one CosyVoice3's frontend uses (docs/tokenizer.md).

Implements, from the HF-format files of ``CosyVoice-BlankEN/`` (design/cosyvoice3.md §2.1 "Text tokenizer"):

1. added tokens (``<|endoftext|>``, ``<|endofprompt|>`` ...) matched first as whole strings, leftmost-longest;
2. NFC normalisation of the text between them;
3. Qwen2's pre-tokenizer split, written as a scanner over code points (``pretokenize``) instead of a regex so that
   the C# port (Qwen2Tokenizer.cs) is the same code, free of .NET's UTF-16 view of \\p{L}/\\p{N};
4. GPT-2's byte-to-unicode mapping and BPE merges by rank.

BPE runs on token *ids*: a word starts as the ids of its UTF-8 bytes and a merge table row (left, right, merged)
replaces an adjacent pair. That is the string algorithm (merge results are vocabulary entries, so ids and strings
are in one-to-one correspondence) and it is what the bundle ships: three int32 tables, no JSON parser in Unity.
"""
from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from packager.contract.errors import CheckpointError

TOKENIZER_DIR = "CosyVoice-BlankEN"
VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
TOKENIZER_JSON, TOKENIZER_CONFIG = "tokenizer.json", "tokenizer_config.json"
ENDOFPROMPT = "<|endofprompt|>"
# The 280 special tokens CosyVoice3's frontend adds at run time with one ``add_special_tokens`` call, in its order
# (design/frontend.md §1.2): a token the files already define keeps its id, every other one takes the next free id.
# On BlankEN (151,643 BPE entries + <|endoftext|> <|im_start|> <|im_end|>) list index i >= 2 gets id 151644 + i:
# <|endofprompt|> 151646, [breath] 151647, <|endofsystem|> 151663, [AA] 151664, [a] 151748 ... [ǜ] 151923.
COSYVOICE3_SPECIALS: tuple[str, ...] = tuple((
    # head: the Qwen2 chat markers (already in BlankEN) and the prompt marker (3)
    "<|im_start|> <|im_end|> <|endofprompt|> "
    # paralinguistic / markup tags and the system marker (17)
    "[breath] <strong> </strong> [noise] [laughter] [cough] [clucking] [accent] [quick_breath] <laughter> "
    "</laughter> [hissing] [sigh] [vocalized-noise] [lipsmack] [mn] <|endofsystem|> "
    # CMU ARPAbet phones with stress (84)
    "[AA] [AA0] [AA1] [AA2] [AE] [AE0] [AE1] [AE2] [AH] [AH0] [AH1] [AH2] [AO] [AO0] [AO1] [AO2] [AW] [AW0] [AW1] "
    "[AW2] [AY] [AY0] [AY1] [AY2] [B] [CH] [D] [DH] [EH] [EH0] [EH1] [EH2] [ER] [ER0] [ER1] [ER2] [EY] [EY0] "
    "[EY1] [EY2] [F] [G] [HH] [IH] [IH0] [IH1] [IH2] [IY] [IY0] [IY1] [IY2] [JH] [K] [L] [M] [N] [NG] [OW] [OW0] "
    "[OW1] [OW2] [OY] [OY0] [OY1] [OY2] [P] [R] [S] [SH] [T] [TH] [UH] [UH0] [UH1] [UH2] [UW] [UW0] [UW1] [UW2] "
    "[V] [W] [Y] [Z] [ZH] "
    # pinyin initials and finals with tone marks (176)
    "[a] [ai] [an] [ang] [ao] [b] [c] [ch] [d] [e] [ei] [en] [eng] [f] [g] [h] [i] [ian] [in] [ing] [iu] [ià] "
    "[iàn] [iàng] [iào] [iá] [ián] [iáng] [iáo] [iè] [ié] [iòng] [ióng] [iù] [iú] [iā] [iān] [iāng] [iāo] [iē] "
    "[iě] [iōng] [iū] [iǎ] [iǎn] [iǎng] [iǎo] [iǒng] [iǔ] [j] [k] [l] [m] [n] [o] [ong] [ou] [p] [q] [r] [s] [sh] "
    "[t] [u] [uang] [ue] [un] [uo] [uà] [uài] [uàn] [uàng] [uá] [uái] [uán] [uáng] [uè] [ué] [uì] [uí] [uò] [uó] "
    "[uā] [uāi] [uān] [uāng] [uē] [uě] [uī] [uō] [uǎ] [uǎi] [uǎn] [uǎng] [uǐ] [uǒ] [vè] [w] [x] [y] [z] [zh] [à] "
    "[ài] [àn] [àng] [ào] [á] [ái] [án] [áng] [áo] [è] [èi] [èn] [èng] [èr] [é] [éi] [én] [éng] [ér] [ì] [ìn] "
    "[ìng] [í] [ín] [íng] [ò] [òng] [òu] [ó] [óng] [óu] [ù] [ùn] [ú] [ún] [ā] [āi] [ān] [āng] [āo] [ē] [ēi] [ēn] "
    "[ēng] [ě] [ěi] [ěn] [ěng] [ěr] [ī] [īn] [īng] [ō] [ōng] [ōu] [ū] [ūn] [ǎ] [ǎi] [ǎn] [ǎng] [ǎo] [ǐ] [ǐn] "
    "[ǐng] [ǒ] [ǒng] [ǒu] [ǔ] [ǔn] [ǘ] [ǚ] [ǜ] "
).split())

# Unicode White_Space (what \s means in the Oniguruma regex HF tokenizers runs; not Python's str.isspace, which
# also counts U+001C..U+001F).
WHITESPACE = frozenset([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                        0x202F, 0x205F, 0x3000])
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")  # after an ASCII apostrophe, case-insensitive
LONG_S = "\u017f"  # ſ case-folds to s, so (?i)'s matches 'ſ


# ----------------------------------------------------------------------------------------------------------------
# Pre-tokenizer: Qwen2's split regex as a scanner
#   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} | ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+
#   | \s+(?!\S) | \s+
# ----------------------------------------------------------------------------------------------------------------

def char_class(ch: str) -> str:
    """'L' letter, 'N' number, 'W' White_Space, 'O' anything else (punctuation, symbols, emoji, controls)."""
    cat = unicodedata.category(ch)[0]
    if cat in "LN":
        return cat
    return "W" if ord(ch) in WHITESPACE else "O"


def _contraction(text: str, i: int) -> int:
    """Length of a contraction match at ``i`` (0 if none). Alternatives in regex order; the first one wins."""
    if text[i] != "'":
        return 0
    for c in CONTRACTIONS:
        tail = text[i + 1:i + 1 + len(c)]
        if len(tail) == len(c) and all(t in (x, x.upper()) or (x == "s" and t == LONG_S) for t, x in zip(tail, c)):
            return 1 + len(c)
    return 0


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into the pieces Qwen2's regex finds (every position is matched, so the pieces tile it)."""
    cls = [char_class(c) for c in text]
    n, i, out = len(text), 0, []

    def run(j: int, kinds: str) -> int:  # end of the maximal run of classes in ``kinds`` from j
        while j < n and cls[j] in kinds:
            j += 1
        return j

    while i < n:
        c = cls[i]
        end = _contraction(text, i)
        if end:
            end += i
        elif c == "L":
            end = run(i, "L")
        elif c != "N" and text[i] not in "\r\n" and i + 1 < n and cls[i + 1] == "L":
            end = run(i + 1, "L")  # one leading non-letter (space, punctuation ...) glued to a word
        elif c == "N":
            end = i + 1  # digits one by one
        elif c == "O" or (text[i] == " " and i + 1 < n and cls[i + 1] == "O"):
            end = run(i + 1, "O")
            while end < n and text[end] in "\r\n":
                end += 1
        else:  # whitespace
            ws_end = run(i, "W")
            newline = max((k for k in range(i, ws_end) if text[k] in "\r\n"), default=-1)
            if newline >= 0:
                end = newline + 1  # \s*[\r\n]+ : up to the last line break of the run
            elif ws_end == n or ws_end - i == 1:
                end = ws_end  # \s+(?!\S) at the end of the text, or \s+ for a single space before a non-space
            else:
                end = ws_end - 1  # leave the last space to prefix the next word
        out.append(text[i:end])
        i = end
    return out


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (printable Latin-1 bytes map to themselves)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + k) for k, b in enumerate(extra)}}


def merge_pair(symbols: Sequence[Any], pair: tuple[Any, Any], merged: Any) -> list[Any]:
    """``symbols`` with every non-overlapping occurrence of ``pair``, left to right, replaced by ``merged`` (one BPE
    merge step: the encoder's on token ids, the tiny tokenizer's trainer on byte symbols)."""
    out, k = [], 0
    while k < len(symbols):
        if k + 1 < len(symbols) and (symbols[k], symbols[k + 1]) == pair:
            out.append(merged)
            k += 2
        else:
            out.append(symbols[k])
            k += 1
    return out


def replace_lone_surrogates(text: str) -> str:
    """Read ``text`` as UTF-16, as C# does: a high+low surrogate pair is one character, an unpaired surrogate
    becomes U+FFFD (what a UTF-8 encoder writes for it)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@lru_cache(maxsize=1)
def _class_ranges() -> np.ndarray:
    """[k, 3] int32 (first, last, 1 = letter | 2 = number) over all code points: this Python's Unicode tables,
    shipped so that a runtime with older ones (mono 6.8 differs on 31k code points) splits text the same way."""
    rows: list[list[int]] = []
    for cp in range(0x110000):
        c = {"L": 1, "N": 2}.get(unicodedata.category(chr(cp))[0], 0)
        if c and rows and rows[-1][1] == cp - 1 and rows[-1][2] == c:
            rows[-1][1] = cp
        elif c:
            rows.append([cp, cp, c])
    return np.asarray(rows, np.int32)


def class_ranges() -> np.ndarray:
    return _class_ranges().copy()


# ----------------------------------------------------------------------------------------------------------------
# The tokenizer
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddedToken:
    id: int
    content: str
    special: bool = True


class Qwen2Tokenizer:
    """Text -> Qwen2 token ids. Build with ``from_folder`` (HF files) or ``from_tables`` (the bundle's arrays)."""

    def __init__(self, byte_ids: np.ndarray, merges: np.ndarray, added: Sequence[AddedToken]):
        self.byte_ids = np.asarray(byte_ids, np.int32)  # [256] id of each single-byte token
        self.merges = np.asarray(merges, np.int32).reshape(-1, 3)  # [n, 3] (left, right, merged); row = rank
        self.added = sorted(added, key=lambda t: t.id)
        self._rank = {(int(a), int(b)): (r, int(m)) for r, (a, b, m) in enumerate(self.merges.tolist())}
        self._by_first: dict[str, list[AddedToken]] = {}
        for t in sorted(self.added, key=lambda t: -len(t.content)):  # longest first: leftmost-longest matching
            self._by_first.setdefault(t.content[0], []).append(t)
        self._cache: dict[str, list[int]] = {}

    # -- encoding ------------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for segment, token in self.split_added(replace_lone_surrogates(text)):
            if token is not None:
                ids.append(token.id)
                continue
            for piece in pretokenize(unicodedata.normalize("NFC", segment)):
                ids.extend(self._bpe(piece))
        return ids

    def split_added(self, text: str) -> list[tuple[str, AddedToken | None]]:
        """Cut out added tokens (leftmost, then longest); the text between them is returned with ``None``."""
        out, start, i = [], 0, 0
        while i < len(text):
            hit = next((t for t in self._by_first.get(text[i], ()) if text.startswith(t.content, i)), None)
            if hit is None:
                i += 1
                continue
            if i > start:
                out.append((text[start:i], None))
            out.append((hit.content, hit))
            i = start = i + len(hit.content)
        if start < len(text):
            out.append((text[start:], None))
        return out

    def _bpe(self, piece: str) -> list[int]:
        """Merge the lowest-ranked adjacent pair (all its non-overlapping occurrences, left to right) until none."""
        if piece in self._cache:
            return self._cache[piece]
        word = [int(self.byte_ids[b]) for b in piece.encode("utf-8")]
        if min(word, default=0) < 0:
            raise CheckpointError("a byte has no single-byte token", file=VOCAB_FILE, found=repr(piece))
        while len(word) > 1:
            best = min((self._rank.get(p, (1 << 31, 0)) + (p,) for p in zip(word, word[1:])))
            if best[0] == 1 << 31:
                break
            _, merged, pair = best
            word = merge_pair(word, pair, merged)
        self._cache[piece] = word
        return word

    def token_id(self, content: str) -> int | None:
        return next((t.id for t in self.added if t.content == content), None)

    # -- the bundle's int32 tables -------------------------------------------------------------------------------

    def to_tables(self) -> dict[str, np.ndarray]:
        """``byte_ids`` [256], ``merges`` [n, 3], ``added`` flat [id, special, n_codepoints, codepoints...]*,
        ``classes`` [k, 3] letter/number code point ranges (``class_ranges``)."""
        flat: list[int] = []
        for t in self.added:
            flat += [t.id, int(t.special), len(t.content), *map(ord, t.content)]
        return {"byte_ids": self.byte_ids.copy(), "merges": self.merges.copy(),
                "added": np.asarray(flat, np.int32), "classes": class_ranges()}

    @classmethod
    def from_tables(cls, tables: Mapping[str, np.ndarray]) -> "Qwen2Tokenizer":
        flat, added, k = [int(x) for x in tables["added"]], [], 0
        while k < len(flat):
            tid, special, n = flat[k:k + 3]
            added.append(AddedToken(tid, "".join(map(chr, flat[k + 3:k + 3 + n])), bool(special)))
            k += 3 + n
        return cls(tables["byte_ids"], tables["merges"], added)

    # -- HF files ------------------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: Path, extra_specials: Iterable[str] = ()) -> "Qwen2Tokenizer":
        """Load ``vocab.json`` + ``merges.txt`` (or the model inside ``tokenizer.json``) and the added tokens of
        ``tokenizer.json`` / ``tokenizer_config.json``; then add ``extra_specials`` as ``add_special_tokens`` does:
        one the files already define (as an added token, or as a vocabulary entry) keeps its id, every other one
        takes the next free id, in list order. All are then matched as whole strings anywhere in the text."""
        folder = Path(folder)
        vocab, merges = _read_model(folder)
        byte_map = bytes_to_unicode()
        missing = [byte_map[b] for b in range(256) if byte_map[b] not in vocab]
        if missing:
            raise CheckpointError("is not a byte-level vocabulary", file=str(folder / VOCAB_FILE),
                                  expected="all 256 single-byte tokens", found=f"{len(missing)} missing")
        rows = []
        for line_no, (a, b) in merges:
            if a not in vocab or b not in vocab or a + b not in vocab:
                raise CheckpointError("merge uses a token that is not in the vocabulary", file=str(folder / MERGES_FILE),
                                      key=f"line {line_no}", found=f"{a} {b}")
            rows.append((vocab[a], vocab[b], vocab[a + b]))
        if len(set((r[0], r[1]) for r in rows)) != len(rows):
            raise CheckpointError("lists a merge twice", file=str(folder / MERGES_FILE))
        added = _read_added(folder)
        next_id = max([*vocab.values(), *(t.id for t in added.values())]) + 1
        for content in extra_specials:
            if content in added:
                continue
            if content in vocab:  # a BPE entry already: HF registers it as an added token with its id
                added[content] = AddedToken(vocab[content], content, True)
                continue
            added[content] = AddedToken(next_id, content, True)
            next_id += 1
        return cls(np.array([vocab[byte_map[b]] for b in range(256)], np.int32),
                   np.array(rows, np.int32).reshape(-1, 3), list(added.values()))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not valid JSON: {exc}", file=str(path)) from None


def _read_model(folder: Path) -> tuple[dict[str, int], list[tuple[int, tuple[str, str]]]]:
    """(vocab, [(line, (left, right))]) from vocab.json + merges.txt, else from tokenizer.json's ``model``."""
    if (folder / VOCAB_FILE).is_file() and (folder / MERGES_FILE).is_file():
        vocab = _read_json(folder / VOCAB_FILE)
        lines = (folder / MERGES_FILE).read_text(encoding="utf-8").split("\n")
        merges = [(k + 1, line) for k, line in enumerate(lines) if line and not line.startswith("#version")]
        where = str(folder / MERGES_FILE)
    elif (folder / TOKENIZER_JSON).is_file():
        model = _read_json(folder / TOKENIZER_JSON).get("model") or {}
        if model.get("type") != "BPE" or model.get("byte_fallback"):
            raise CheckpointError("unsupported tokenizer model", file=str(folder / TOKENIZER_JSON), key="model",
                                  expected="byte-level BPE", found=str(model.get("type")))
        vocab = model.get("vocab", {})
        merges = [(k + 1, " ".join(m) if isinstance(m, list) else m) for k, m in enumerate(model.get("merges", []))]
        where = str(folder / TOKENIZER_JSON)
    else:
        raise CheckpointError("has no tokenizer", file=str(folder),
                              expected=f"{VOCAB_FILE} + {MERGES_FILE}, or {TOKENIZER_JSON}")
    if not isinstance(vocab, dict) or not all(isinstance(v, int) and v >= 0 for v in vocab.values()):
        raise CheckpointError("is not a token -> id map", file=str(folder / VOCAB_FILE))
    if len(set(vocab.values())) != len(vocab):
        raise CheckpointError("maps two tokens to one id", file=str(folder / VOCAB_FILE))
    pairs = []
    for line_no, m in merges:
        parts = m.split(" ")
        if len(parts) != 2 or not all(parts):
            raise CheckpointError("is not a merge 'left right'", file=where, key=f"line {line_no}", found=repr(m))
        pairs.append((line_no, (parts[0], parts[1])))
    return vocab, pairs


def _read_added(folder: Path) -> dict[str, AddedToken]:
    """Added tokens from tokenizer.json (``added_tokens``) and tokenizer_config.json (``added_tokens_decoder``)."""
    entries: list[tuple[str, dict[str, Any]]] = []
    if (folder / TOKENIZER_JSON).is_file():
        for t in _read_json(folder / TOKENIZER_JSON).get("added_tokens", []):
            entries.append((TOKENIZER_JSON, t))
    if (folder / TOKENIZER_CONFIG).is_file():
        for tid, t in (_read_json(folder / TOKENIZER_CONFIG).get("added_tokens_decoder") or {}).items():
            entries.append((TOKENIZER_CONFIG, {**t, "id": int(tid)}))
    added: dict[str, AddedToken] = {}
    for file, t in entries:
        content, tid = t.get("content"), t.get("id")
        if not isinstance(content, str) or not content or not isinstance(tid, int):
            raise CheckpointError("added token without content/id", file=str(folder / file), found=str(t))
        for flag in ("lstrip", "rstrip", "single_word"):  # Qwen2 sets none of them; we do not implement them
            if t.get(flag):
                raise CheckpointError(f"added token {content!r} sets {flag}", file=str(folder / file),
                                      expected=f"{flag}: false (not implemented)", found="true")
        if t.get("normalized") and unicodedata.normalize("NFC", content) != content:
            raise CheckpointError(f"normalized added token {content!r} changes under NFC", file=str(folder / file))
        old = added.get(content)
        if old is not None and old.id != tid:
            raise CheckpointError(f"added token {content!r} has two ids", file=str(folder / file),
                                  expected=str(old.id), found=str(tid))
        added[content] = AddedToken(tid, content, bool(t.get("special", False)))
    return added


# ----------------------------------------------------------------------------------------------------------------
# Shipping: the llm component's bundle data (docs/tokenizer.md "In the bundle")
# ----------------------------------------------------------------------------------------------------------------

TABLE_DESCRIPTIONS = {
    "byte_ids": "Qwen2 tokenizer: [256] token id of each single UTF-8 byte (GPT-2 byte-level alphabet)",
    "merges": "Qwen2 tokenizer: [n, 3] BPE merges by rank (row): left id, right id, merged id",
    "added": "Qwen2 tokenizer: added tokens, flat int32 records [id, special, n, n Unicode code points]",
    "classes": "Qwen2 tokenizer: [k, 3] code point ranges (first, last, 1 letter / 2 number) for the pre-tokenizer",
}


# The manifest's word for "this bundle has no tokenizer" (the llm constants' default, so the same for every such build)
NO_TOKENIZER = {"available": False,
                "reason": f"no tokenizer files in the checkpoint's {TOKENIZER_DIR}/ (e.g. the tiny_a test checkpoint); "
                          "text ids must come from elsewhere"}
