// Mono tests of the C# host loops (unity_project/Assets/CosyVoice3/Runtime/Host) against the Python host loops.
// tests/csharp/host_vectors.py writes the vectors ($COSY_HOST_VECTORS/index.json); each case asserts the C# result
// equals Python's and appends it to $COSY_HOST_RESULTS (JSON lines), which tests/csharp/test_host.py compares again.
// Without $COSY_HOST_VECTORS the vector cases are absent and only the self-contained unit tests run.
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;
using NUnit.Framework;

namespace CosyVoice3.Tests
{
    /// <summary>Shared plumbing: the index, arrays by relative path, and the results file.</summary>
    static class HostVectors
    {
        static readonly VectorSet Vectors = new VectorSet("COSY_HOST");
        public static string Dir { get { return Vectors.Dir; } }
        public static JsonValue Index { get { return Vectors.Index; } }

        public static IEnumerable<TestCaseData> Of(string kind, string nameKey)
        {
            if (string.IsNullOrEmpty(Dir)) yield break;
            foreach (var v in Index.Get(kind).Items)
                yield return new TestCaseData(v).SetName("Host." + kind + "." + v.Get(nameKey).StringValue);
        }

        static readonly Dictionary<string, NpyArray> cache = new Dictionary<string, NpyArray>();

        public static NpyArray Array(string rel)
        {
            NpyArray a;
            if (!cache.TryGetValue(rel, out a)) cache[rel] = a = Npy.ReadFile(Path.Combine(Dir, rel));
            return a;
        }

        public static NpyArray Array(JsonValue rel) { return Array(rel.StringValue); }

        public static int[] Ints(JsonValue arr)
        {
            var r = new int[arr.Items.Count];
            for (int i = 0; i < r.Length; i++) r[i] = (int)arr.Items[i].NumberValue;
            return r;
        }

        public static string IntsJson(IList<int> xs)
        {
            var parts = new string[xs.Count];
            for (int i = 0; i < parts.Length; i++) parts[i] = xs[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
            return "[" + string.Join(", ", parts) + "]";
        }

        /// <summary>First flat index where two arrays differ bit for bit (-1: identical), or -2 for a dtype/shape mismatch.</summary>
        public static int FirstDifference(NpyArray want, NpyArray got)
        {
            if (want.IsInt != got.IsInt || want.ShapeText != got.ShapeText) return -2;
            if (want.IsInt)
            {
                for (int i = 0; i < want.Ints.Length; i++) if (want.Ints[i] != got.Ints[i]) return i;
                return -1;
            }
            var a = new int[want.Floats.Length];
            var b = new int[got.Floats.Length];
            Buffer.BlockCopy(want.Floats, 0, a, 0, a.Length * 4);
            Buffer.BlockCopy(got.Floats, 0, b, 0, b.Length * 4);
            for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return i;
            return -1;
        }

        public static void AssertBitEqual(NpyArray want, NpyArray got, string what)
        {
            int d = FirstDifference(want, got);
            if (d == -2) Assert.Fail(what + ": dtype/shape differ: want " + want.DTypeName + " " + want.ShapeText + ", got " + got.DTypeName + " " + got.ShapeText);
            if (d >= 0) Assert.Fail(what + ": differs at flat index " + d + ": want " + want[d].ToString("R") + ", got " + got[d].ToString("R"));
        }

        /// <summary>One JSON line of $COSY_HOST_RESULTS: raw JSON values keyed by name.</summary>
        public static void Write(string kind, string name, params string[] keyValues)
        {
            Vectors.Write(kind, name, keyValues);
        }
    }

    /// <summary>A graph runner that replays Python's recorded calls: every input must equal the recording bit for bit.</summary>
    sealed class ReplayRunner : IGraphRunner
    {
        readonly IList<JsonValue> calls;
        public int Next;

        public ReplayRunner(string callsFile)
        {
            calls = Json.Parse(File.ReadAllText(Path.Combine(HostVectors.Dir, callsFile)), callsFile).Items;
        }

        public int Count { get { return calls.Count; } }

