"""packager/frontend/text.py: upstream's text_normalize rules (design/frontend.md §2.2) on concrete inputs.

Most tests run with ``use_wetext=False`` (the pipeline without wetext, which the C# port mirrors); the wetext tests
run only where wetext is importable. Piece lengths: the tiny preset's tokenizer, or a one-token-per-word stand-in
where the boundaries are worked out by hand.
"""
from __future__ import annotations

import sys

import pytest

from packager.frontend import text as tf
from packager.contract.errors import InputError
from packager.components.llm.tiny_tokenizer import tiny_tokenizer

TOK = tiny_tokenizer()


def words(text: str) -> list[str]:  # "tokenizer" with one token per whitespace-separated word
    return text.split()


def norm(text: str, **kw):
    return tf.normalize(text, TOK.encode, use_wetext=False, **kw)


# ---- numbers --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("digits, spoken", [
    ("0", "zero"), ("1", "one"), ("7", "seven"), ("10", "ten"), ("13", "thirteen"), ("20", "twenty"),
    ("21", "twenty-one"), ("99", "ninety-nine"), ("100", "one hundred"), ("101", "one hundred and one"),
    ("110", "one hundred and ten"), ("999", "nine hundred and ninety-nine"), ("1000", "one thousand"),
    ("1001", "one thousand and one"), ("1100", "one thousand, one hundred"),
    ("2024", "two thousand and twenty-four"), ("100000", "one hundred thousand"), ("1000001", "one million and one"),
    ("123456789", "one hundred and twenty-three million, four hundred and fifty-six thousand, seven hundred and "
                  "eighty-nine"),
    ("007", "seven"), ("000", "zero"), ("0001", "one"),  # leading ASCII zeros
    ("٣٤٥", "three hundred and forty-five"), ("１２", "twelve"),  # other decimal digits (Nd)
    ("²", "zero"), ("12²3", "one hundred and twenty-three"),  # isdigit but not decimal: inflect drops them
    ("٠٠١٢", "thousand and twelve"),  # inflect strips only ASCII zeros: its own result, kept
    ("1" + "0" * 35, "one hundred decillion"),
])
def test_number_to_words_is_inflects(digits, spoken):
    assert tf.number_to_words(digits) == spoken


def test_spell_out_number_replaces_each_digit_run():
    assert norm("I have 23 apples") == ["I have twenty-three apples."]
    assert tf.spell_out_number("a1b22c 3.5, 1,000 x²") == "aonebtwenty-twoc three.five, one,zero xzero"
    assert tf.spell_out_number("no digits") == "no digits" and tf.spell_out_number("") == ""
    assert tf.spell_out_number("42") == "forty-two"


def test_a_number_inflect_cannot_name_is_an_input_error():
    assert tf.number_to_words("9" * 36).startswith("nine hundred and ninety-nine decillion")
    with pytest.raises(InputError, match=r"--text: a number is too long to spell out \(expected numbers of at most 36"):
        norm("call " + "1" * 37)
    assert tf.number_to_words("0" * 40 + "5") == "five"  # leading zeros do not count


# ---- Chinese rules ---------------------------------------------------------------------------------------------

def test_replace_blank_keeps_spaces_only_between_ascii():
    assert tf.replace_blank("你好 world hi 你") == "你好world hi你"
    assert tf.replace_blank("a  b") == "ab"  # a space next to a space goes too
    assert tf.replace_blank("x \t y") == "x \t y"  # a tab is ASCII and not a space: both spaces stay
    assert tf.replace_blank("中 a") == "中a" and tf.replace_blank(" a ") == "a"


def test_chinese_character_rules():
    assert tf.replace_corner_mark("5m²和3m³") == "5m平方和3m立方"
    assert tf.remove_bracket("（注）【重要】`code`——结束") == "注重要code 结束"
    assert tf.replace_trailing_commas("你好，，、") == "你好。" and tf.replace_trailing_commas("你好，世界") == "你好，世界"
    assert tf.contains_chinese("abc一") and not tf.contains_chinese("カタカナ한국어abc")


@pytest.mark.parametrize("text, pieces", [
    ("今天天气很好.我们去公园", ["今天天气很好。我们去公园。"]),  # . -> 。, appended 。
    ("我喜欢 A - B 方案", ["我喜欢A，B方案。"]),  # blanks first, then " - " -> ，
    ("我们去公园 - 散步", ["我们去公园-散步。"]),  # next to Chinese the blanks are gone before " - " is seen
    ("第一行\n第二行", ["第一行第二行。"]),
    ("面积是5m²，，", ["面积是5m平方。"]),  # no number spelling on the Chinese path (wetext does that)
    ("（注意）【重要】他说——好的", ["注意重要他说 好的。"]),
    ("  你好 ,  ", ["你好。"]),  # strip, blank, then the trailing comma becomes 。
    ("[breath]因为他们那一辈人[breath]在乡里面住的要习惯一点", ["[breath]因为他们那一辈人[breath]在乡里面住的要习惯一点。"]),
])
def test_chinese_path(text, pieces):
    assert norm(text) == pieces


