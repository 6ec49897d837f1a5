// LLM generation on the host, a 1:1 mirror of packager/runtime/llm_generate.py (upstream_ref README §L.1 prompt layout,
// §L.3 decode loop / quirk L3 / RAS sampling, §L.4 silent-token filter; docs/llm.md). Graph calls, in this order:
//   llm_speech_embed([SOS, TASK_ID, prompt speech ids]) ; llm_text_embed(prompt_text ++ text)
//   prompt = [SOS, text embeds, TASK_ID, prompt speech embeds]                            [1, L, D]
//   per step: llm_step(inputs_embeds, past_key, past_value) -> logits [1, S+200], present_* (carried as next past_*)
//             then llm_speech_embed([token]) is the next step's inputs_embeds             [1, 1, D]
// The same call order as Python matters: tests replay Python's recorded calls and compare every input bit for bit.
using System;
using System.Collections.Generic;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    public enum Sampling { Greedy, Ras }

    /// <summary>Result of one decode (llm_generate.Generation).</summary>
    public sealed class Generation
    {
        public List<int> Tokens = new List<int>();   // emitted speech tokens, stop id excluded
        public int StopToken = -1;                    // the stop id that ended decoding, -1 when max_len was reached
        public int MinLen, MaxLen;
        public List<int> TokensForFlow = new List<int>();   // after the silent-token filter
    }

    /// <summary>The RAS parameters of constants["sampling"].</summary>
    public sealed class RasParams
    {
        public double TopP, TauR;
        public int TopK, WinSize;
    }

    public sealed class LlmGenerator
    {
        /// <summary>The llm graphs by role (constants "graphs": text_embed, speech_embed, step).</summary>
        public readonly string TextEmbed, SpeechEmbed, Step;
        /// <summary>llm_step outputs carried as the next step's past_key / past_value (only ever passed back).</summary>
        public static readonly string[] CacheOutputs = { "present_key", "present_value" };

        readonly IGraphRunner runner;
        public readonly int SpeechTokenSize, TextVocabSize, Sos, TaskId, StopLow, StopHigh, MaxSilentRun, CacheMaxLen;
        public readonly double MinLenRatio, MaxLenRatio;
        public readonly RasParams Ras;
        readonly HashSet<int> silent;
        readonly int[] cacheShape;   // kv_cache.shape with "len" as -1
        int lenAxis = -1;

        /// <summary><paramref name="constants"/>: the llm component's manifest constants.</summary>
        public LlmGenerator(IGraphRunner runner, JsonValue constants)
        {
            this.runner = runner;
            var graphs = Constants.Node(constants, "graphs");
            TextEmbed = Constants.String(graphs, "text_embed");
            SpeechEmbed = Constants.String(graphs, "speech_embed");
            Step = Constants.String(graphs, "step");
            SpeechTokenSize = Constants.Int(constants, "speech_token_size");
            TextVocabSize = Constants.Int(constants, "text_vocab_size");
            var ids = Constants.Node(constants, "special_ids");
            Sos = Constants.Int(ids, "sos");
            TaskId = Constants.Int(ids, "task_id");
            var range = Constants.Ints(constants, "stop_range");
            StopLow = range[0];
            StopHigh = range[1];
            MinLenRatio = Constants.Number(constants, "min_len_ratio");
            MaxLenRatio = Constants.Number(constants, "max_len_ratio");
            var s = Constants.Node(constants, "sampling");
            Ras = new RasParams
            {
                TopP = Constants.Number(s, "top_p"), TopK = Constants.Int(s, "top_k"),
                WinSize = Constants.Int(s, "win_size"), TauR = Constants.Number(s, "tau_r"),
            };
            silent = new HashSet<int>(Constants.Ints(constants, "silent_tokens"));
            MaxSilentRun = Constants.Int(constants, "max_silent_run");
            var cache = Constants.Node(constants, "kv_cache");
            CacheMaxLen = Constants.Int(cache, "max_len");
            var dims = Constants.Node(cache, "shape").Items;
            cacheShape = new int[dims.Count];
            for (int i = 0; i < dims.Count; i++)
            {
                if (dims[i].Kind == JsonKind.String && dims[i].StringValue == "len") { cacheShape[i] = -1; lenAxis = i; }
                else cacheShape[i] = (int)dims[i].NumberValue;
            }
            if (lenAxis < 0) throw new BundleException(cache.Path, "kv_cache.shape has no \"len\" axis", "one \"len\" dim", null);
        }

        /// <summary>A progress estimate of the speech tokens for <paramref name="textTokens"/> text tokens: 3 x min_len
        /// (about 6 per token with upstream's ratios, near what English speech takes), never above max_len. Only for
        /// progress bars; generation stops where the LLM says.</summary>
        public int ExpectedTokens(int textTokens)
        {
            int min = (int)(MinLenRatio * textTokens), max = (int)(MaxLenRatio * textTokens);
            return Math.Max(1, Math.Min(max, 3 * min));
        }

        // ------------------------------------------------------------------------------------------ prompt (§L.1)

        /// <summary>[SOS, embed(prompt_text ++ text), TASK_ID, speech_embed(prompt_speech_tokens)] -> float32 [1, L, D].</summary>
        public NpyArray BuildPrompt(int[] text, int[] promptText, int[] promptSpeechTokens)
        {
            Tensors.CheckIds("prompt_text", promptText, 0, TextVocabSize);
            Tensors.CheckIds("text", text, 0, TextVocabSize);
            Tensors.CheckIds("prompt_speech_tokens", promptSpeechTokens, 0, SpeechTokenSize);
            var textIds = new int[promptText.Length + text.Length];
            Array.Copy(promptText, textIds, promptText.Length);
            Array.Copy(text, 0, textIds, promptText.Length, text.Length);
            if (textIds.Length == 0) throw new HostInputException("text", "prompt_text ++ text is empty", "at least one text token", null);
            var spIds = new int[2 + promptSpeechTokens.Length];
            spIds[0] = Sos;
            spIds[1] = TaskId;
            Array.Copy(promptSpeechTokens, 0, spIds, 2, promptSpeechTokens.Length);
            var sp = Tensors.Output(runner.Run(SpeechEmbed, In("speech_ids", Tensors.Ints(spIds, 1, spIds.Length))), SpeechEmbed, "speech_embeds");
            var te = Tensors.Output(runner.Run(TextEmbed, In("text_ids", Tensors.Ints(textIds, 1, textIds.Length))), TextEmbed, "text_embeds");
            int d = sp.Shape[2], nt = te.Shape[1], np = promptSpeechTokens.Length;
            int len = 1 + nt + 1 + np;
            var x = new float[len * d];
            Array.Copy(sp.Floats, 0, x, 0, d);                       // SOS
            Array.Copy(te.Floats, 0, x, d, nt * d);                   // text
            Array.Copy(sp.Floats, d, x, (1 + nt) * d, d);             // TASK_ID
            Array.Copy(sp.Floats, 2 * d, x, (2 + nt) * d, np * d);    // prompt speech tokens
            return Tensors.Floats(x, 1, len, d);
        }

        static Dictionary<string, NpyArray> In(string name, NpyArray a)
        {
            return new Dictionary<string, NpyArray> { { name, a } };
        }

        // ------------------------------------------------------------------------------------------ sampling (§L.3)

        /// <summary>llm_generate._draw: the first i with u * sum(p) &lt; cumsum(p)[i] (float64 sums), u = rng.Random().</summary>
        public static int Draw(float[] p, Pcg64 rng)
        {
            var c = new double[p.Length];
            double acc = 0;
            for (int i = 0; i < p.Length; i++) { acc += p[i]; c[i] = acc; }
            double u = rng.Random() * c[c.Length - 1];
            // np.searchsorted(c, u, side="right"): the first index with c[i] > u
            int lo = 0, hi = c.Length;
            while (lo < hi)
            {
                int mid = (lo + hi) >> 1;
                if (u < c[mid]) hi = mid; else lo = mid + 1;
            }
            return Math.Min(lo, p.Length - 1);
        }

        /// <summary>llm_generate.ras_sample: nucleus (top_p, top_k) draw; if the id repeats >= win_size * tau_r times in
        /// the last win_size tokens, draw again from the full distribution without it.</summary>
        public static int RasSample(float[] logp, IList<int> decoded, RasParams ps, Pcg64 rng)
        {
            var probs = HostMath.Softmax(logp);
            // argsort(-probs, kind="stable"): descending, ties keep the lower id first
            var order = new int[probs.Length];
            for (int i = 0; i < order.Length; i++) order[i] = i;
            var keys = new float[probs.Length];
            for (int i = 0; i < keys.Length; i++) keys[i] = -probs[i];
            StableSort(keys, order);
            var chosen = new List<int>();
            float mass = 0f, topP = (float)ps.TopP;   // numpy 2 compares float32 with a Python float in float32 (NEP 50)
            foreach (int idx in order)
            {
                if (mass < topP && chosen.Count < ps.TopK)
                {
                    chosen.Add(idx);
                    mass = (float)(mass + probs[idx]);
                }
                else break;
            }
            var sub = new float[chosen.Count];
            for (int i = 0; i < sub.Length; i++) sub[i] = probs[chosen[i]];
            int token = chosen[Draw(sub, rng)];
            int start = Math.Max(0, decoded.Count - ps.WinSize), count = 0;
            for (int i = start; i < decoded.Count; i++) if (decoded[i] == token) count++;
            if (count >= ps.WinSize * ps.TauR)
            {
                var scores = (float[])logp.Clone();
                scores[token] = float.NegativeInfinity;
                token = Draw(HostMath.Softmax(scores), rng);
            }
            return token;
        }

        /// <summary>Stable ascending merge sort of <paramref name="keys"/>, permuting <paramref name="order"/> alongside
        /// (numpy's stable sort; -0.0 == 0.0 keep their order; logits never hold NaN).</summary>
        static void StableSort(float[] keys, int[] order)
        {
            int n = keys.Length;
            var k2 = new float[n];
            var o2 = new int[n];
            for (int width = 1; width < n; width *= 2)
            {
                for (int lo = 0; lo < n; lo += 2 * width)
                {
                    int mid = Math.Min(lo + width, n), hi = Math.Min(lo + 2 * width, n), a = lo, b = mid, k = lo;
                    while (a < mid && b < hi)
                    {
                        if (keys[b] < keys[a]) { k2[k] = keys[b]; o2[k++] = order[b++]; }
                        else { k2[k] = keys[a]; o2[k++] = order[a++]; }
                    }
                    while (a < mid) { k2[k] = keys[a]; o2[k++] = order[a++]; }
                    while (b < hi) { k2[k] = keys[b]; o2[k++] = order[b++]; }
                }
                Array.Copy(k2, keys, n);
                Array.Copy(o2, order, n);
            }
        }

        /// <summary>Drop silent tokens once more than max_silent_run occurred in a row (a non-silent token resets).</summary>
        public List<int> SilentFilter(IList<int> tokens)
        {
            var kept = new List<int>();
            int run = 0;
            foreach (int t in tokens)
            {
                if (silent.Contains(t))
                {
                    run++;
                    if (run > MaxSilentRun) continue;
                }
                else run = 0;
                kept.Add(t);
            }
            return kept;
        }

        // ------------------------------------------------------------------------------------------ decode (§L.3)

        /// <summary>
        /// Generate speech tokens. Greedy: argmax, first index on ties. Ras: numpy-identical seeded RAS.
        /// <paramref name="upstreamQuirks"/> = true masks only SOS before min_len (upstream quirk L3: EOS can end decoding
        /// early); false masks the whole stop range. <paramref name="minLen"/>/<paramref name="maxLen"/> &lt; 0: from the ratios.
        /// </summary>
        public Generation Generate(int[] text, int[] promptText, int[] promptSpeechTokens, Sampling sampling = Sampling.Greedy,
                                   ulong seed = 0, bool upstreamQuirks = true, int minLen = -1, int maxLen = -1)
        {
            var gen = new Generation
            {
                MinLen = minLen >= 0 ? minLen : (int)(MinLenRatio * text.Length),
                MaxLen = maxLen >= 0 ? maxLen : (int)(MaxLenRatio * text.Length),
            };
            var rng = sampling == Sampling.Ras ? new Pcg64(seed) : null;
            int maskLo = upstreamQuirks ? SpeechTokenSize : StopLow, maskHi = upstreamQuirks ? SpeechTokenSize + 1 : StopHigh;

            var embeds = BuildPrompt(text, promptText, promptSpeechTokens);
            var shape = (int[])cacheShape.Clone();
            shape[lenAxis] = 0;
            var pastK = Tensors.Floats(new float[0], shape);
            var pastV = Tensors.Floats(new float[0], (int[])shape.Clone());
            if (embeds.Shape[1] + gen.MaxLen > CacheMaxLen)
                throw new HostInputException("text", "prompt + max_len exceeds the cache capacity", "<= " + CacheMaxLen + " positions",
                                             (embeds.Shape[1] + gen.MaxLen).ToString());
            for (int i = 0; i < gen.MaxLen; i++)
            {
                var outs = runner.Run(Step, new Dictionary<string, NpyArray>
                {
                    { "inputs_embeds", embeds }, { "past_key", pastK }, { "past_value", pastV },
                });
                pastK = Tensors.Output(outs, Step, CacheOutputs[0]);
                pastV = Tensors.Output(outs, Step, CacheOutputs[1]);
                var logits = Tensors.Output(outs, Step, "logits");
                var logp = HostMath.LogSoftmax(logits.Floats);   // logits [1, V]: row 0 is the whole array
                if (i < gen.MinLen)
                    for (int m = maskLo; m < maskHi && m < logp.Length; m++) logp[m] = float.NegativeInfinity;
                int token = rng == null ? HostMath.ArgMax(logp) : RasSample(logp, gen.Tokens, Ras, rng);
                if (StopLow <= token && token < StopHigh)
                {
                    gen.StopToken = token;
                    break;
                }
                gen.Tokens.Add(token);
                embeds = Tensors.Output(runner.Run(SpeechEmbed, In("speech_ids", Tensors.Ints(new[] { token }, 1, 1))), SpeechEmbed, "speech_embeds");
            }
            gen.TokensForFlow = SilentFilter(gen.Tokens);
            return gen;
        }
    }
}
