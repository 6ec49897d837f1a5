"""Upstream CosyVoice3's text frontend, ``text_normalize`` (design/frontend.md §2.2), as our own code; no torch.

``normalize(text, tokenize)`` turns a user's text into the pieces upstream synthesizes one by one
(docs/text_frontend.md):

1. text with both ``<|`` and ``|>`` (every CosyVoice3 prompt with ``<|endofprompt|>``) is returned raw, unsplit;
   so is the empty string;
2. ``strip()``;
3. Chinese (any character in U+4E00..U+9FFF): wetext TN; drop ``\\n``; ``replace_blank``; ``replace_corner_mark``;
   ``.`` -> ``。``; `` - `` -> ``，``; ``remove_bracket``; trailing ``，`` ``,`` ``、`` -> ``。``;
   ``split_paragraph(..., "zh")`` (lengths in characters);
   otherwise: wetext TN; ``spell_out_number`` (inflect); ``split_paragraph(..., "en")`` (lengths in Qwen tokens);
4. pieces that are only punctuation / symbols (``^[\\p{P}\\p{S}]*$``) are dropped.

wetext is optional (the ``text`` extra): without it a one-line notice goes to stderr once and step 3 skips TN, as
upstream does when no frontend is available. ``TextFrontend.cs`` is the C# port of the pipeline without wetext.
"""
from __future__ import annotations

import sys
import unicodedata
from functools import lru_cache
from typing import Any, Callable

from packager.contract.errors import InputError

TOKEN_MAX_N, TOKEN_MIN_N, MERGE_LEN = 80, 60, 20  # upstream's split_paragraph arguments in text_normalize
SENTENCE_END = {"zh": ("。", "？", "！", "；", "：", "、", ".", "?", "!", ";"), "en": (".", "?", "!", ";", ":")}
COMMAS = ("，", ",")  # also sentence ends with comma_split=True (upstream never sets it)
APPENDED_END = {"zh": "。", "en": "."}
CLOSING_QUOTES = ('"', "”")  # stay with the sentence end they follow
CORNER_MARKS = (("²", "平方"), ("³", "立方"))
BRACKETS = ("（", "）", "【", "】", "`")
TRAILING_COMMAS = ("，", ",", "、")
WETEXT_NOTICE = ("note: wetext is not installed; text is not normalized beyond spelling out numbers "
                 "(pip install -e '.[text]')")
SPEAKABLE = "text with at least one letter or digit"
MAX_NUMBER_DIGITS = 36  # inflect names groups up to decillion (10^33); longer numbers raise there


# ----------------------------------------------------------------------------------------------------------------
# Character rules
# ----------------------------------------------------------------------------------------------------------------

def contains_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def replace_blank(text: str) -> str:
    """Drop every space (U+0020) unless both its neighbours are ASCII and not spaces (kept between two English
    words, dropped next to a Chinese character). A space at either end of the text is dropped."""
    out = []
    for i, ch in enumerate(text):
        if ch == " ":
            keep = (0 < i < len(text) - 1 and text[i - 1].isascii() and text[i - 1] != " "
                    and text[i + 1].isascii() and text[i + 1] != " ")
            if not keep:
                continue
        out.append(ch)
    return "".join(out)


def replace_corner_mark(text: str) -> str:
    for mark, word in CORNER_MARKS:
        text = text.replace(mark, word)
    return text


def remove_bracket(text: str) -> str:
    for b in BRACKETS:
        text = text.replace(b, "")
    return text.replace("——", " ")


def replace_trailing_commas(text: str) -> str:
    """A run of ``，`` ``,`` ``、`` at the end becomes one ``。``."""
    end = len(text)
    while end > 0 and text[end - 1] in TRAILING_COMMAS:
        end -= 1
    return text if end == len(text) else text[:end] + "。"


def is_punctuation_only(piece: str) -> bool:
    """Upstream's ``^[\\p{P}\\p{S}]*$`` (``$`` also before one final newline): empty, or only P*/S* characters."""
    body = piece[:-1] if piece.endswith("\n") else piece
    return all(unicodedata.category(ch)[0] in "PS" for ch in body)