        public Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs)
        {
            if (Next >= calls.Count) throw new AssertionException("call " + Next + " (" + graph + "): Python made only " + calls.Count + " calls");
            var c = calls[Next];
            string where = "call " + Next + " (" + graph + ")";
            Assert.AreEqual(c.Get("graph").StringValue, graph, where + ": graph differs from Python's call");
            var want = c.Get("inputs");
            var names = new List<string>();
            foreach (var kv in want.Members) names.Add(kv.Key);
            names.Sort(StringComparer.Ordinal);
            var gotNames = new List<string>(inputs.Keys);
            gotNames.Sort(StringComparer.Ordinal);
            Assert.AreEqual(string.Join(",", names.ToArray()), string.Join(",", gotNames.ToArray()), where + ": input names");
            foreach (var kv in want.Members) HostVectors.AssertBitEqual(HostVectors.Array(kv.Value), inputs[kv.Key], where + " input " + kv.Key);
            var outs = new Dictionary<string, NpyArray>();
            foreach (var kv in c.Get("outputs").Members)
            {
                var a = HostVectors.Array(kv.Value);   // copies: a loop must never be able to alter the recording
                outs[kv.Key] = a.IsInt ? NpyArray.FromInts((int[])a.Shape.Clone(), (int[])a.Ints.Clone())
                                       : NpyArray.FromFloats((int[])a.Shape.Clone(), (float[])a.Floats.Clone());
            }
            Next++;
            return outs;
        }

        public void AssertAllUsed(string what) { Assert.AreEqual(calls.Count, Next, what + ": number of graph calls"); }
    }

    public class HostRngTests
    {
        public static IEnumerable<TestCaseData> PcgCases() { return HostVectors.Of("pcg64", "seed"); }
        public static IEnumerable<TestCaseData> RasCases() { return HostVectors.Of("ras", "name"); }
        public static IEnumerable<TestCaseData> LogSoftmaxCases() { return HostVectors.Of("log_softmax", "name"); }
        public static IEnumerable<TestCaseData> MtCases() { return HostVectors.Of("mt", "name"); }

        [Test]
        public void Pcg64KnownValue()
        {
            // numpy: np.random.default_rng(0).random() == 0.6369616873214543
            Assert.AreEqual(0.6369616873214543, new Pcg64(0).Random(), 0.0, "default_rng(0).random()");
        }

        [Test]
        public void Mt19937ReferenceOutput()
        {
            // init_genrand(5489): the reference implementation's first output is 3499211612.
            var s = new int[Mt19937.N + 1];
            uint k = 5489;
            s[0] = unchecked((int)k);
            for (int i = 1; i < Mt19937.N; i++) { k = unchecked(1812433253u * (k ^ (k >> 30)) + (uint)i); s[i] = unchecked((int)k); }
            s[Mt19937.N] = Mt19937.N;
            Assert.AreEqual(3499211612u, new Mt19937(s).NextUInt32(), "first MT19937 output for seed 5489");
        }

        [Test]
        public void ArgMaxTakesTheFirstOfTies()
        {
            Assert.AreEqual(1, HostMath.ArgMax(new[] { 1f, 3f, 3f, 2f }), "np.argmax returns the first maximum");
            Assert.AreEqual(0, HostMath.ArgMax(new[] { float.NegativeInfinity, float.NegativeInfinity }), "all -inf");
            Assert.AreEqual(2, HostMath.ArgMax(new[] { 1f, 5f, float.NaN, 7f }), "NaN wins, as in numpy");
        }

        [Test]
        public void PairwiseSumBlocks()
        {
            // 1e8 + 1 + ... : the block structure decides which small terms survive; compare with a float64 sum.
            var a = new float[300];
            for (int i = 0; i < a.Length; i++) a[i] = i % 97 == 0 ? 1e8f : 1f;
            double exact = 0;
            foreach (var x in a) exact += x;
            float s = HostMath.PairwiseSum(a, 0, a.Length);
            Assert.IsTrue(Math.Abs(s - exact) <= 64, "pairwise sum close to the exact sum: " + s + " vs " + exact);
        }

