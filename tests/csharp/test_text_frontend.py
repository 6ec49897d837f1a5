"""The C# TextFrontend (unity_project/.../Host/TextFrontend.cs) gives packager/frontend/text.py's pieces, under mono.

Vectors: the tiny preset's tokenizer (packager/components/llm/tiny_tokenizer.py) as the bundle's int32 tables; ~250 texts (English
with numbers, Chinese, mixed, specials, punctuation only, long paragraphs, fuzz) with Python's
``normalize(text, tok.encode, use_wetext=False)`` pieces, the ids of each piece, the unsplit text and
``is_speakable``; and ~3,500 digit runs (0..2000, random up to 10^15, leading zeros, 16..40 digits, other scripts'
digits, ², ①) with inflect's ``number_to_words``. tests/csharp/cs/TextFrontendTests.cs must give the same, and its
generated character table must be the packager's (``char_table``).
Needs ``mcs`` and ``mono`` (see tests/csharp/test_core.py); missing tools fail, never skip.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from packager.frontend import text as tf
from packager.contract.errors import InputError
from packager.frontend.text_tokenizer import COSYVOICE3_SPECIALS
from packager.components.llm.tiny_tokenizer import tiny_tokenizer
from tests.csharp.test_core import REPO, mono_passed, run_mono_tests

FRONTEND_CS = REPO / "unity_project" / "Assets" / "CosyVoice3" / "Runtime" / "Host" / "TextFrontend.cs"
DIGIT_SCRIPTS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "๐๑๒๓๔๕๖๗๘๙",
                 "".join(chr(0x1D7CE + k) for k in range(10)), "".join(chr(0x1D7F6 + k) for k in range(10))]
OTHER_DIGITS = "²³¹⁰⁴⁹₀₉①⑨⓪❶➊፩𐩀"

ENGLISH = [
    "I have 23 apples.", "I have 23 apples", "Call 555-1234 now!", "It's 3.14, not 22/7.", "Room 101, floor 7; 2024-03-01",
    "He was born in 1987 and moved here in 2003.", "The answer is 42", "0", "7 8 9", "1,000,000 people", "$5.99 or 12%",
    "Version 2.0.1 is out", "x² y³ ①② ⑳", "Price: １２３ yen", "٣٤٥ and १२३ and 𝟙𝟚𝟛", "007 is 00 and 0001",
    "A " + "9" * 36 + " big one", "A " + "1" * 37 + " too big", "zeros " + "0" * 40 + "5", "mixed ٠٠١٢ zeros",
    "You are a helpful assistant. Please speak slowly and clearly, so that everyone can understand.",
    "Hello world", "Hello world.", "Wait!! What?? Really...", 'He said "hi." Then he left.', "She said “fine.” OK",
    "Line one.\nLine two\nLine three!", "Tabs\tand  double  spaces  ", "  leading and trailing  ", "\u001cx\u001f",
    "Semi; colon: dash - end", "Ends with a comma,", "Question?", "a.b.c.d", "e.g. i.e. etc.",
    "The quick brown fox jumps over the lazy dog " * 6,
    ("The children played in the park until it was dark. Then they ran home for dinner with their parents, who had "
     "cooked a big meal. After dinner, everybody sat by the fire and listened to the old man telling stories about "
     "the sea. He spoke slowly and clearly, and nobody wanted to go to bed. When the clock struck ten, the mother "
     "said it was time to sleep. The next morning the sun was shining again."),
    " ".join(f"Sentence number {k} has {k * 7} words in it." for k in range(1, 30)),
]
CHINESE = [
    "今天天气很好.我们去公园", "我喜欢 A - B 方案", "我们去公园 - 散步", "第一行\n第二行", "面积是5m²，，", "（注意）【重要】他说——好的",
    "  你好 ,  ", "希望你以后能够做的比我还好呦。", "收到好友从远方寄来的生日礼物，那份意外的惊喜与深深的祝福让我心中充满了甜蜜的快乐，笑容如花儿般绽放。",
    "他说“好。”然后走了", "一。二？三！四；五：六、七.八?九!十;", "价格是3.5元", "Hello 世界 123", "中文 English 混合 text 测试.",
    "中`代码`文", "标题——副标题——结尾", "这是一个很长的句子" * 12, "天" * 24 + "。" + "地" * 24 + "。" + "！" * 30,
    ("收到好友从远方寄来的生日礼物，那份意外的惊喜与深深的祝福让我心中充满了甜蜜的快乐，笑容如花儿般绽放。"
     "今天天气很好，我们一起去公园散步，看到了很多美丽的花朵和绿色的树木。孩子们在草地上奔跑，老人们坐在长椅上聊天，整个公园充满了欢声笑语。"
     "傍晚的时候，我们回到家里，妈妈已经做好了一桌丰盛的晚饭。"),
    "𠀀𠀁中文𠀂", "中文😀表情👍🏽。", "日本語の文章です。漢字とかな", "\u3000中文\u3000",
]
SPECIALS_TEXTS = [
    "You are a helpful assistant.<|endofprompt|>I have 23 apples.", "<|endofprompt|>", "a <| b 2", "a |> 2",
    "[breath]I have 2 apples[laughter]", "<strong>Really</strong>? Yes [sigh]", "[j][ǐ]", "[breath]因为他们那一辈人[breath]在乡里面住的要习惯一点",
    "You are a helpful assistant. 请用广东话表达。<|endofprompt|>", "<|im_start|>user 3<|im_end|>",
]
PUNCTUATION = ["", " ", "   ", "\n", "!!!", "...?!", "。。。", "$%&", "😀", "…", "-- --", "!\n", "“”", "《》"]


def fuzz_texts(n: int, seed: int = 7) -> list[str]:
    alphabet = (list("abcXYZ ,.!?;:\"”-—（）【】`²³\n中文天地好") + ["1", "23", "405", "0070", "٣", "１２", "𝟙"]
                + ["  ", " - ", "——", "[breath]", "<strong>", "<|", "|>", "😀", "𠀀", "\u3000", "、", "。", "，"])
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(n)]


def long_texts(n: int, seed: int = 9) -> list[str]:
    """Paragraphs of random sentences (English words with numbers, or Chinese characters): several pieces each."""
    rng = random.Random(seed)
    en = "the a small bird sings in garden every morning we walked along river and talked about weather".split()
    out = []
    for k in range(n):
        sentences = []
        for _ in range(rng.randint(6, 20)):
            if k % 2:
                body = "".join(rng.choice("天地人你我他好的是在有中文") for _ in range(rng.randint(3, 40)))
                sentences.append(body + rng.choice(["。", "？", "！", "；", "，", "、", "：", ".", "”"]))
            else:
                ws = [rng.choice(en + [str(rng.randrange(10 ** rng.randint(1, 6)))]) for _ in range(rng.randint(2, 25))]
                sentences.append(" ".join(ws) + rng.choice([".", "?", "!", ";", ":", ",", '."', "...", " -"]) + " ")
        out.append("".join(sentences))
    return out


def all_texts() -> list[str]:
    specials = [f"Say {s} 12 times." for s in COSYVOICE3_SPECIALS[3:280:9]]
    return ENGLISH + CHINESE + SPECIALS_TEXTS + PUNCTUATION + specials + fuzz_texts(150) + long_texts(30)


def number_runs() -> list[str]:
    rng = random.Random(11)
    runs = [str(k) for k in range(2001)]
    runs += [str(rng.randrange(10 ** rng.randint(1, 15))) for _ in range(600)]
    runs += ["0" * rng.randint(1, 5) + str(rng.randrange(10 ** rng.randint(1, 9))) for _ in range(200)]
    runs += ["".join(rng.choice("0123456789") for _ in range(rng.randint(16, 40))) for _ in range(300)]
    runs += [str(10 ** k) for k in range(40)] + [str(10 ** k + 1) for k in range(40)] + ["9" * k for k in range(1, 40)]
    for script in DIGIT_SCRIPTS:  # the same numbers in other decimal digits, and mixed scripts
        for _ in range(40):
            runs.append("".join(script[int(d)] for d in str(rng.randrange(10 ** rng.randint(1, 12)))))
    runs += ["".join(rng.choice(rng.choice(DIGIT_SCRIPTS) + OTHER_DIGITS) for _ in range(rng.randint(1, 12)))
             for _ in range(200)]
    runs += list(OTHER_DIGITS) + ["0" * 40 + "5", "٠" * 40 + "5", "٠٠١٢", "1" + "0" * 36, "1" * 36 + "0"]
    return runs


def cs_str(s: str | None) -> str:
    """The JSON string VectorTests.Str writes for a C# string (UTF-16 units; non-printable ASCII as \\uXXXX)."""
    if s is None:
        return "null"
    raw = s.encode("utf-16-le", "surrogatepass")
    out = []
    for k in range(0, len(raw), 2):
        c = raw[k] | raw[k + 1] << 8
        out.append("\\" + chr(c) if chr(c) in '"\\' else f"\\u{c:04x}" if c < 0x20 or c > 0x7E else chr(c))
    return '"' + "".join(out) + '"'


