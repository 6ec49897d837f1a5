// Mono tests of Qwen2Tokenizer.cs against packager/frontend/text_tokenizer.py. tests/csharp/test_tokenizer.py writes the
// vectors ($COSY_TOKENIZER_VECTORS: the int32 tables as .npy, index.json with every string and Python's ids, and
// Python's letter/number/space/other class of every code point); each case must give Python's ids and appends its
// result to $COSY_TOKENIZER_RESULTS (JSON lines), which the Python test compares again.
// Without $COSY_TOKENIZER_VECTORS only the self-contained unit tests run.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;
using NUnit.Framework;

namespace CosyVoice3.Tests
{
    public class TokenizerTests
    {
        static readonly VectorSet Vectors = new VectorSet("COSY_TOKENIZER");
        static string Dir { get { return Vectors.Dir; } }
        static JsonValue Index { get { return Vectors.Index; } }

        static Qwen2Tokenizer vectorTokenizer;
        static Qwen2Tokenizer VectorTokenizer
        {
            get { return vectorTokenizer ?? (vectorTokenizer = Vectors.Tokenizer()); }
        }

        static void Write(string kind, string name, string key, string json)
        {
            Vectors.Write(kind, name, key, json);
        }

        static string IdsJson(int[] ids)
        {
            var parts = new string[ids.Length];
            for (int i = 0; i < ids.Length; i++) parts[i] = ids[i].ToString(CultureInfo.InvariantCulture);
            return "[" + string.Join(", ", parts) + "]";
        }

        // ---- self-contained -----------------------------------------------------------------------------------

        /// <summary>Bytes are their own ids; merges h+i -> 256, hi+! -> 257, ' '+h -> 258; &lt;|endofprompt|&gt; = 300.</summary>
        static Qwen2Tokenizer Toy()
        {
            var byteIds = new int[256];
            for (int b = 0; b < 256; b++) byteIds[b] = b;
            var merges = new[] { 'h', 'i', 256, 256, '!', 257, ' ', 'h', 258 };
            var added = new List<int> { 300, 1, Qwen2Tokenizer.EndOfPrompt.Length };
            foreach (var ch in Qwen2Tokenizer.EndOfPrompt) added.Add(ch);
            return new Qwen2Tokenizer(byteIds, merges, added.ToArray());
        }

        [Test]
        public void EndOfPromptIsOneId()
        {
            var t = Toy();
            Assert.AreEqual("[256, 300, 256, 33, 105]", IdsJson(t.Encode("hi<|endofprompt|>hi!i")));  // "!i" is one piece
            Assert.AreEqual(300, t.TokenId(Qwen2Tokenizer.EndOfPrompt));
            Assert.AreEqual(-1, t.TokenId("<|nope|>"));
        }

        [Test]
        public void SpecialsAreMatchedAnywhereLeftmostLongest()
        {
            var byteIds = new int[256];
            for (int b = 0; b < 256; b++) byteIds[b] = b;
            var added = new List<int>();
            string[] specials = { "[a]", "[ai]", "[i]", "<strong>", "</strong>", "[breath]" };
            for (int k = 0; k < specials.Length; k++)
            {
                added.Add(300 + k); added.Add(1); added.Add(specials[k].Length);
                foreach (var ch in specials[k]) added.Add(ch);
            }
            var t = new Qwen2Tokenizer(byteIds, new int[0], added.ToArray());
            Assert.AreEqual("[301, 300, 302]", IdsJson(t.Encode("[ai][a][i]")));
            Assert.AreEqual("[303, 120, 304]", IdsJson(t.Encode("<strong>x</strong>")));
            Assert.AreEqual("[97, 305, 98]", IdsJson(t.Encode("a[breath]b")));
            Assert.AreEqual("[91, 97, 91, 300]", IdsJson(t.Encode("[a[[a]")));   // "[a" alone is plain text
            Assert.AreEqual(305, t.TokenId("[breath]"));
        }