        [Test, TestCaseSource(nameof(PcgCases))]
        public void Pcg64Stream(JsonValue v)
        {
            ulong seed = ulong.Parse(v.Get("seed").StringValue);
            var state = new Pcg64(seed).StateWords;
            var raw = new Pcg64(seed);
            var dbl = new Pcg64(seed);
            var raws = new List<string>();
            var doubles = new List<string>();
            foreach (var r in v.Get("raw").Items) raws.Add(raw.NextUInt64().ToString());
            foreach (var d in v.Get("doubles").Items) doubles.Add(dbl.Random().ToString("R", System.Globalization.CultureInfo.InvariantCulture));
            var stateStr = new List<string>();
            foreach (var w in state) stateStr.Add(VectorTests.Str(w.ToString()));
            var rawJson = raws.ConvertAll(VectorTests.Str).ToArray();
            HostVectors.Write("pcg64", v.Get("seed").StringValue, "state", "[" + string.Join(", ", stateStr.ToArray()) + "]",
                              "raw", "[" + string.Join(", ", rawJson) + "]", "doubles", "[" + string.Join(", ", doubles.ToArray()) + "]");
            for (int i = 0; i < 4; i++) Assert.AreEqual(v.Get("state").Items[i].StringValue, state[i].ToString(), "state word " + i);
            for (int i = 0; i < raws.Count; i++) Assert.AreEqual(v.Get("raw").Items[i].StringValue, raws[i], "raw " + i);
            for (int i = 0; i < doubles.Count; i++)
                Assert.AreEqual(double.Parse(v.Get("doubles").Items[i].StringValue, System.Globalization.CultureInfo.InvariantCulture),
                                double.Parse(doubles[i], System.Globalization.CultureInfo.InvariantCulture), 0.0, "double " + i);
        }

        [Test, TestCaseSource(nameof(RasCases))]
        public void RasDraws(JsonValue v)
        {
            var p = HostVectors.Index.Get("ras_params");
            var ps = new RasParams { TopP = p.Get("top_p").NumberValue, TopK = (int)p.Get("top_k").NumberValue,
                                     WinSize = (int)p.Get("win_size").NumberValue, TauR = p.Get("tau_r").NumberValue };
            var rng = new Pcg64(ulong.Parse(v.Get("seed").StringValue));
            var got = new List<int>();
            var want = new List<int>();
            foreach (var s in v.Get("steps").Items)
            {
                var logp = HostVectors.Array(s.Get("logp")).Floats;
                got.Add(LlmGenerator.RasSample(logp, HostVectors.Ints(s.Get("decoded")), ps, rng));
                want.Add((int)s.Get("token").NumberValue);
            }
            double next = rng.Random();
            HostVectors.Write("ras", v.Get("name").StringValue, "tokens", HostVectors.IntsJson(got), "next_double", VectorTests.Num(next));
            Assert.AreEqual(HostVectors.IntsJson(want), HostVectors.IntsJson(got), "RAS tokens");
            Assert.AreEqual(double.Parse(v.Get("next_double").StringValue, System.Globalization.CultureInfo.InvariantCulture), next, 0.0,
                            "generator position after the draws (same number of random() calls)");
        }

        [Test, TestCaseSource(nameof(LogSoftmaxCases))]
        public void LogSoftmax(JsonValue v)
        {
            var x = HostVectors.Array(v.Get("logits")).Floats;
            var want = HostVectors.Array(v.Get("logp")).Floats;
            var got = HostMath.LogSoftmax(x);
            long maxUlp = 0;
            int argmaxWant = HostMath.ArgMax(want), argmaxGot = HostMath.ArgMax(got);
            for (int i = 0; i < want.Length; i++) maxUlp = Math.Max(maxUlp, Ulps(want[i], got[i]));
            var e = HostVectors.Array(v.Get("exp")).Floats;
            float sum = HostMath.PairwiseSum(e, 0, e.Length), wantSum = HostVectors.Array(v.Get("sum")).Floats[0];
            HostVectors.Write("log_softmax", v.Get("name").StringValue, "max_ulp", maxUlp.ToString(),
                              "sum_equal", sum == wantSum ? "true" : "false", "argmax_equal", argmaxWant == argmaxGot ? "true" : "false");
            Assert.AreEqual(wantSum, sum, 0.0, "pairwise sum of numpy's exp values");
            Assert.AreEqual(argmaxWant, argmaxGot, "argmax");
        }