def python_result(tok, text: str) -> str:
    """Python's result for one text in the exact JSON form TextFrontendTests.cs writes."""
    try:
        pieces = tf.normalize(text, tok.encode, use_wetext=False)
        unsplit = tf.normalize(text, tok.encode, split=False, use_wetext=False)
    except InputError:
        return '{"error": true}'
    ids = ", ".join("[" + ", ".join(map(str, tok.encode(p))) + "]" for p in pieces)
    return ('{"pieces": [' + ", ".join(map(cs_str, pieces)) + '], "ids": [' + ids + '], "unsplit": ' + cs_str(unsplit)
            + ', "speakable": ' + ("true" if tf.is_speakable(text) else "false") + "}")


def python_words(digits: str) -> str | None:
    try:
        return tf.number_to_words(digits)
    except InputError:
        return None


def write_frontend_vectors(out: Path) -> dict:
    out.mkdir(parents=True)
    tok = tiny_tokenizer()
    for name, arr in tok.to_tables().items():
        np.save(out / f"{name}.npy", arr)
    texts = [{"name": f"t{k:03d}", "text": t, "want": python_result(tok, t)} for k, t in enumerate(all_texts())]
    numbers = [{"name": f"n{k:04d}", "digits": d, "words": python_words(d)} for k, d in enumerate(number_runs())]
    index = {"texts": texts, "numbers": numbers}
    (out / "index.json").write_text(json.dumps(index), encoding="ascii")
    return index