def is_speakable(text: str) -> bool:
    """True when ``text`` has at least one letter or number (Unicode L* / N*)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def require_speakable(text: str | None, key: str = "--text") -> str:
    """``text`` itself, or an InputError when it is empty or only punctuation / symbols / spaces."""
    if text is None or not is_speakable(text):
        what = "empty text" if not (text or "").strip() else "the text has nothing to speak (only punctuation or symbols)"
        raise InputError(what, key=key, expected=SPEAKABLE, found=None if not text else repr(text[:60]))
    return text


# ----------------------------------------------------------------------------------------------------------------
# Numbers (inflect)
# ----------------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _inflect() -> Any:
    import inflect  # a core dependency; imported here so that importing this module stays cheap
    return inflect.engine()


def number_to_words(digits: str) -> str:
    """``inflect.engine().number_to_words(digits)`` for a run of ``str.isdigit`` characters (what upstream's
    spell_out_number passes); a number inflect cannot name (more than 36 digits) is an InputError."""
    import inflect
    try:
        return _inflect().number_to_words(digits)
    except inflect.NumOutOfRangeError:
        raise InputError("a number is too long to spell out", key="--text",
                         expected=f"numbers of at most {MAX_NUMBER_DIGITS} digits",
                         found=f"{len(digits)} digits ({digits[:12]}...)") from None


def spell_out_number(text: str) -> str:
    """Every maximal run of ``str.isdigit()`` characters replaced by ``number_to_words`` of it."""
    out, start = [], None
    for i, ch in enumerate(text + "\0"):  # the sentinel ends a trailing run
        if ch.isdigit():
            if start is None:
                start = i
            continue
        if start is not None:
            out.append(number_to_words(text[start:i]))
            start = None
        out.append(ch)
    return "".join(out[:-1])


# ----------------------------------------------------------------------------------------------------------------
# Sentence splitting
# ----------------------------------------------------------------------------------------------------------------

def split_paragraph(text: str, tokenize: Callable[[str], list[int]], lang: str, token_max_n: int = TOKEN_MAX_N,
                    token_min_n: int = TOKEN_MIN_N, merge_len: int = MERGE_LEN, comma_split: bool = False) -> list[str]:
    """Cut ``text`` into sentences and merge them into pieces of about ``token_min_n``..``token_max_n``.

    Length: characters for ``zh``, ``len(tokenize(s))`` for ``en``. A sentence ends after each sentence-end
    character of the language (a closing ``"`` / ``”`` right after it stays in the sentence); a text that does not
    end with one gets ``。`` / ``.`` appended first. Sentences are appended to the current piece; a new piece starts
    when the current one is longer than ``token_min_n`` and adding the sentence would make it longer than
    ``token_max_n``. A last piece shorter than ``merge_len`` joins the one before it. Every character is kept.
    """
    if lang not in SENTENCE_END:
        raise ValueError(f"lang must be 'zh' or 'en', not {lang!r}")
    if not text:
        return []
    length: Callable[[str], int] = len if lang == "zh" else (lambda s: len(tokenize(s)))
    ends = SENTENCE_END[lang] + (COMMAS if comma_split else ())
    if text[-1] not in ends:
        text += APPENDED_END[lang]
    sentences, start, i = [], 0, 0
    while i < len(text):
        i += 1
        if text[i - 1] in ends:
            if i < len(text) and text[i] in CLOSING_QUOTES:
                i += 1
            sentences.append(text[start:i])
            start = i
    if start < len(text):  # only after a closing quote that follows the appended end
        sentences.append(text[start:])
    pieces, cur = [], ""
    for s in sentences:
        if length(cur + s) > token_max_n and length(cur) > token_min_n:
            pieces.append(cur)
            cur = ""
        cur += s
    if cur:
        if pieces and length(cur) < merge_len:
            pieces[-1] += cur
        else:
            pieces.append(cur)
    return pieces


# ----------------------------------------------------------------------------------------------------------------
# wetext (optional)
# ----------------------------------------------------------------------------------------------------------------

_notice_printed = False


@lru_cache(maxsize=1)
def _wetext_normalizer() -> Any | None:
    try:
        from wetext import Normalizer
    except ImportError:
        return None
    return Normalizer(remove_erhua=False)  # upstream's two instances (zh, en) are this one: lang "auto" both


def wetext_normalizer(use_wetext: bool | None = None) -> Any | None:
    """The wetext TN normalizer, or None: ``use_wetext`` False, or None and wetext is not installed (a notice on
    stderr, once). ``use_wetext=True`` without wetext is an InputError."""
    global _notice_printed
    if use_wetext is False:
        return None
    tn = _wetext_normalizer()
    if tn is None and use_wetext:
        raise InputError("wetext is not installed", key="wetext", expected="pip install -e '.[text]'")
    if tn is None and not _notice_printed:
        print(WETEXT_NOTICE, file=sys.stderr)
        _notice_printed = True
    return tn


def apply_wetext(tn: Any, text: str) -> str:
    """wetext TN of ``text``, run only when it has a decimal digit (the rule of upstream's pinned wetext 0.0.4,
    design/frontend.md §2.3). wetext 0.1.8 also runs its English FSTs on digit-free text, where they only add
    trouble: its output escapes ``"`` and ``\\`` (undone here) and punctuation-only text fails an assertion. A
    failure inside wetext leaves the text as it was."""
    if not any(ch.isdecimal() for ch in text):
        return text
    try:
        out = tn.normalize(text)
    except Exception:  # noqa: BLE001 - wetext raises AssertionError / RuntimeError on inputs it cannot parse
        return text
    if out.count("\\") > text.count("\\"):  # \" and \\ from wetext's token serialisation
        chars, k = [], 0
        while k < len(out):
            if out[k] == "\\" and k + 1 < len(out):
                k += 1
            chars.append(out[k])
            k += 1
        out = "".join(chars)
    return out


# ----------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------

def normalize(text: str, tokenize: Callable[[str], list[int]], *, split: bool = True,
              use_wetext: bool | None = None) -> list[str] | str:
    """Upstream's ``text_normalize(text, split)``: the pieces to synthesize (``split=True``) or the normalized text
    (``split=False``). ``tokenize`` is the Qwen2 tokenizer's ``encode`` (English piece lengths)."""
    if ("<|" in text and "|>" in text) or text == "":
        return [text] if split else text
    text = text.strip()
    chinese = contains_chinese(text)  # decided on the user's text, before TN (wetext turns "123" into 一百二十三)
    tn = wetext_normalizer(use_wetext)
    if tn is not None:
        text = apply_wetext(tn, text)
    if chinese:
        text = text.replace("\n", "")
        text = replace_blank(text)
        text = replace_corner_mark(text)
        text = text.replace(".", "。").replace(" - ", "，")
        text = remove_bracket(text)
        text = replace_trailing_commas(text)
        if not split:
            return text
        pieces = split_paragraph(text, tokenize, "zh")
    else:
        text = spell_out_number(text)
        if not split:
            return text
        pieces = split_paragraph(text, tokenize, "en")
    return [p for p in pieces if not is_punctuation_only(p)]


# ----------------------------------------------------------------------------------------------------------------
# The C# port's character table (TextFrontend.cs; tests/csharp/test_text_frontend.py checks it is this one)
# ----------------------------------------------------------------------------------------------------------------

PUNCT_SYMBOL, DECIMAL_DIGIT, OTHER_DIGIT = 1, 2, 3


def char_table() -> list[tuple[int, int, int]]:
    """(first, last, kind) code point ranges from this Python's unicodedata: 1 = P*/S* category, 2 = Nd (a digit
    inflect reads; its value is (cp - first) % 10), 3 = other ``str.isdigit`` characters (², ①: runs that
    spell_out_number cuts, but inflect drops)."""
    rows: list[list[int]] = []
    for cp in range(0x110000):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        kind = (PUNCT_SYMBOL if cat[0] in "PS" else DECIMAL_DIGIT if cat == "Nd"
                else OTHER_DIGIT if ch.isdigit() else 0)
        if kind and rows and rows[-1][1] == cp - 1 and rows[-1][2] == kind and not (
                kind == DECIMAL_DIGIT and unicodedata.decimal(ch) == 0):  # one row per run of ten digits 0..9
            rows[-1][1] = cp
        elif kind:
            rows.append([cp, cp, kind])
    return [tuple(r) for r in rows]


def char_table_csharp(indent: str = "            ", per_line: int = 7) -> str:
    """``char_table()`` as the C# array initializer lines of TextFrontend.cs (between its GENERATED markers)."""
    rows = [f"0x{a:X}, 0x{b:X}, {k}," for a, b, k in char_table()]
    return "\n".join(indent + " ".join(rows[i:i + per_line]) for i in range(0, len(rows), per_line))
