// Upstream CosyVoice3's text frontend without wetext: a port of packager/frontend/text.py
// normalize(text, tokenize, use_wetext=False) (design/frontend.md §2.2, docs/text_frontend.md). In order:
//   text with both "<|" and "|>" (every prompt with <|endofprompt|>), or "", is returned raw;
//   strip (Python's str.isspace set);
//   Chinese (any U+4E00..U+9FFF): drop "\n"; ReplaceBlank; ReplaceCornerMark; "." -> "。"; " - " -> "，";
//     RemoveBracket; trailing ，,、 -> 。; SplitParagraph by characters;
//   otherwise: SpellOutNumber (inflect's number_to_words, emulated step by step); SplitParagraph by Qwen tokens;
//   pieces that are only P*/S* characters are dropped.
// Character classes come from CharTable, generated from the packager's unicodedata (mono's own tables are older),
// and letters/numbers (IsSpeakable) from the tokenizer's shipped class table, so C# cuts exactly where Python does.
// Strings are read as code points: a surrogate pair is one character (lengths, digits, punctuation).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace CosyVoice3.Host
{
    /// <summary>A number longer than inflect can name (more than 36 digits), as Python's InputError.</summary>
    public sealed class NumberTooLongException : ArgumentException
    {
        public NumberTooLongException(string message) : base(message) { }
    }

    public static class TextFrontend
    {
        /// <summary>upstream's split_paragraph arguments in text_normalize (generated from packager/frontend/text.py).</summary>
        public const int TokenMaxN = FrontendConstants.TokenMaxN, TokenMinN = FrontendConstants.TokenMinN, MergeLen = FrontendConstants.MergeLen;
        public const int MaxNumberDigits = 36;
        const string SentenceEndZh = "。？！；：、.?!;", SentenceEndEn = ".?!;:", Commas = "，,", ClosingQuotes = "\"”";

        /// <summary>normalize(text, tokenizer.encode, split=True): the pieces to synthesize one by one.</summary>
        public static string[] Normalize(string text, Qwen2Tokenizer tokenizer)
        {
            if (tokenizer == null) throw new ArgumentNullException("tokenizer");
            return Normalize(text, tokenizer.Encode);
        }

        /// <summary>normalize(text, tokenize, split=True); tokenize gives the Qwen2 ids (English piece lengths).</summary>
        public static string[] Normalize(string text, Func<string, int[]> tokenize)
        {
            text = text ?? "";
            if (IsRaw(text)) return new[] { text };
            bool chinese;
            text = Prepare(text, out chinese);
            List<string> pieces = SplitParagraph(text, tokenize, chinese);
            var kept = new List<string>();
            foreach (var p in pieces) if (!IsPunctuationOnly(p)) kept.Add(p);
            return kept.ToArray();
        }

        /// <summary>normalize(text, split=False): the normalized text, not split.</summary>
        public static string NormalizeText(string text)
        {
            text = text ?? "";
            if (IsRaw(text)) return text;
            bool chinese;
            return Prepare(text, out chinese);
        }

        /// <summary>is_speakable: at least one letter or number (Unicode L* / N*). Digits by CharTable; letters and
        /// other numbers by the tokenizer's shipped class table (the packager's Unicode) when one is given, else by
        /// this runtime's tables.</summary>
        public static bool IsSpeakable(string text, Qwen2Tokenizer tokenizer = null)
        {
            if (text == null) return false;
            for (int i = 0; i < text.Length; i++)
            {
                int n, cp = CodePointAt(text, i, out n);
                i += n - 1;
                if (IsDigit(cp)) return true;
                if (tokenizer != null ? tokenizer.IsLetterOrNumber(cp) : RuntimeLetterOrNumber(text, i - n + 1, cp)) return true;
            }
            return false;
        }

        static bool RuntimeLetterOrNumber(string s, int index, int cp)
        {
            if (cp >= 0xD800 && cp <= 0xDFFF) return false;
            switch (CharUnicodeInfo.GetUnicodeCategory(s, index))
            {
                case UnicodeCategory.UppercaseLetter: case UnicodeCategory.LowercaseLetter:
                case UnicodeCategory.TitlecaseLetter: case UnicodeCategory.ModifierLetter:
                case UnicodeCategory.OtherLetter: case UnicodeCategory.DecimalDigitNumber:
                case UnicodeCategory.LetterNumber: case UnicodeCategory.OtherNumber:
                    return true;
            }
            return false;
        }

        static bool IsRaw(string text)
        {
            return text.Length == 0 || (text.Contains("<|") && text.Contains("|>"));
        }

        static string Prepare(string text, out bool chinese)
        {
            text = Strip(text);
            chinese = ContainsChinese(text);
            if (!chinese) return SpellOutNumber(text);
            text = text.Replace("\n", "");
            text = ReplaceBlank(text);
            text = ReplaceCornerMark(text);
            text = text.Replace(".", "。").Replace(" - ", "，");
            text = RemoveBracket(text);
            return ReplaceTrailingCommas(text);
        }

        // ---- character rules ----------------------------------------------------------------------------------

        public static bool ContainsChinese(string text)
        {
            foreach (char ch in text) if (ch >= '\u4e00' && ch <= '\u9fff') return true;
            return false;
        }

        /// <summary>Python's str.isspace (Unicode White_Space plus U+001C..U+001F; all in the BMP).</summary>
        public static bool IsPythonSpace(char c)
        {
            return (c >= '\u0009' && c <= '\u000d') || (c >= '\u001c' && c <= '\u0020') || c == '\u0085'
                   || c == '\u00a0' || c == '\u1680' || (c >= '\u2000' && c <= '\u200a') || c == '\u2028'
                   || c == '\u2029' || c == '\u202f' || c == '\u205f' || c == '\u3000';
        }

        public static string Strip(string text)
        {
            int a = 0, b = text.Length;
            while (a < b && IsPythonSpace(text[a])) a++;
            while (b > a && IsPythonSpace(text[b - 1])) b--;
            return text.Substring(a, b - a);
        }

        static bool AsciiNonSpace(char c) { return c < 0x80 && c != ' '; }

        /// <summary>Drop every U+0020 unless both neighbours are ASCII and not spaces (and it is not at an end).</summary>
        public static string ReplaceBlank(string text)
        {
            var sb = new StringBuilder(text.Length);
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                if (c == ' ' && !(i > 0 && i < text.Length - 1 && AsciiNonSpace(text[i - 1]) && AsciiNonSpace(text[i + 1])))
                    continue;
                sb.Append(c);
            }
            return sb.ToString();
        }

        public static string ReplaceCornerMark(string text)
        {
            return text.Replace("²", "平方").Replace("³", "立方");
        }

        public static string RemoveBracket(string text)
        {
            return text.Replace("（", "").Replace("）", "").Replace("【", "").Replace("】", "").Replace("`", "")
                       .Replace("——", " ");
        }

        /// <summary>A run of ，,、 at the end becomes one 。</summary>
        public static string ReplaceTrailingCommas(string text)
        {
            int end = text.Length;
            while (end > 0 && (text[end - 1] == '，' || text[end - 1] == ',' || text[end - 1] == '、')) end--;
            return end == text.Length ? text : text.Substring(0, end) + "。";
        }

        /// <summary>^[\p{P}\p{S}]*$ ($ also before one final "\n"): empty, or only punctuation / symbols.</summary>
        public static bool IsPunctuationOnly(string piece)
        {
            int len = piece.Length > 0 && piece[piece.Length - 1] == '\n' ? piece.Length - 1 : piece.Length;
            for (int i = 0; i < len; i++)
            {
                int n;
                if (Kind(CodePointAt(piece, i, out n)) != PunctSymbol) return false;
                i += n - 1;
            }
            return true;
        }

        // ---- numbers: inflect.engine().number_to_words, step by step ------------------------------------------

        static readonly string[] Unit = { "", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine" };
        static readonly string[] Teen = { "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                                          "seventeen", "eighteen", "nineteen" };
        static readonly string[] Ten = { "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
                                         "ninety" };
        static readonly string[] Mill = { " ", " thousand", " million", " billion", " trillion", " quadrillion",
                                          " quintillion", " sextillion", " septillion", " octillion", " nonillion",
                                          " decillion" };

        /// <summary>Every maximal run of digits (Python's str.isdigit) replaced by NumberToWords of it.</summary>
        public static string SpellOutNumber(string text)
        {
            var sb = new StringBuilder(text.Length);
            int start = -1;
            for (int i = 0; i <= text.Length; i++)
            {
                int n = 1;
                bool digit = i < text.Length && IsDigit(CodePointAt(text, i, out n));
                if (digit)
                {
                    if (start < 0) start = i;
                    i += n - 1;
                    continue;
                }
                if (start >= 0) { sb.Append(NumberToWords(text.Substring(start, i - start))); start = -1; }
                if (i < text.Length) sb.Append(text, i, n);
                i += n - 1;
            }
            return sb.ToString();
        }

        /// <summary>inflect's number_to_words(digits) for a run of str.isdigit characters: decimal digits (Nd, any
        /// script) are read, other digits (², ①) dropped; leading ASCII zeros stripped; three-digit groups from the
        /// right with "and" / commas exactly as inflect joins them. More than 36 digits: NumberTooLongException.</summary>
        public static string NumberToWords(string digits)
        {
            var vals = new List<int>();
            var asciiZero = new List<bool>();
            for (int i = 0; i < digits.Length; i++)
            {
                int n, cp = CodePointAt(digits, i, out n);
                i += n - 1;
                int v = DecimalValue(cp);
                if (v < 0) continue;
                vals.Add(v);
                asciiZero.Add(cp == '0');
            }
            if (vals.Count == 0) { vals.Add(0); asciiZero.Add(true); }
            bool zero = true, one = vals[vals.Count - 1] == 1;
            for (int i = 0; i < vals.Count; i++)
            {
                if (vals[i] != 0 && i < vals.Count - 1) one = false;
                if (vals[i] != 0) zero = false;
            }
            if (zero) return "zero";
            if (one) return "one";
            int start = 0, end = vals.Count, mill = 0;
            while (start < end && asciiZero[start]) start++;
            string words = "";
            try
            {
                for (; end - start >= 3; end -= 3, mill++) words = Hundreds(vals[end - 3], vals[end - 2], vals[end - 1], mill) + words;
                if (end - start == 2) words = Tens(vals[start], vals[start + 1], mill) + ", " + words;
                else if (end - start == 1) words = Unit[vals[start]] + MillWord(mill) + ", " + words;
            }
            catch (IndexOutOfRangeException)
            {
                throw new NumberTooLongException("a number is too long to spell out (at most " + MaxNumberDigits
                                                 + " digits, found " + vals.Count + ")");
            }
            return Finish(words);
        }

        static string MillWord(int i)
        {
            if (i >= Mill.Length) throw new IndexOutOfRangeException();
            return Mill[i];
        }

        static string Tens(int t, int u, int mill)
        {
            if (t != 1) return Ten[t] + (t != 0 && u != 0 ? "-" : "") + Unit[u] + MillWord(mill);
            return Teen[u] + MillWord(mill);
        }

        static string Hundreds(int h, int t, int u, int mill)
        {
            if (h != 0) return Unit[h] + " hundred" + (t != 0 || u != 0 ? " and " : "") + Tens(t, u, 0) + MillWord(mill) + ", ";
            if (t != 0 || u != 0) return Tens(t, u, 0) + MillWord(mill) + ", ";
            return "";
        }

        /// <summary>inflect's clean-up of a chunk: drop a final ", "; "\s+," -> ","; ", (\S+)\s+\Z" -> " and \1";
        /// "\s+," -> ","; "\s+" -> " "; strip. The chunk holds only ASCII letters, '-', ',' and spaces.</summary>
        static string Finish(string s)
        {
            if (s.EndsWith(", ", StringComparison.Ordinal)) s = s.Substring(0, s.Length - 2);
            s = SpacesBeforeComma(s);
            int core = s.Length;
            while (core > 0 && s[core - 1] == ' ') core--;
            if (core < s.Length && core > 0)
            {
                int space = s.LastIndexOf(' ', core - 1);
                if (space >= 1 && s[space - 1] == ',')
                    s = s.Substring(0, space - 1) + " and " + s.Substring(space + 1, core - space - 1);
            }
            s = SpacesBeforeComma(s);
            var sb = new StringBuilder(s.Length);
            foreach (char c in s) if (c != ' ' || sb.Length == 0 || sb[sb.Length - 1] != ' ') sb.Append(c);
            return sb.ToString().Trim(' ');
        }

        static string SpacesBeforeComma(string s)
        {
            var sb = new StringBuilder(s.Length);
            for (int i = 0; i < s.Length; i++)
            {
                if (s[i] == ' ')
                {
                    int j = i;
                    while (j < s.Length && s[j] == ' ') j++;
                    if (j < s.Length && s[j] == ',') { i = j - 1; continue; }
                    sb.Append(s, i, j - i);
                    i = j - 1;
                    continue;
                }
                sb.Append(s[i]);
            }
            return sb.ToString();
        }

        // ---- sentence splitting --------------------------------------------------------------------------------

        /// <summary>split_paragraph: sentences end after each sentence-end character (a closing " or ” right after
        /// it stays); a text not ending in one gets 。/. appended; sentences are merged into pieces: a new piece
        /// starts when the current one is longer than tokenMinN and the sentence would make it longer than
        /// tokenMaxN; a last piece shorter than mergeLen joins the previous one. Lengths: code points (Chinese) or
        /// tokenize(s).Length.</summary>
        public static List<string> SplitParagraph(string text, Func<string, int[]> tokenize, bool chinese,
                                                  int tokenMaxN = TokenMaxN, int tokenMinN = TokenMinN,
                                                  int mergeLen = MergeLen, bool commaSplit = false)
        {
            var pieces = new List<string>();
            if (string.IsNullOrEmpty(text)) return pieces;
            if (!chinese && tokenize == null) throw new ArgumentNullException("tokenize");
            Func<string, int> length = chinese ? (Func<string, int>)CodePointCount : s => tokenize(s).Length;
            string ends = (chinese ? SentenceEndZh : SentenceEndEn) + (commaSplit ? Commas : "");
            if (ends.IndexOf(text[text.Length - 1]) < 0) text += chinese ? "。" : ".";
            var sentences = new List<string>();
            int start = 0, i = 0;
            while (i < text.Length)
            {
                i++;
                if (ends.IndexOf(text[i - 1]) < 0) continue;
                if (i < text.Length && ClosingQuotes.IndexOf(text[i]) >= 0) i++;
                sentences.Add(text.Substring(start, i - start));
                start = i;
            }
            if (start < text.Length) sentences.Add(text.Substring(start));
            string cur = "";
            foreach (var s in sentences)
            {
                if (length(cur + s) > tokenMaxN && length(cur) > tokenMinN) { pieces.Add(cur); cur = ""; }
                cur += s;
            }
            if (cur.Length > 0)
            {
                if (pieces.Count > 0 && length(cur) < mergeLen) pieces[pieces.Count - 1] += cur;
                else pieces.Add(cur);
            }
            return pieces;
        }

        // ---- code points and the character table ---------------------------------------------------------------

        public static int CodePointCount(string s)
        {
            int n = s.Length;
            for (int i = 0; i + 1 < s.Length; i++)
                if (char.IsHighSurrogate(s[i]) && char.IsLowSurrogate(s[i + 1])) { n--; i++; }
            return n;
        }

        /// <summary>The code point at i (a lone surrogate as itself); n: its UTF-16 length.</summary>
        static int CodePointAt(string s, int i, out int n)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                n = 2;
                return char.ConvertToUtf32(s[i], s[i + 1]);
            }
            n = 1;
            return s[i];
        }

        public const int PunctSymbol = 1, DecimalDigit = 2, OtherDigit = 3;

        /// <summary>1: P*/S* category, 2: decimal digit (Nd), 3: another str.isdigit character, 0: anything else.</summary>
        public static int Kind(int cp)
        {
            int row = Row(cp);
            return row < 0 ? 0 : CharTable[3 * row + 2];
        }

        static bool IsDigit(int cp) { int k = Kind(cp); return k == DecimalDigit || k == OtherDigit; }

        /// <summary>Value 0..9 of a decimal digit (each Nd row is one run 0..9), else -1.</summary>
        public static int DecimalValue(int cp)
        {
            int row = Row(cp);
            return row >= 0 && CharTable[3 * row + 2] == DecimalDigit ? cp - CharTable[3 * row] : -1;
        }

        static int Row(int cp)
        {
            int lo = 0, hi = CharTable.Length / 3 - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >> 1;
                if (cp < CharTable[3 * mid]) hi = mid - 1;
                else if (cp > CharTable[3 * mid + 1]) lo = mid + 1;
                else return mid;
            }
            return -1;
        }

        // (first, last, kind) rows from packager.frontend.text.char_table(); regenerate with
        //   python -c "from packager.frontend.text import char_table_csharp; print(char_table_csharp())"
        // tests/csharp/test_text_frontend.py checks that the block equals the packager's.
        // BEGIN GENERATED (Unicode 14.0.0)
        static readonly int[] CharTable =
        {
            0x21, 0x2F, 1, 0x30, 0x39, 2, 0x3A, 0x40, 1, 0x5B, 0x60, 1, 0x7B, 0x7E, 1, 0xA1, 0xA9, 1, 0xAB, 0xAC, 1,
            0xAE, 0xB1, 1, 0xB2, 0xB3, 3, 0xB4, 0xB4, 1, 0xB6, 0xB8, 1, 0xB9, 0xB9, 3, 0xBB, 0xBB, 1, 0xBF, 0xBF, 1,
            0xD7, 0xD7, 1, 0xF7, 0xF7, 1, 0x2C2, 0x2C5, 1, 0x2D2, 0x2DF, 1, 0x2E5, 0x2EB, 1, 0x2ED, 0x2ED, 1, 0x2EF, 0x2FF, 1,
            0x375, 0x375, 1, 0x37E, 0x37E, 1, 0x384, 0x385, 1, 0x387, 0x387, 1, 0x3F6, 0x3F6, 1, 0x482, 0x482, 1, 0x55A, 0x55F, 1,
            0x589, 0x58A, 1, 0x58D, 0x58F, 1, 0x5BE, 0x5BE, 1, 0x5C0, 0x5C0, 1, 0x5C3, 0x5C3, 1, 0x5C6, 0x5C6, 1, 0x5F3, 0x5F4, 1,
            0x606, 0x60F, 1, 0x61B, 0x61B, 1, 0x61D, 0x61F, 1, 0x660, 0x669, 2, 0x66A, 0x66D, 1, 0x6D4, 0x6D4, 1, 0x6DE, 0x6DE, 1,
            0x6E9, 0x6E9, 1, 0x6F0, 0x6F9, 2, 0x6FD, 0x6FE, 1, 0x700, 0x70D, 1, 0x7C0, 0x7C9, 2, 0x7F6, 0x7F9, 1, 0x7FE, 0x7FF, 1,
            0x830, 0x83E, 1, 0x85E, 0x85E, 1, 0x888, 0x888, 1, 0x964, 0x965, 1, 0x966, 0x96F, 2, 0x970, 0x970, 1, 0x9E6, 0x9EF, 2,
            0x9F2, 0x9F3, 1, 0x9FA, 0x9FB, 1, 0x9FD, 0x9FD, 1, 0xA66, 0xA6F, 2, 0xA76, 0xA76, 1, 0xAE6, 0xAEF, 2, 0xAF0, 0xAF1, 1,
            0xB66, 0xB6F, 2, 0xB70, 0xB70, 1, 0xBE6, 0xBEF, 2, 0xBF3, 0xBFA, 1, 0xC66, 0xC6F, 2, 0xC77, 0xC77, 1, 0xC7F, 0xC7F, 1,
            0xC84, 0xC84, 1, 0xCE6, 0xCEF, 2, 0xD4F, 0xD4F, 1, 0xD66, 0xD6F, 2, 0xD79, 0xD79, 1, 0xDE6, 0xDEF, 2, 0xDF4, 0xDF4, 1,
            0xE3F, 0xE3F, 1, 0xE4F, 0xE4F, 1, 0xE50, 0xE59, 2, 0xE5A, 0xE5B, 1, 0xED0, 0xED9, 2, 0xF01, 0xF17, 1, 0xF1A, 0xF1F, 1,
            0xF20, 0xF29, 2, 0xF34, 0xF34, 1, 0xF36, 0xF36, 1, 0xF38, 0xF38, 1, 0xF3A, 0xF3D, 1, 0xF85, 0xF85, 1, 0xFBE, 0xFC5, 1,
            0xFC7, 0xFCC, 1, 0xFCE, 0xFDA, 1, 0x1040, 0x1049, 2, 0x104A, 0x104F, 1, 0x1090, 0x1099, 2, 0x109E, 0x109F, 1, 0x10FB, 0x10FB, 1,
            0x1360, 0x1368, 1, 0x1369, 0x1371, 3, 0x1390, 0x1399, 1, 0x1400, 0x1400, 1, 0x166D, 0x166E, 1, 0x169B, 0x169C, 1, 0x16EB, 0x16ED, 1,
            0x1735, 0x1736, 1, 0x17D4, 0x17D6, 1, 0x17D8, 0x17DB, 1, 0x17E0, 0x17E9, 2, 0x1800, 0x180A, 1, 0x1810, 0x1819, 2, 0x1940, 0x1940, 1,
            0x1944, 0x1945, 1, 0x1946, 0x194F, 2, 0x19D0, 0x19D9, 2, 0x19DA, 0x19DA, 3, 0x19DE, 0x19FF, 1, 0x1A1E, 0x1A1F, 1, 0x1A80, 0x1A89, 2,
            0x1A90, 0x1A99, 2, 0x1AA0, 0x1AA6, 1, 0x1AA8, 0x1AAD, 1, 0x1B50, 0x1B59, 2, 0x1B5A, 0x1B6A, 1, 0x1B74, 0x1B7E, 1, 0x1BB0, 0x1BB9, 2,
            0x1BFC, 0x1BFF, 1, 0x1C3B, 0x1C3F, 1, 0x1C40, 0x1C49, 2, 0x1C50, 0x1C59, 2, 0x1C7E, 0x1C7F, 1, 0x1CC0, 0x1CC7, 1, 0x1CD3, 0x1CD3, 1,
            0x1FBD, 0x1FBD, 1, 0x1FBF, 0x1FC1, 1, 0x1FCD, 0x1FCF, 1, 0x1FDD, 0x1FDF, 1, 0x1FED, 0x1FEF, 1, 0x1FFD, 0x1FFE, 1, 0x2010, 0x2027, 1,
            0x2030, 0x205E, 1, 0x2070, 0x2070, 3, 0x2074, 0x2079, 3, 0x207A, 0x207E, 1, 0x2080, 0x2089, 3, 0x208A, 0x208E, 1, 0x20A0, 0x20C0, 1,
            0x2100, 0x2101, 1, 0x2103, 0x2106, 1, 0x2108, 0x2109, 1, 0x2114, 0x2114, 1, 0x2116, 0x2118, 1, 0x211E, 0x2123, 1, 0x2125, 0x2125, 1,
            0x2127, 0x2127, 1, 0x2129, 0x2129, 1, 0x212E, 0x212E, 1, 0x213A, 0x213B, 1, 0x2140, 0x2144, 1, 0x214A, 0x214D, 1, 0x214F, 0x214F, 1,
            0x218A, 0x218B, 1, 0x2190, 0x2426, 1, 0x2440, 0x244A, 1, 0x2460, 0x2468, 3, 0x2474, 0x247C, 3, 0x2488, 0x2490, 3, 0x249C, 0x24E9, 1,
            0x24EA, 0x24EA, 3, 0x24F5, 0x24FD, 3, 0x24FF, 0x24FF, 3, 0x2500, 0x2775, 1, 0x2776, 0x277E, 3, 0x2780, 0x2788, 3, 0x278A, 0x2792, 3,
            0x2794, 0x2B73, 1, 0x2B76, 0x2B95, 1, 0x2B97, 0x2BFF, 1, 0x2CE5, 0x2CEA, 1, 0x2CF9, 0x2CFC, 1, 0x2CFE, 0x2CFF, 1, 0x2D70, 0x2D70, 1,
            0x2E00, 0x2E2E, 1, 0x2E30, 0x2E5D, 1, 0x2E80, 0x2E99, 1, 0x2E9B, 0x2EF3, 1, 0x2F00, 0x2FD5, 1, 0x2FF0, 0x2FFB, 1, 0x3001, 0x3004, 1,
            0x3008, 0x3020, 1, 0x3030, 0x3030, 1, 0x3036, 0x3037, 1, 0x303D, 0x303F, 1, 0x309B, 0x309C, 1, 0x30A0, 0x30A0, 1, 0x30FB, 0x30FB, 1,
            0x3190, 0x3191, 1, 0x3196, 0x319F, 1, 0x31C0, 0x31E3, 1, 0x3200, 0x321E, 1, 0x322A, 0x3247, 1, 0x3250, 0x3250, 1, 0x3260, 0x327F, 1,
            0x328A, 0x32B0, 1, 0x32C0, 0x33FF, 1, 0x4DC0, 0x4DFF, 1, 0xA490, 0xA4C6, 1, 0xA4FE, 0xA4FF, 1, 0xA60D, 0xA60F, 1, 0xA620, 0xA629, 2,
            0xA673, 0xA673, 1, 0xA67E, 0xA67E, 1, 0xA6F2, 0xA6F7, 1, 0xA700, 0xA716, 1, 0xA720, 0xA721, 1, 0xA789, 0xA78A, 1, 0xA828, 0xA82B, 1,
            0xA836, 0xA839, 1, 0xA874, 0xA877, 1, 0xA8CE, 0xA8CF, 1, 0xA8D0, 0xA8D9, 2, 0xA8F8, 0xA8FA, 1, 0xA8FC, 0xA8FC, 1, 0xA900, 0xA909, 2,
            0xA92E, 0xA92F, 1, 0xA95F, 0xA95F, 1, 0xA9C1, 0xA9CD, 1, 0xA9D0, 0xA9D9, 2, 0xA9DE, 0xA9DF, 1, 0xA9F0, 0xA9F9, 2, 0xAA50, 0xAA59, 2,
            0xAA5C, 0xAA5F, 1, 0xAA77, 0xAA79, 1, 0xAADE, 0xAADF, 1, 0xAAF0, 0xAAF1, 1, 0xAB5B, 0xAB5B, 1, 0xAB6A, 0xAB6B, 1, 0xABEB, 0xABEB, 1,
            0xABF0, 0xABF9, 2, 0xFB29, 0xFB29, 1, 0xFBB2, 0xFBC2, 1, 0xFD3E, 0xFD4F, 1, 0xFDCF, 0xFDCF, 1, 0xFDFC, 0xFDFF, 1, 0xFE10, 0xFE19, 1,
            0xFE30, 0xFE52, 1, 0xFE54, 0xFE66, 1, 0xFE68, 0xFE6B, 1, 0xFF01, 0xFF0F, 1, 0xFF10, 0xFF19, 2, 0xFF1A, 0xFF20, 1, 0xFF3B, 0xFF40, 1,
            0xFF5B, 0xFF65, 1, 0xFFE0, 0xFFE6, 1, 0xFFE8, 0xFFEE, 1, 0xFFFC, 0xFFFD, 1, 0x10100, 0x10102, 1, 0x10137, 0x1013F, 1, 0x10179, 0x10189, 1,
            0x1018C, 0x1018E, 1, 0x10190, 0x1019C, 1, 0x101A0, 0x101A0, 1, 0x101D0, 0x101FC, 1, 0x1039F, 0x1039F, 1, 0x103D0, 0x103D0, 1, 0x104A0, 0x104A9, 2,
            0x1056F, 0x1056F, 1, 0x10857, 0x10857, 1, 0x10877, 0x10878, 1, 0x1091F, 0x1091F, 1, 0x1093F, 0x1093F, 1, 0x10A40, 0x10A43, 3, 0x10A50, 0x10A58, 1,
            0x10A7F, 0x10A7F, 1, 0x10AC8, 0x10AC8, 1, 0x10AF0, 0x10AF6, 1, 0x10B39, 0x10B3F, 1, 0x10B99, 0x10B9C, 1, 0x10D30, 0x10D39, 2, 0x10E60, 0x10E68, 3,
            0x10EAD, 0x10EAD, 1, 0x10F55, 0x10F59, 1, 0x10F86, 0x10F89, 1, 0x11047, 0x1104D, 1, 0x11052, 0x1105A, 3, 0x11066, 0x1106F, 2, 0x110BB, 0x110BC, 1,
            0x110BE, 0x110C1, 1, 0x110F0, 0x110F9, 2, 0x11136, 0x1113F, 2, 0x11140, 0x11143, 1, 0x11174, 0x11175, 1, 0x111C5, 0x111C8, 1, 0x111CD, 0x111CD, 1,
            0x111D0, 0x111D9, 2, 0x111DB, 0x111DB, 1, 0x111DD, 0x111DF, 1, 0x11238, 0x1123D, 1, 0x112A9, 0x112A9, 1, 0x112F0, 0x112F9, 2, 0x1144B, 0x1144F, 1,
            0x11450, 0x11459, 2, 0x1145A, 0x1145B, 1, 0x1145D, 0x1145D, 1, 0x114C6, 0x114C6, 1, 0x114D0, 0x114D9, 2, 0x115C1, 0x115D7, 1, 0x11641, 0x11643, 1,
            0x11650, 0x11659, 2, 0x11660, 0x1166C, 1, 0x116B9, 0x116B9, 1, 0x116C0, 0x116C9, 2, 0x11730, 0x11739, 2, 0x1173C, 0x1173F, 1, 0x1183B, 0x1183B, 1,
            0x118E0, 0x118E9, 2, 0x11944, 0x11946, 1, 0x11950, 0x11959, 2, 0x119E2, 0x119E2, 1, 0x11A3F, 0x11A46, 1, 0x11A9A, 0x11A9C, 1, 0x11A9E, 0x11AA2, 1,
            0x11C41, 0x11C45, 1, 0x11C50, 0x11C59, 2, 0x11C70, 0x11C71, 1, 0x11D50, 0x11D59, 2, 0x11DA0, 0x11DA9, 2, 0x11EF7, 0x11EF8, 1, 0x11FD5, 0x11FF1, 1,
            0x11FFF, 0x11FFF, 1, 0x12470, 0x12474, 1, 0x12FF1, 0x12FF2, 1, 0x16A60, 0x16A69, 2, 0x16A6E, 0x16A6F, 1, 0x16AC0, 0x16AC9, 2, 0x16AF5, 0x16AF5, 1,
            0x16B37, 0x16B3F, 1, 0x16B44, 0x16B45, 1, 0x16B50, 0x16B59, 2, 0x16E97, 0x16E9A, 1, 0x16FE2, 0x16FE2, 1, 0x1BC9C, 0x1BC9C, 1, 0x1BC9F, 0x1BC9F, 1,
            0x1CF50, 0x1CFC3, 1, 0x1D000, 0x1D0F5, 1, 0x1D100, 0x1D126, 1, 0x1D129, 0x1D164, 1, 0x1D16A, 0x1D16C, 1, 0x1D183, 0x1D184, 1, 0x1D18C, 0x1D1A9, 1,
            0x1D1AE, 0x1D1EA, 1, 0x1D200, 0x1D241, 1, 0x1D245, 0x1D245, 1, 0x1D300, 0x1D356, 1, 0x1D6C1, 0x1D6C1, 1, 0x1D6DB, 0x1D6DB, 1, 0x1D6FB, 0x1D6FB, 1,
            0x1D715, 0x1D715, 1, 0x1D735, 0x1D735, 1, 0x1D74F, 0x1D74F, 1, 0x1D76F, 0x1D76F, 1, 0x1D789, 0x1D789, 1, 0x1D7A9, 0x1D7A9, 1, 0x1D7C3, 0x1D7C3, 1,
            0x1D7CE, 0x1D7D7, 2, 0x1D7D8, 0x1D7E1, 2, 0x1D7E2, 0x1D7EB, 2, 0x1D7EC, 0x1D7F5, 2, 0x1D7F6, 0x1D7FF, 2, 0x1D800, 0x1D9FF, 1, 0x1DA37, 0x1DA3A, 1,
            0x1DA6D, 0x1DA74, 1, 0x1DA76, 0x1DA83, 1, 0x1DA85, 0x1DA8B, 1, 0x1E140, 0x1E149, 2, 0x1E14F, 0x1E14F, 1, 0x1E2F0, 0x1E2F9, 2, 0x1E2FF, 0x1E2FF, 1,
            0x1E950, 0x1E959, 2, 0x1E95E, 0x1E95F, 1, 0x1ECAC, 0x1ECAC, 1, 0x1ECB0, 0x1ECB0, 1, 0x1ED2E, 0x1ED2E, 1, 0x1EEF0, 0x1EEF1, 1, 0x1F000, 0x1F02B, 1,
            0x1F030, 0x1F093, 1, 0x1F0A0, 0x1F0AE, 1, 0x1F0B1, 0x1F0BF, 1, 0x1F0C1, 0x1F0CF, 1, 0x1F0D1, 0x1F0F5, 1, 0x1F100, 0x1F10A, 3, 0x1F10D, 0x1F1AD, 1,
            0x1F1E6, 0x1F202, 1, 0x1F210, 0x1F23B, 1, 0x1F240, 0x1F248, 1, 0x1F250, 0x1F251, 1, 0x1F260, 0x1F265, 1, 0x1F300, 0x1F6D7, 1, 0x1F6DD, 0x1F6EC, 1,
            0x1F6F0, 0x1F6FC, 1, 0x1F700, 0x1F773, 1, 0x1F780, 0x1F7D8, 1, 0x1F7E0, 0x1F7EB, 1, 0x1F7F0, 0x1F7F0, 1, 0x1F800, 0x1F80B, 1, 0x1F810, 0x1F847, 1,
            0x1F850, 0x1F859, 1, 0x1F860, 0x1F887, 1, 0x1F890, 0x1F8AD, 1, 0x1F8B0, 0x1F8B1, 1, 0x1F900, 0x1FA53, 1, 0x1FA60, 0x1FA6D, 1, 0x1FA70, 0x1FA74, 1,
            0x1FA78, 0x1FA7C, 1, 0x1FA80, 0x1FA86, 1, 0x1FA90, 0x1FAAC, 1, 0x1FAB0, 0x1FABA, 1, 0x1FAC0, 0x1FAC5, 1, 0x1FAD0, 0x1FAD9, 1, 0x1FAE0, 0x1FAE7, 1,
            0x1FAF0, 0x1FAF6, 1, 0x1FB00, 0x1FB92, 1, 0x1FB94, 0x1FBCA, 1, 0x1FBF0, 0x1FBF9, 2,
        };
        // END GENERATED
    }
}
