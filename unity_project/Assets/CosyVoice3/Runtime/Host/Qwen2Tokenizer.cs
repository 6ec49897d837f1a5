// Text -> Qwen2 token ids for the LLM's `text` / `prompt_text`: a 1:1 port of packager/frontend/text_tokenizer.py
// (docs/tokenizer.md). Steps: added tokens (<|endofprompt|> = 151646 ...) cut out first, leftmost-longest; NFC on the
// text between them; Qwen2's pre-tokenizer split as a scanner over Unicode code points (not .NET Regex: \p{L} there
// sees the two UTF-16 halves of an emoji or a CJK Extension B letter, not the character); UTF-8 bytes; BPE merges by
// rank on token ids. Tables come from the bundle's llm data (text_tokenizer_byte_ids / _merges / _added / _classes).
// The added tokens include all 280 CosyVoice3 specials (<|endofprompt|>, [breath], <strong>, ARPAbet [AA1], pinyin
// [iàng] ...), matched as whole strings anywhere in the text. Text normalisation before tokenizing: TextFrontend.cs.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    public sealed class Qwen2Tokenizer
    {
        public const string EndOfPrompt = FrontendConstants.EndOfPrompt;
        public const int EndOfPromptId = 151646;

        sealed class Added
        {
            public int Id;
            public string Content;
            public bool Special;
        }

        const byte L = 1, N = 2, W = 3, O = 4;   // letter, number, White_Space, other
        const int NoRank = int.MaxValue;

        readonly int[] byteIds;                                  // [256] id of each single-byte token
        readonly Dictionary<long, long> merges;                  // (left << 32 | right) -> (rank << 32 | merged)
        readonly List<Added> added = new List<Added>();
        readonly Dictionary<char, List<Added>> addedByFirst = new Dictionary<char, List<Added>>();
        readonly Dictionary<string, int[]> cache = new Dictionary<string, int[]>();
        readonly int[] classRanges;                              // sorted (first, last, class) rows, or null

        /// <param name="byteIds">[256]</param>
        /// <param name="mergeRows">[n * 3] rows (left, right, merged), row index = rank</param>
        /// <param name="addedFlat">records [id, special, n, n code points]</param>
        /// <param name="classRanges">[k * 3] rows (first, last, 1 letter / 2 number) from the packager's Unicode
        /// tables; null: this runtime's CharUnicodeInfo (mono 6.8's tables are older and differ on 31k code points)</param>
        public Qwen2Tokenizer(int[] byteIds, int[] mergeRows, int[] addedFlat, int[] classRanges = null)
        {
            if (classRanges != null && classRanges.Length % 3 != 0) throw new ArgumentException("classes must be [k, 3]");
            this.classRanges = classRanges;
            if (byteIds == null || byteIds.Length != 256) throw new ArgumentException("byte_ids must hold 256 ids");
            if (mergeRows == null || mergeRows.Length % 3 != 0) throw new ArgumentException("merges must be [n, 3]");
            this.byteIds = byteIds;
            merges = new Dictionary<long, long>(mergeRows.Length / 3);
            for (int r = 0; r < mergeRows.Length / 3; r++)
            {
                merges[Pair(mergeRows[3 * r], mergeRows[3 * r + 1])] = ((long)r << 32) | (uint)mergeRows[3 * r + 2];
            }
            for (int k = 0; k < addedFlat.Length;)
            {
                int n = addedFlat[k + 2];
                var sb = new StringBuilder();
                for (int j = 0; j < n; j++) sb.Append(char.ConvertFromUtf32(addedFlat[k + 3 + j]));
                added.Add(new Added { Id = addedFlat[k], Special = addedFlat[k + 1] != 0, Content = sb.ToString() });
                k += 3 + n;
            }
            var longestFirst = new List<Added>(added);
            longestFirst.Sort((a, b) => a.Content.Length != b.Content.Length ? b.Content.Length - a.Content.Length
                                                                             : a.Id - b.Id);
            foreach (var t in longestFirst)
            {
                List<Added> list;
                if (!addedByFirst.TryGetValue(t.Content[0], out list)) addedByFirst[t.Content[0]] = list = new List<Added>();
                list.Add(t);
            }
        }

        /// <summary>The tokenizer shipped with the bundle's llm component; null when it has none (a checkpoint
        /// without CosyVoice-BlankEN tokenizer files, e.g. tiny_a).</summary>
        public static Qwen2Tokenizer FromBundle(Bundle bundle)
        {
            NpyArray byteIds = null, mergeRows = null, addedFlat = null, classes = null;
            foreach (var f in bundle.Component("llm").Data)
            {
                if (f.Name == "text_tokenizer_byte_ids") byteIds = bundle.LoadArray(f);
                else if (f.Name == "text_tokenizer_merges") mergeRows = bundle.LoadArray(f);
                else if (f.Name == "text_tokenizer_added") addedFlat = bundle.LoadArray(f);
                else if (f.Name == "text_tokenizer_classes") classes = bundle.LoadArray(f);
            }
            if (byteIds == null || mergeRows == null || addedFlat == null) return null;
            return new Qwen2Tokenizer(byteIds.Ints, mergeRows.Ints, addedFlat.Ints, classes == null ? null : classes.Ints);
        }

        /// <summary>Whether a code point is a letter or number (Unicode L* / N*) by the shipped class table (the
        /// packager's Unicode), else this runtime's; surrogate code points are neither.</summary>
        public bool IsLetterOrNumber(int codePoint)
        {
            if (codePoint < 0 || codePoint > 0x10FFFF || (codePoint >= 0xD800 && codePoint <= 0xDFFF)) return false;
            byte c = classRanges != null ? Classify(codePoint, classRanges)
                                         : Classify(codePoint, CharUnicodeInfo.GetUnicodeCategory(char.ConvertFromUtf32(codePoint), 0));
            return c == L || c == N;
        }

        /// <summary>Id of an added token (e.g. "&lt;|endofprompt|&gt;"), or -1.</summary>
        public int TokenId(string content)
        {
            foreach (var t in added) if (t.Content == content) return t.Id;
            return -1;
        }

        public int[] Encode(string text)
        {
            var ids = new List<int>();
            text = ReplaceLoneSurrogates(text ?? "");
            int start = 0, i = 0;
            while (i < text.Length)
            {
                Added hit = null;
                List<Added> candidates;
                if (addedByFirst.TryGetValue(text[i], out candidates))
                    foreach (var t in candidates)
                        if (string.CompareOrdinal(text, i, t.Content, 0, t.Content.Length) == 0) { hit = t; break; }
                if (hit == null) { i++; continue; }
                if (i > start) EncodeSegment(text.Substring(start, i - start), ids);
                ids.Add(hit.Id);
                i = start = i + hit.Content.Length;
            }
            if (start < text.Length) EncodeSegment(text.Substring(start), ids);
            return ids.ToArray();
        }

        void EncodeSegment(string segment, List<int> ids)
        {
            string s = segment.Normalize(NormalizationForm.FormC);
            var cps = new List<int>(s.Length);
            var cls = new List<byte>(s.Length);
            for (int i = 0; i < s.Length; i++)
            {
                bool pair = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]);
                cps.Add(pair ? char.ConvertToUtf32(s[i], s[i + 1]) : s[i]);
                int cp = cps[cps.Count - 1];
                cls.Add(classRanges != null ? Classify(cp, classRanges) : Classify(cp, CharUnicodeInfo.GetUnicodeCategory(s, i)));
                if (pair) i++;
            }
            int p = 0;
            while (p < cps.Count)
            {
                int end = PieceEnd(cps, cls, p);
                ids.AddRange(Bpe(cps, p, end));
                p = end;
            }
        }

        // ---- pre-tokenizer (Qwen2's split regex, alternatives in order; see text_tokenizer.pretokenize) ----------

        static byte Classify(int cp, UnicodeCategory cat)
        {
            switch (cat)
            {
                case UnicodeCategory.UppercaseLetter: case UnicodeCategory.LowercaseLetter:
                case UnicodeCategory.TitlecaseLetter: case UnicodeCategory.ModifierLetter:
                case UnicodeCategory.OtherLetter:
                    return L;
                case UnicodeCategory.DecimalDigitNumber: case UnicodeCategory.LetterNumber:
                case UnicodeCategory.OtherNumber:
                    return N;
            }
            return IsWhiteSpace(cp) ? W : O;
        }

        static byte Classify(int cp, int[] ranges)
        {
            int lo = 0, hi = ranges.Length / 3 - 1;
            while (lo <= hi)  // binary search for the row with first <= cp <= last
            {
                int mid = (lo + hi) >> 1;
                if (cp < ranges[3 * mid]) hi = mid - 1;
                else if (cp > ranges[3 * mid + 1]) lo = mid + 1;
                else return ranges[3 * mid + 2] == 1 ? L : N;
            }
            return IsWhiteSpace(cp) ? W : O;
        }

        /// <summary>Unicode White_Space (Oniguruma's \s), not char.IsWhiteSpace.</summary>
        public static bool IsWhiteSpace(int cp)
        {
            return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                   || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F
                   || cp == 0x3000;
        }

        static readonly string[] Contractions = { "s", "t", "re", "ve", "m", "ll", "d" };

        static int Contraction(List<int> cps, int i)
        {
            if (cps[i] != '\'') return 0;
            foreach (var c in Contractions)
            {
                if (i + c.Length >= cps.Count) continue;
                bool ok = true;
                for (int j = 0; j < c.Length && ok; j++)
                {
                    int t = cps[i + 1 + j];
                    ok = t == c[j] || t == char.ToUpperInvariant(c[j]) || (c[j] == 's' && t == 0x017F);  // ſ folds to s
                }
                if (ok) return 1 + c.Length;
            }
            return 0;
        }

        static bool IsLineBreak(int cp) { return cp == '\r' || cp == '\n'; }

        static int Run(List<byte> cls, int j, byte a, byte b)
        {
            while (j < cls.Count && (cls[j] == a || cls[j] == b)) j++;
            return j;
        }

        /// <summary>End (exclusive) of the piece that starts at code point i.</summary>
        static int PieceEnd(List<int> cps, List<byte> cls, int i)
        {
            int n = cps.Count;
            byte c = cls[i];
            int len = Contraction(cps, i);
            if (len > 0) return i + len;
            if (c == L) return Run(cls, i, L, L);
            if (c != N && !IsLineBreak(cps[i]) && i + 1 < n && cls[i + 1] == L) return Run(cls, i + 1, L, L);
            if (c == N) return i + 1;
            if (c == O || (cps[i] == ' ' && i + 1 < n && cls[i + 1] == O))
            {
                int end = Run(cls, i + 1, O, O);
                while (end < n && IsLineBreak(cps[end])) end++;
                return end;
            }
            int wsEnd = Run(cls, i, W, W);
            for (int k = wsEnd - 1; k >= i; k--)
                if (IsLineBreak(cps[k])) return k + 1;      // \s*[\r\n]+ : up to the last line break of the run
            if (wsEnd == n || wsEnd - i == 1) return wsEnd;  // \s+(?!\S) at the end, or a single \s+
            return wsEnd - 1;                                // leave the last space to prefix the next word
        }

        // ---- byte-level BPE on ids -----------------------------------------------------------------------------

        static long Pair(int a, int b) { return ((long)a << 32) | (uint)b; }

        int[] Bpe(List<int> cps, int start, int end)
        {
            var sb = new StringBuilder();
            for (int k = start; k < end; k++) sb.Append(char.ConvertFromUtf32(cps[k]));
            string piece = sb.ToString();
            int[] cached;
            if (cache.TryGetValue(piece, out cached)) return cached;
            byte[] bytes = Encoding.UTF8.GetBytes(piece);
            var word = new List<int>(bytes.Length);
            foreach (var b in bytes)
            {
                if (byteIds[b] < 0) throw new InvalidOperationException("byte " + b + " has no single-byte token");
                word.Add(byteIds[b]);
            }
            while (word.Count > 1)
            {
                long bestRank = NoRank, bestPair = 0;
                int merged = 0;
                for (int k = 0; k + 1 < word.Count; k++)
                {
                    long v;
                    long key = Pair(word[k], word[k + 1]);
                    if (merges.TryGetValue(key, out v) && (v >> 32) < bestRank)
                    {
                        bestRank = v >> 32;
                        bestPair = key;
                        merged = (int)(v & 0xFFFFFFFFL);
                    }
                }
                if (bestRank == NoRank) break;
                var next = new List<int>(word.Count);
                for (int k = 0; k < word.Count;)
                {
                    if (k + 1 < word.Count && Pair(word[k], word[k + 1]) == bestPair) { next.Add(merged); k += 2; }
                    else { next.Add(word[k]); k++; }
                }
                word = next;
            }
            cached = word.ToArray();
            cache[piece] = cached;
            return cached;
        }

        static string ReplaceLoneSurrogates(string s)
        {
            StringBuilder sb = null;
            for (int i = 0; i < s.Length; i++)
            {
                char ch = s[i];
                bool pair = char.IsHighSurrogate(ch) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]);
                bool lone = !pair && char.IsSurrogate(ch);
                if (lone && sb == null) sb = new StringBuilder(s, 0, i, s.Length);
                if (sb != null)
                {
                    if (lone) sb.Append('\uFFFD');
                    else if (pair) { sb.Append(ch); sb.Append(s[i + 1]); }
                    else sb.Append(ch);
                }
                if (pair) i++;
            }
            return sb == null ? s : sb.ToString();
        }
    }
}