        static long Ulps(float a, float b)
        {
            if (a == b) return 0;
            if (float.IsInfinity(a) || float.IsInfinity(b) || float.IsNaN(a) || float.IsNaN(b)) return long.MaxValue;
            return Math.Abs(Ordered(a) - Ordered(b));
        }

        static long Ordered(float f)
        {
            int bits = BitConverter.ToInt32(BitConverter.GetBytes(f), 0);
            return bits < 0 ? -(long)(bits & 0x7fffffff) : bits;
        }

        [Test, TestCaseSource(nameof(MtCases))]
        public void NoiseContinuation(JsonValue v)
        {
            var noise = new HiftNoise(HostVectors.Array(v.Get("table")), HostVectors.Array(v.Get("state")));
            int frames = (int)v.Get("frames").NumberValue, spf = (int)v.Get("samples_per_frame").NumberValue;
            var want = HostVectors.Array(v.Get("expected"));
            var small = noise.ForFrames(1, spf);   // a short call first: the continuation must grow, not restart
            var got = noise.ForFrames(frames, spf);
            var again = noise.ForFrames(frames, spf);
            int diff = HostVectors.FirstDifference(want, got);
            HostVectors.Write("mt", v.Get("name").StringValue, "ok", diff == -1 ? "true" : "false", "first_difference", diff.ToString());
            HostVectors.AssertBitEqual(want, got, "noise rows");
            HostVectors.AssertBitEqual(want, again, "noise rows (second call)");
            for (int i = 0; i < small.Floats.Length; i++) Assert.AreEqual(want.Floats[i], small.Floats[i], 0.0, "first frame " + i);
        }
    }

    public class HostLoopTests
    {
        public static IEnumerable<TestCaseData> SilentCases() { return HostVectors.Of("silent", "name"); }
        public static IEnumerable<TestCaseData> ReplayCases() { return HostVectors.Of("replays", "name"); }

        static Bundle bundle;
        static Bundle TheBundle
        {
            get
            {
                if (bundle == null) bundle = Bundle.Load(HostVectors.Index.Get("bundle").StringValue);
                return bundle;
            }
        }

