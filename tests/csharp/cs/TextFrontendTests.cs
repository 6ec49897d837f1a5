// Mono tests of TextFrontend.cs against packager/frontend/text.py (normalize(..., use_wetext=False)).
// tests/csharp/test_text_frontend.py writes the vectors ($COSY_FRONTEND_VECTORS: the tiny preset tokenizer's int32
// tables as .npy, index.json with every text and Python's pieces / piece ids / unsplit text, and digit runs with
// inflect's words); each C# result is appended to $COSY_FRONTEND_RESULTS (JSON lines), which the Python test compares
// again. Without $COSY_FRONTEND_VECTORS only the self-contained unit tests run.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using CosyVoice3.Core;
using CosyVoice3.Host;
using NUnit.Framework;

namespace CosyVoice3.Tests
{
    public class TextFrontendTests
    {
        static readonly VectorSet Vectors = new VectorSet("COSY_FRONTEND");
        static string Dir { get { return Vectors.Dir; } }
        static JsonValue Index { get { return Vectors.Index; } }

        static Qwen2Tokenizer vectorTokenizer;
        static Qwen2Tokenizer VectorTokenizer
        {
            get { return vectorTokenizer ?? (vectorTokenizer = Vectors.Tokenizer()); }
        }

        static void Write(string line)
        {
            Vectors.WriteLine(line);
        }

        static string Strs(IList<string> items)
        {
            var parts = new string[items.Count];
            for (int i = 0; i < parts.Length; i++) parts[i] = VectorTests.Str(items[i]);
            return "[" + string.Join(", ", parts) + "]";
        }

        static string Ids(int[] ids)
        {
            var parts = new string[ids.Length];
            for (int i = 0; i < ids.Length; i++) parts[i] = ids[i].ToString(CultureInfo.InvariantCulture);
            return "[" + string.Join(", ", parts) + "]";
        }

        static int[] Words(string s)
        {
            return new int[s.Split(new[] { ' ', '\t', '\n' }, StringSplitOptions.RemoveEmptyEntries).Length];
        }

        // ---- self-contained -----------------------------------------------------------------------------------

        [Test]
        public void NumbersLikeInflect()
        {
            Assert.AreEqual("zero", TextFrontend.NumberToWords("000"));
            Assert.AreEqual("one", TextFrontend.NumberToWords("0001"));
            Assert.AreEqual("twenty-three", TextFrontend.NumberToWords("23"));
            Assert.AreEqual("one hundred and one", TextFrontend.NumberToWords("101"));
            Assert.AreEqual("one thousand and one", TextFrontend.NumberToWords("1001"));
            Assert.AreEqual("one thousand, one hundred", TextFrontend.NumberToWords("1100"));
            Assert.AreEqual("two thousand and twenty-four", TextFrontend.NumberToWords("2024"));
            Assert.AreEqual("three hundred and forty-five", TextFrontend.NumberToWords("\u0663\u0664\u0665"));
            Assert.AreEqual("zero", TextFrontend.NumberToWords("\u00b2"));
            Assert.AreEqual("thousand and twelve", TextFrontend.NumberToWords("\u0660\u0660\u0661\u0662"));
            Assert.AreEqual("aonebtwenty-twoc xzero", TextFrontend.SpellOutNumber("a1b22c x\u00b2"));
            Assert.AreEqual("one hundred and twenty-three", TextFrontend.SpellOutNumber("\U0001D7D9\U0001D7DA\U0001D7DB"));
            bool threw = false;
            try { TextFrontend.NumberToWords(new string('1', 37)); }
            catch (NumberTooLongException) { threw = true; }
            Assert.IsTrue(threw, "37 digits");
        }

        [Test]
        public void ChineseRules()
        {
            Assert.AreEqual("你好world hi你", TextFrontend.ReplaceBlank("你好 world hi 你"));
            Assert.AreEqual("ab", TextFrontend.ReplaceBlank("a  b"));
            Assert.AreEqual("5m平方和3m立方", TextFrontend.ReplaceCornerMark("5m²和3m³"));
            Assert.AreEqual("注重要code 结束", TextFrontend.RemoveBracket("（注）【重要】`code`——结束"));
            Assert.AreEqual("你好。", TextFrontend.ReplaceTrailingCommas("你好，，、"));
            Assert.AreEqual("x", TextFrontend.Strip("\u001c\u3000 x\u2029\t"));
        }