        [Test]
        public void SplitsLikeQwen2()
        {
            var t = Toy();
            // " hi" is one piece (space glued to the word): merges ' '+'h' first (rank 2 loses to h+i, rank 0)
            Assert.AreEqual("[32, 256]", IdsJson(t.Encode(" hi")));
            Assert.AreEqual("[50, 50]", IdsJson(t.Encode("22")));
            Assert.AreEqual("[240, 159, 152, 128]", IdsJson(t.Encode("\U0001F600")));  // emoji: its 4 UTF-8 bytes
            Assert.AreEqual("[239, 191, 189]", IdsJson(t.Encode("\uD800")));  // lone surrogate -> U+FFFD
            Assert.AreEqual("[195, 169]", IdsJson(t.Encode("e\u0301")));   // NFC: e + combining acute -> é
            Assert.AreEqual(0, t.Encode("").Length);
        }

        [Test]
        public void WhiteSpaceIsUnicodeWhiteSpace()
        {
            Assert.IsTrue(Qwen2Tokenizer.IsWhiteSpace(0x3000) && Qwen2Tokenizer.IsWhiteSpace(0x85));
            Assert.IsFalse(Qwen2Tokenizer.IsWhiteSpace(0x1C) || Qwen2Tokenizer.IsWhiteSpace(0x200B));
        }

        // ---- vectors written by Python --------------------------------------------------------------------------

        public static IEnumerable<TestCaseData> Cases()
        {
            if (string.IsNullOrEmpty(Dir)) yield break;
            foreach (var v in Index.Get("cases").Items)
                yield return new TestCaseData(v).SetName("Tokenizer.case." + v.Get("name").StringValue);
        }

        [Test, TestCaseSource("Cases")]
        public void SameIdsAsPython(JsonValue v)
        {
            int[] got = VectorTokenizer.Encode(v.Get("text").StringValue);
            string name = v.Get("name").StringValue;
            Write("case", name, "ids", IdsJson(got));
            var want = new int[v.Get("ids").Items.Count];
            for (int i = 0; i < want.Length; i++) want[i] = (int)v.Get("ids").Items[i].NumberValue;
            Assert.AreEqual(IdsJson(want), IdsJson(got), name);
        }

        /// <summary>Reports (does not assert) where this runtime's own Unicode tables class a code point differently
        /// from Python's unicodedata (why the bundle ships the class table): the Python test checks the count.</summary>
        [Test]
        public void UnicodeClassesReport()
        {
            if (string.IsNullOrEmpty(Dir)) return;
            byte[] want = File.ReadAllBytes(Path.Combine(Dir, "classes.bin"));
            var diffs = new List<string>();
            for (int cp = 0; cp < want.Length; cp++)
            {
                if (cp >= 0xD800 && cp <= 0xDFFF) continue;
                string s = char.ConvertFromUtf32(cp);
                int got = ClassOf(cp, CharUnicodeInfo.GetUnicodeCategory(s, 0));
                if (got != want[cp]) diffs.Add(cp.ToString(CultureInfo.InvariantCulture));
            }
            Write("classes", "all", "differ", "[" + string.Join(", ", diffs.ToArray()) + "]");
        }

        static int ClassOf(int cp, UnicodeCategory cat)
        {
            switch (cat)
            {
                case UnicodeCategory.UppercaseLetter: case UnicodeCategory.LowercaseLetter:
                case UnicodeCategory.TitlecaseLetter: case UnicodeCategory.ModifierLetter:
                case UnicodeCategory.OtherLetter:
                    return 1;
                case UnicodeCategory.DecimalDigitNumber: case UnicodeCategory.LetterNumber:
                case UnicodeCategory.OtherNumber:
                    return 2;
            }
            return Qwen2Tokenizer.IsWhiteSpace(cp) ? 3 : 4;
        }
    }
}
