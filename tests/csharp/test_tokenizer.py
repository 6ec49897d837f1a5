"""The C# Qwen2Tokenizer (unity_project/.../Host/Qwen2Tokenizer.cs) gives the Python tokenizer's ids, under mono.

Vectors: a synthetic Qwen2-style tokenizer trained with HF ``tokenizers`` (tests/frontend/test_text_tokenizer.py), loaded by
packager/frontend/text_tokenizer.py with CosyVoice3's 280 specials and written as the bundle's int32 tables, plus ~2,700
strings (every special alone and inside text, NFC, emoji / surrogate pairs, lone surrogates, every whitespace kind,
fuzz) with Python's ids.
tests/csharp/cs/TokenizerTests.cs encodes each string and must give the same ids. It also reports where mono's Unicode
tables class a code point (letter / number / space / other) differently from Python's unicodedata.
Needs ``mcs`` and ``mono`` (see tests/csharp/test_core.py); missing tools fail, never skip.
"""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from packager.frontend.text_tokenizer import COSYVOICE3_SPECIALS, ENDOFPROMPT, Qwen2Tokenizer, char_class
from tests.csharp.test_core import mono_passed, run_mono_tests
from tests.frontend.test_text_tokenizer import (CORPUS, SPECIALS, STRINGS, fuzz_strings, hf_tokenizer, special_strings,
                                      write_folder)

CLASS_CODE = {"L": 1, "N": 2, "W": 3, "O": 4}
# Python str holds code points, C# strings UTF-16 units: both read text as UTF-16 (an adjacent high+low pair is one
# character, e.g. the 2nd and 3rd of "\ude00\ud83d\ude00"); unpaired halves become U+FFFD.
LONE_SURROGATES = ["a\ud800b", "\udc00", "x\ud83d", "\ude00\ud83d\ude00", "<|endofprompt|>\ud800"]
# Letters / numbers of Unicode 7..14 (mono 6.8's own tables class them as "other"; the shipped table fixes that)
NEWER_UNICODE = ["\u037f\u0528 \U0001e900\U0001e922 \U00030000\U0002b740 \U00011d50 \U0001fbf0 \u08a1x"]


def python_classes() -> bytes:
    return bytes(4 if 0xD800 <= cp <= 0xDFFF else CLASS_CODE[char_class(chr(cp))] for cp in range(0x110000))


def write_tokenizer_vectors(out: Path) -> tuple[dict, Qwen2Tokenizer]:
    out.mkdir(parents=True)
    folder = write_folder(hf_tokenizer(900, SPECIALS[:2]), out / "hf", "qwen2")  # endofprompt added like upstream
    tok = Qwen2Tokenizer.from_folder(folder, COSYVOICE3_SPECIALS)
    for name, arr in tok.to_tables().items():
        np.save(out / f"{name}.npy", arr)
    strings = (STRINGS + CORPUS + LONE_SURROGATES + NEWER_UNICODE + special_strings() + fuzz_strings(2000, seed=2)
               + ["long " * 300 + "中文" * 200])
    cases = [{"name": f"s{k:04d}", "text": s, "ids": tok.encode(s)} for k, s in enumerate(strings)]
    index = {"cases": cases}
    (out / "index.json").write_text(json.dumps(index), encoding="ascii")  # \\uXXXX escapes keep lone surrogates
    (out / "classes.bin").write_bytes(python_classes())
    return index, tok


@pytest.fixture(scope="module")
def tok_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("csharp_tokenizer")
    index, tok = write_tokenizer_vectors(work / "vectors")
    run, results = run_mono_tests(work, work / "vectors", "COSY_TOKENIZER", "TokenizerTests")
    return {"index": index, "tok": tok, "proc": run, "results": results}


def test_mono_tokenizer_tests_pass(tok_run: dict) -> None:
    passed = mono_passed(tok_run["proc"])
    assert passed >= len(tok_run["index"]["cases"]) + 3, passed


def test_csharp_ids_equal_python_ids(tok_run: dict) -> None:
    results = tok_run["results"]
    for case in tok_run["index"]["cases"]:
        assert results[("case", case["name"])]["ids"] == case["ids"], repr(case["text"])


def test_vectors_cover_the_special_token_cases(tok_run: dict) -> None:
    tok, cases = tok_run["tok"], tok_run["index"]["cases"]
    eop = tok.token_id(ENDOFPROMPT)
    ids = [tok.token_id(s) for s in COSYVOICE3_SPECIALS]  # all 280; those the file lacks after its tokens, in order
    assert ids[0] < eop and ids[2:] == list(range(eop, eop + 278)) and max(t.id for t in tok.added) == eop + 277
    for s in COSYVOICE3_SPECIALS:  # each alone and inside text
        assert any(c["text"] == s for c in cases) and any(c["text"] == f"a{s}b" for c in cases)
    with_eop = [c for c in cases if ENDOFPROMPT in c["text"]]
    assert len(with_eop) > 50 and all(c["ids"].count(eop) == c["text"].count(ENDOFPROMPT) for c in with_eop)
    assert any(any(0xD800 <= ord(ch) <= 0xDFFF for ch in c["text"]) for c in cases)
    assert any(any(ord(ch) > 0xFFFF for ch in c["text"]) for c in cases)


def test_shipped_class_table_matters(tok_run: dict) -> None:
    """Mono's own Unicode tables are older than Python's (14.0) and class many code points differently; the test
    strings use some of them, and the C# ids still equal Python's because the bundle ships the class table."""
    differ = set(tok_run["results"][("classes", "all")]["differ"])
    used = {ord(ch) for c in tok_run["index"]["cases"] for ch in c["text"]}
    print(f"mono vs Python unicodedata {unicodedata.unidata_version}: {len(differ)} code points classed differently")
    assert 0x037F in differ and len(used & differ) >= 5, len(used & differ)