        [Test, TestCaseSource(nameof(SilentCases))]
        public void SilentFilter(JsonValue v)
        {
            var llm = new LlmGenerator(null, TheBundle.Component("llm").Constants);
            var got = llm.SilentFilter(HostVectors.Ints(v.Get("tokens")));
            HostVectors.Write("silent", v.Get("name").StringValue, "tokens", HostVectors.IntsJson(got));
            Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("expected"))), HostVectors.IntsJson(got), "filtered tokens");
        }

        [Test, TestCaseSource(nameof(ReplayCases))]
        public void Replay(JsonValue v)
        {
            string name = v.Get("name").StringValue, kind = v.Get("kind").StringValue;
            var replay = new ReplayRunner(v.Get("calls").StringValue);
            string error = null;
            var tokens = new List<int>();
            try
            {
                if (kind == "llm") tokens = ReplayLlm(v, replay);
                else if (kind == "flow") ReplayFlow(v, replay);
                else if (kind == "tts") tokens = ReplayTts(v, replay);
                else Assert.Fail("unknown replay kind " + kind);
                replay.AssertAllUsed(name);
            }
            catch (Exception e) { error = e.GetType().Name + ": " + e.Message; }
            HostVectors.Write("replay", name, "ok", error == null ? "true" : "false", "error", VectorTests.Str(error),
                              "tokens", HostVectors.IntsJson(tokens), "calls", replay.Next.ToString());
            if (error != null) Assert.Fail(name + ": " + error);
        }

        static Sampling SamplingOf(JsonValue s) { return s.Get("sampling").StringValue == "ras" ? Sampling.Ras : Sampling.Greedy; }

        static List<int> ReplayLlm(JsonValue v, ReplayRunner replay)
        {
            var s = v.Get("settings");
            var c = v.Get("case");
            var gen = new LlmGenerator(replay, TheBundle.Component("llm").Constants).Generate(
                HostVectors.Array(c.Get("text")).Ints, HostVectors.Array(c.Get("prompt_text")).Ints,
                HostVectors.Array(c.Get("prompt_speech_tokens")).Ints, SamplingOf(s), ulong.Parse(s.Get("seed").StringValue),
                s.Get("upstream_quirks").BoolValue);
            Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("tokens"))), HostVectors.IntsJson(gen.Tokens), "tokens");
            Assert.AreEqual((int)v.Get("stop_token").NumberValue, gen.StopToken, "stop token");
            Assert.AreEqual((int)v.Get("min_len").NumberValue, gen.MinLen, "min_len");
            Assert.AreEqual((int)v.Get("max_len").NumberValue, gen.MaxLen, "max_len");
            Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("tokens_for_flow"))), HostVectors.IntsJson(gen.TokensForFlow), "tokens for flow");
            return gen.Tokens;
        }

        static void ReplayFlow(JsonValue v, ReplayRunner replay)
        {
            var flowC = TheBundle.Component("flow");
            var noise = TheBundle.LoadArray(flowC.Data.Find(d => d.Name == Constants.String(flowC.Constants, "noise")));
            var flow = new EulerCfg(replay, flowC.Constants, noise);
            var ts = new List<float>();
            flow.OnStep = (step, t, x) => ts.Add(t);
            var c = v.Get("case");
            var s = v.Get("settings");
            var mel = flow.Synthesize(HostVectors.Array(c.Get("token")).Ints, HostVectors.Array(c.Get("prompt_token")).Ints,
                                      HostVectors.Array(c.Get("prompt_feat")), HostVectors.Array(c.Get("embedding")).Floats,
                                      s.Get("streaming").BoolValue, s.Get("finalize").BoolValue);
            HostVectors.AssertBitEqual(HostVectors.Array(v.Get("mel")), mel, "mel");
            var want = v.Get("t_after").Items;
            Assert.AreEqual(want.Count, ts.Count, "number of Euler steps");
            for (int i = 0; i < ts.Count; i++) Assert.AreEqual((float)want[i].NumberValue, ts[i], 0.0, "t after step " + (i + 1));
        }

        static List<int> ReplayTts(JsonValue v, ReplayRunner replay)
        {
            var s = v.Get("settings");
            var inputs = new Dictionary<string, NpyArray>();
            foreach (var kv in v.Get("case").Members) inputs[kv.Key] = HostVectors.Array(kv.Value);
            var synth = Synthesizer.FromBundle(TheBundle, replay);
            var pieces = new List<float[]>();
            var options = new SynthesisOptions
            {
                Sampling = SamplingOf(s), Seed = ulong.Parse(s.Get("seed").StringValue), Stream = s.Get("stream").BoolValue,
                UpstreamQuirks = s.Get("upstream_quirks").BoolValue, OnAudio = pieces.Add,
            };
            var result = synth.Synthesize(SynthesisCase.FromArrays(inputs), options);
            var got = result.ToArrays();
            foreach (var kv in v.Get("outputs").Members) HostVectors.AssertBitEqual(HostVectors.Array(kv.Value), got[kv.Key], kv.Key);
            if (options.Stream)
            {
                int n = 0;
                foreach (var p in pieces) n += p.Length;
                Assert.AreEqual(result.Speech.Length, n, "streamed pieces cover the waveform");
                Assert.IsTrue(pieces.Count >= 2, "the streaming replay emits several chunks");
            }
            if (v.Get("pipeline_golden").BoolValue)
            {
                // The EditMode test's path (PipelineGolden.Load + Check), with the replay in place of Sentis.
                replay.AssertAllUsed("tts");
                var golden = PipelineGolden.Load(TheBundle).Find(g => g.Name == v.Get("name").StringValue);
                Assert.IsNotNull(golden, "the manifest's pipeline golden");
                var again = new ReplayRunner(v.Get("calls").StringValue);
                foreach (var verdict in golden.Check(TheBundle, Synthesizer.FromBundle(TheBundle, again)))
                    Assert.IsTrue(verdict.Passed, "pipeline golden " + verdict.Output + ": " + verdict.Summary());
                again.AssertAllUsed("pipeline golden check");
            }
            return new List<int>(result.SpeechTokens);
        }
    }
}