        [Test]
        public void SplitsByTokensAndCharacters()
        {
            var sentences = new List<string>();
            for (int k = 0; k < 11; k++)
            {
                var w = new List<string>();
                for (int j = 0; j < 15; j++) w.Add("w" + k + j);
                sentences.Add(string.Join(" ", w.ToArray()) + ".");
            }
            var pieces = TextFrontend.SplitParagraph(string.Join(" ", sentences.ToArray()), Words, false);
            Assert.AreEqual(2, pieces.Count);
            Assert.AreEqual(string.Join(" ", sentences.GetRange(0, 5).ToArray()), pieces[0]);
            Assert.AreEqual(90, Words(pieces[1]).Length);
            var zh = new StringBuilder();
            for (int k = 0; k < 7; k++) zh.Append(new string(k % 2 == 0 ? '地' : '天', 24)).Append('。');
            var z = TextFrontend.SplitParagraph(zh.ToString(), null, true);
            Assert.AreEqual(3, z.Count);
            Assert.AreEqual(75, z[0].Length);
            Assert.AreEqual("[\"He said \\\"hi.\\\"\", \" ok.\"]",
                            Strs(TextFrontend.SplitParagraph("He said \"hi.\" ok", Words, false, 0, 0, 0)));
            Assert.AreEqual(4, TextFrontend.CodePointCount("a\U0001F600b\uD800"));
        }

        [Test]
        public void PunctuationOnly()
        {
            Assert.IsTrue(TextFrontend.IsPunctuationOnly("") && TextFrontend.IsPunctuationOnly("…！$")
                          && TextFrontend.IsPunctuationOnly("!\n"));
            Assert.IsFalse(TextFrontend.IsPunctuationOnly(" .") || TextFrontend.IsPunctuationOnly("a.")
                           || TextFrontend.IsPunctuationOnly("!\n\n") || TextFrontend.IsPunctuationOnly("\uD800"));
        }

        // ---- vectors written by Python --------------------------------------------------------------------------

        public static IEnumerable<TestCaseData> Texts()
        {
            if (string.IsNullOrEmpty(Dir)) yield break;
            foreach (var v in Index.Get("texts").Items)
                yield return new TestCaseData(v).SetName("TextFrontend.text." + v.Get("name").StringValue);
        }

        [Test, TestCaseSource("Texts")]
        public void SamePiecesAsPython(JsonValue v)
        {
            string name = v.Get("name").StringValue, text = v.Get("text").StringValue;
            var tok = VectorTokenizer;
            string got;
            try
            {
                string[] pieces = TextFrontend.Normalize(text, tok);
                var ids = new string[pieces.Length];
                for (int i = 0; i < pieces.Length; i++) ids[i] = Ids(tok.Encode(pieces[i]));
                got = "{\"pieces\": " + Strs(pieces) + ", \"ids\": [" + string.Join(", ", ids) + "], \"unsplit\": "
                      + VectorTests.Str(TextFrontend.NormalizeText(text)) + ", \"speakable\": "
                      + (TextFrontend.IsSpeakable(text, tok) ? "true" : "false") + "}";
            }
            catch (NumberTooLongException)
            {
                got = "{\"error\": true}";
            }
            Write("{\"kind\": \"text\", \"name\": " + VectorTests.Str(name) + ", \"result\": " + got + "}");
            Assert.AreEqual(v.Get("want").StringValue, got, name);
        }

        /// <summary>All digit runs in one test (a few thousand): each result is written, failures are listed.</summary>
        [Test]
        public void SameNumbersAsPython()
        {
            if (string.IsNullOrEmpty(Dir)) return;
            var failures = new List<string>();
            foreach (var v in Index.Get("numbers").Items)
            {
                string digits = v.Get("digits").StringValue, got;
                try { got = TextFrontend.NumberToWords(digits); }
                catch (NumberTooLongException) { got = null; }
                Write("{\"kind\": \"number\", \"name\": " + VectorTests.Str(v.Get("name").StringValue) + ", \"words\": "
                      + VectorTests.Str(got) + "}");
                JsonValue want = v.Get("words");
                string w = want.Kind == JsonKind.Null ? null : want.StringValue;
                if (w != got && failures.Count < 10) failures.Add(digits + " -> " + (got ?? "<error>") + " != " + (w ?? "<error>"));
            }
            Assert.AreEqual("", string.Join("\n", failures.ToArray()));
        }
    }
}