@pytest.fixture(scope="module")
def fe_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("csharp_frontend")
    index = write_frontend_vectors(work / "vectors")
    run, results = run_mono_tests(work, work / "vectors", "COSY_FRONTEND", "TextFrontendTests")
    return {"index": index, "proc": run, "results": results}


def test_mono_text_frontend_tests_pass(fe_run: dict) -> None:
    passed = mono_passed(fe_run["proc"])
    assert passed >= len(fe_run["index"]["texts"]) + 5, passed


def test_csharp_pieces_equal_python(fe_run: dict) -> None:
    tok = tiny_tokenizer()
    for case in fe_run["index"]["texts"]:
        got = fe_run["results"][("text", case["name"])]["result"]
        assert got == json.loads(case["want"]), repr(case["text"])
        if "pieces" in got:  # the ids are the tokenizer's for the pieces (both sides)
            assert got["ids"] == [tok.encode(p) for p in got["pieces"]]


def test_csharp_numbers_equal_inflect(fe_run: dict) -> None:
    numbers = fe_run["index"]["numbers"]
    for case in numbers:
        assert fe_run["results"][("number", case["name"])]["words"] == case["words"], repr(case["digits"])
    assert sum(c["words"] is None for c in numbers) >= 20  # the too-long numbers fail on both sides


def test_vectors_cover_the_cases(fe_run: dict) -> None:
    texts = [json.loads(c["want"]) for c in fe_run["index"]["texts"]]
    assert len(texts) >= 200
    assert sum("error" in t for t in texts) >= 1
    assert sum(len(t.get("pieces", [])) >= 3 for t in texts) >= 15  # splitting happens
    assert sum(t.get("pieces") == [] for t in texts) >= 8  # punctuation only: every piece dropped
    assert sum(tf.contains_chinese(c["text"]) for c in fe_run["index"]["texts"]) >= 30


def test_char_table_is_the_packagers() -> None:
    """TextFrontend.cs's generated CharTable block is char_table() of this Python's unicodedata."""
    src = FRONTEND_CS.read_text(encoding="utf-8")
    block = src.split("static readonly int[] CharTable =\n        {\n", 1)[1].split("\n        };\n        // END GENERATED")[0]
    assert block == tf.char_table_csharp(), "regenerate TextFrontend.cs's CharTable (see the comment above it)"