def test_unsplit_returns_the_normalized_text():
    assert norm("今天天气很好.我们去公园，", split=False) == "今天天气很好。我们去公园。"
    assert norm("  I have 2 cats  ", split=False) == "I have two cats"  # no appended "."
    assert norm("", split=False) == "" and norm("   ", split=False) == ""


# ---- split_paragraph -------------------------------------------------------------------------------------------

def test_split_english_by_token_count():
    """15-word sentences, one token per word: 15, 30 ... 75 tokens; a 6th would make 90 > 80 while 75 > 60, so
    every piece holds 5 sentences; an 11th sentence (15 < merge_len 20 tokens) joins the last piece."""
    sentence = [" ".join(f"w{k}{j}" for j in range(15)) + "." for k in range(11)]
    text = " ".join(sentence)
    pieces = tf.split_paragraph(text, words, "en")
    assert pieces == [" ".join(sentence[:5]), " " + " ".join(sentence[5:])]
    assert [len(words(p)) for p in pieces] == [75, 90]
    ten = tf.split_paragraph(" ".join(sentence[:10]), words, "en")
    assert ten == [" ".join(sentence[:5]), " " + " ".join(sentence[5:10])]
    seven = tf.split_paragraph(" ".join(sentence[:7]), words, "en")  # 2 left over = 30 tokens: a piece of its own
    assert seven == [" ".join(sentence[:5]), " " + " ".join(sentence[5:7])]


def test_split_english_sentence_ends_and_quotes():
    assert tf.split_paragraph("No end here", words, "en") == ["No end here."]
    s = tf.split_paragraph('He said "hi." Then: left! Why? Fine; ok', words, "en", token_max_n=1, token_min_n=0,
                           merge_len=0)
    assert s == ['He said "hi."', " Then:", " left!", " Why?", " Fine;", " ok."]
    # a text ending in a quote gets "." appended: after the quote-closed sentence it is a sentence of its own
    assert tf.split_paragraph('"Quoted."', words, "en", 0, 0, 0) == ['"Quoted."', "."]
    assert tf.split_paragraph('"Quoted."', words, "en") == ['"Quoted.".']
    assert tf.split_paragraph("a, b, c", words, "en", 1, 0, 0, comma_split=True) == ["a,", " b,", " c."]
    assert tf.split_paragraph("", words, "en") == []


def test_split_a_long_english_paragraph_with_the_tiny_tokenizer():
    paragraph = ("The children played in the park until it was dark. Then they ran home for dinner with their "
                 "parents, who had cooked a big meal. After dinner, everybody sat by the fire and listened to the old "
                 "man telling stories about the sea. He spoke slowly and clearly, and nobody wanted to go to bed. "
                 "When the clock struck ten, the mother said it was time to sleep. The next morning the sun was "
                 "shining again.")
    sentences = [s + "." for s in paragraph.split(".")[:-1]]
    assert [len(TOK.encode(s)) for s in sentences] == [19, 33, 35, 26, 27, 17]
    pieces = norm(paragraph)
    # 19 + 33 = 52 is not > 60, so the 35-token sentence still joins (87 > 80 is allowed); then 87 > 60 and
    # 87 + 26 > 80: a new piece; 26 + 27 + 17 = 70 is not < merge_len 20, so it stays a piece of its own
    assert pieces == ["".join(sentences[:3]), "".join(sentences[3:])]
    assert [len(TOK.encode(p)) for p in pieces] == [87, 70] and "".join(pieces) == paragraph


def test_split_chinese_by_characters():
    """25-character sentences: 25, 50, 75; a 4th makes 100 > 80 while 75 > 60: pieces of 3 sentences."""
    s = [("天" * 24 if k % 2 else "地" * 24) + "。" for k in range(7)]
    assert tf.split_paragraph("".join(s), words, "zh") == ["".join(s[:3]), "".join(s[3:6]), s[6]]
    short = s[:6] + ["好。"]  # 2 characters < merge_len: joins the last piece
    assert tf.split_paragraph("".join(short), words, "zh") == ["".join(s[:3]), "".join(s[3:6]) + "好。"]
    ends = "一。二？三！四；五：六、七.八?九!十;"
    assert tf.split_paragraph(ends, words, "zh", 1, 0, 0) == ["一。", "二？", "三！", "四；", "五：", "六、", "七.", "八?",
                                                             "九!", "十;"]
    assert tf.split_paragraph("他说“好。”然后走了", words, "zh", 1, 0, 0) == ["他说“好。”", "然后走了。"]


def test_split_a_long_chinese_paragraph():
    paragraph = ("收到好友从远方寄来的生日礼物，那份意外的惊喜与深深的祝福让我心中充满了甜蜜的快乐，笑容如花儿般绽放。"
                 "今天天气很好，我们一起去公园散步，看到了很多美丽的花朵和绿色的树木。"
                 "孩子们在草地上奔跑，老人们坐在长椅上聊天，整个公园充满了欢声笑语。"
                 "傍晚的时候，我们回到家里，妈妈已经做好了一桌丰盛的晚饭。")
    pieces = norm(paragraph)
    assert "".join(pieces) == paragraph
    assert pieces == [paragraph[:paragraph.index("孩子们")], paragraph[paragraph.index("孩子们"):]]
    # sentences of 50, 34, 33, 28 characters: 50 is not > 60, so 84; then a new piece of 33 + 28 = 61
    assert [len(p) for p in pieces] == [84, 61]


# ---- specials, punctuation, speakable --------------------------------------------------------------------------

def test_text_with_prompt_markers_is_not_normalized():
    t = "You are a helpful assistant.<|endofprompt|>I have 23 apples.  很好. "
    assert norm(t) == [t] and norm(t, split=False) == t
    assert norm("a <| b") == ["a <| b."] and norm("a |> 2") == ["a |> two."]  # only one of the two: normalized
    assert norm("") == [""]  # upstream returns [text] for the empty string


def test_other_specials_survive_normalization():
    assert norm("[breath]I have 2 apples[laughter]") == ["[breath]I have two apples[laughter]."]
    assert norm("<strong>Really</strong>? Yes [sigh]") == ["<strong>Really</strong>? Yes [sigh]."]


def test_punctuation_only_pieces_are_dropped():
    assert norm("!!!") == [] and norm("...?!") == [] and norm("   ") == [] and norm("。。。") == []
    assert norm("$%&") == []  # symbols (S*) too
    assert norm("Hi!!! What?") == ["Hi!!! What?"]
    long = "天" * 24 + "。"
    pieces = norm(long * 3 + "！" * 30)  # 3 x 25 + 5 "！" = 80; the 25 "！" left over are their own piece: dropped
    assert pieces == [long * 3 + "！" * 5]
    assert tf.is_punctuation_only("") and tf.is_punctuation_only("…！") and tf.is_punctuation_only("!\n")
    assert not tf.is_punctuation_only(" .") and not tf.is_punctuation_only("a.") and not tf.is_punctuation_only("!\n\n")


@pytest.mark.parametrize("text", ["", "   ", "!!!", "。？", "😀👍", "\n\t"])
def test_unspeakable_text_is_an_input_error(text):
    assert not tf.is_speakable(text)
    with pytest.raises(InputError) as err:
        tf.require_speakable(text)
    assert err.value.key == "--text" and err.value.expected == "text with at least one letter or digit"


@pytest.mark.parametrize("text", ["a", "5", "你", "５.", "[breath]", "Hi!"])
def test_speakable_text(text):
    assert tf.is_speakable(text) and tf.require_speakable(text) == text


# ---- wetext ----------------------------------------------------------------------------------------------------

@pytest.fixture
def no_wetext(monkeypatch):
    monkeypatch.setitem(sys.modules, "wetext", None)  # `import wetext` raises ImportError
    monkeypatch.setattr(tf, "_notice_printed", False)
    tf._wetext_normalizer.cache_clear()
    yield
    tf._wetext_normalizer.cache_clear()


def test_without_wetext_a_notice_is_printed_once(no_wetext, capsys):
    assert tf.normalize("I have 23 apples", TOK.encode) == ["I have twenty-three apples."]
    assert tf.normalize("I have 3 pears", TOK.encode) == ["I have three pears."]
    err = capsys.readouterr().err
    assert err.count("wetext is not installed") == 1 and err.strip() == tf.WETEXT_NOTICE
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(InputError, match="wetext is not installed"):
        tf.normalize("1", TOK.encode, use_wetext=True)


def test_use_wetext_false_prints_nothing(no_wetext, capsys):
    assert norm("1") == ["one."]
    assert capsys.readouterr().err == ""


def test_wetext_when_installed():
    """PyPI wetext (>= 0.1.8 bundles its FSTs: no download) normalizes numbers, dates, money before our rules."""
    pytest.importorskip("wetext")
    tn = lambda t, **kw: tf.normalize(t, TOK.encode, use_wetext=True, **kw)  # noqa: E731
    assert tn("I have 23 apples") == ["I have twenty three apples."]
    assert tn("It costs $5.99.") == ["It costs five point nine nine dollars."]
    assert tn("今天是2024年3月1日，温度25.5℃") == ["今天是二零二四年三月一日，温度二十五点五摄氏度。"]
    assert tn('He said "I have 2."') == ['He said "I have two.".']  # wetext 0.1.8 escapes quotes: undone
    assert tn("...!") == [] and tn('No digits "here".') == ['No digits "here".']  # no digit: wetext is not run
    assert tn("123") == ["一百二十三."]  # upstream's quirk: wetext's auto language calls pure digits Chinese
