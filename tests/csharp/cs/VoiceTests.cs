// Mono tests of VoicePack.cs and Synthesizer's text API against packager/frontend/voicepack.py and packager/runtime/tts.py.
// tests/csharp/voice_vectors.py writes the vectors ($COSY_VOICE_VECTORS/index.json): frontend cases (texts x modes),
// voice packs (good and broken) with Python's verdicts, and recorded tts.speak runs; each case asserts the C# result
// equals Python's and appends it to $COSY_VOICE_RESULTS (JSON lines), which tests/csharp/test_voice.py compares again.
// Without $COSY_VOICE_VECTORS the vector cases are absent and only the self-contained unit tests run.
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;
using NUnit.Framework;

namespace CosyVoice3.Tests
{
    static class VoiceVectors
    {
        static readonly VectorSet Vectors = new VectorSet("COSY_VOICE");
        public static string Dir { get { return Vectors.Dir; } }
        public static JsonValue Index { get { return Vectors.Index; } }

        public static IEnumerable<TestCaseData> Of(string kind)
        {
            if (string.IsNullOrEmpty(Dir)) yield break;
            foreach (var v in Index.Get(kind).Items)
                yield return new TestCaseData(v).SetName("Voice." + kind + "." + v.Get("name").StringValue);
        }

        static Bundle bundle;
        public static Bundle TheBundle
        {
            get
            {
                if (bundle == null) bundle = Bundle.Load(Index.Get("bundle").StringValue);
                return bundle;
            }
        }

        static VoicePack voice;
        public static VoicePack TheVoice
        {
            get
            {
                if (voice == null) voice = VoicePack.Load(Index.Get("voice").StringValue);
                return voice;
            }
        }

        static readonly Dictionary<string, NpyArray> cache = new Dictionary<string, NpyArray>();

        public static NpyArray Array(string rel)
        {
            NpyArray a;
            if (!cache.TryGetValue(rel, out a)) cache[rel] = a = Npy.ReadFile(Path.Combine(Dir, rel));
            return a;
        }

        public static void Write(string kind, string name, params string[] keyValues)
        {
            Vectors.Write(kind, name, keyValues);
        }

        public static string Bool(bool? b) { return b == null ? "null" : b.Value ? "true" : "false"; }

        public static string StrList(IList<string> xs)
        {
            var parts = new string[xs.Count];
            for (int i = 0; i < parts.Length; i++) parts[i] = VectorTests.Str(xs[i]);
            return "[" + string.Join(", ", parts) + "]";
        }

        public static string IdLists(IList<int[]> xs)
        {
            var parts = new string[xs.Count];
            for (int i = 0; i < parts.Length; i++) parts[i] = HostVectors.IntsJson(xs[i]);
            return "[" + string.Join(", ", parts) + "]";
        }

        /// <summary>A Synthesizer over the vector bundle (tokenizer and manifest from FromBundle) and <paramref name="runner"/>.</summary>
        public static Synthesizer Synth(IGraphRunner runner) { return Synthesizer.FromBundle(TheBundle, runner); }

        static Synthesizer noGraphs;
        /// <summary>One shared Synthesizer whose runner refuses every graph call (frontend cases build cases only).</summary>
        public static Synthesizer NoGraphs { get { return noGraphs ?? (noGraphs = Synth(new NoGraphRunner())); } }

        public static SynthesisMode ModeOf(string m)
        {
            if (m == "zero_shot") return SynthesisMode.ZeroShot;
            if (m == "instruct") return SynthesisMode.Instruct;
            if (m == "cross_lingual") return SynthesisMode.CrossLingual;
            throw new ArgumentException("unknown mode " + m);
        }
    }

    /// <summary>Replays recorded graph calls (from $COSY_VOICE_VECTORS); every input must equal the recording bit for bit.</summary>
    sealed class VoiceReplayRunner : IGraphRunner
    {
        readonly IList<JsonValue> calls;
        public int Next;

        public VoiceReplayRunner(string callsFile)
        {
            calls = callsFile == null ? new List<JsonValue>() : Json.Parse(File.ReadAllText(Path.Combine(VoiceVectors.Dir, callsFile)), callsFile).Items;
        }

        public int Count { get { return calls.Count; } }

        public Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs)
        {
            string where = "call " + Next + " (" + graph + ")";
            if (Next >= calls.Count) throw new AssertionException(where + ": Python made only " + calls.Count + " calls");
            var c = calls[Next];
            Assert.AreEqual(c.Get("graph").StringValue, graph, where + ": graph differs from Python's call");
            var names = new List<string>();
            foreach (var kv in c.Get("inputs").Members) names.Add(kv.Key);
            names.Sort(StringComparer.Ordinal);
            var gotNames = new List<string>(inputs.Keys);
            gotNames.Sort(StringComparer.Ordinal);
            Assert.AreEqual(string.Join(",", names.ToArray()), string.Join(",", gotNames.ToArray()), where + ": input names");
            foreach (var kv in c.Get("inputs").Members)
                HostVectors.AssertBitEqual(VoiceVectors.Array(kv.Value.StringValue), inputs[kv.Key], where + " input " + kv.Key);
            var outs = new Dictionary<string, NpyArray>();
            foreach (var kv in c.Get("outputs").Members)
            {
                var a = VoiceVectors.Array(kv.Value.StringValue);
                outs[kv.Key] = a.IsInt ? NpyArray.FromInts((int[])a.Shape.Clone(), (int[])a.Ints.Clone())
                                       : NpyArray.FromFloats((int[])a.Shape.Clone(), (float[])a.Floats.Clone());
            }
            Next++;
            return outs;
        }
    }

    /// <summary>A runner for code paths that must not run any graph.</summary>
    sealed class NoGraphRunner : IGraphRunner
    {
        public int Calls;
        public Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs)
        {
            Calls++;
            throw new AssertionException("graph " + graph + " was run, but no graph call was expected");
        }
    }

    public class VoicePackTests
    {
        public static IEnumerable<TestCaseData> PackCases() { return VoiceVectors.Of("packs"); }

        [Test, TestCaseSource(nameof(PackCases))]
        public void PackVerdict(JsonValue v)
        {
            string name = v.Get("name").StringValue;
            var py = v.Get("python");
            bool ok = true;
            bool? modelOk = null;
            string error = null;
            VoicePack pack = null;
            try { pack = VoicePack.Load(v.Get("path").StringValue); }
            catch (BundleException e) { ok = false; error = e.Message; }
            if (pack != null)
            {
                try { pack.CheckModel(VoiceVectors.TheBundle.Manifest); modelOk = true; }
                catch (BundleException e) { modelOk = false; error = e.Message; }
            }
            VoiceVectors.Write("pack", name, "ok", VoiceVectors.Bool(ok), "model_ok", VoiceVectors.Bool(modelOk), "error", VectorTests.Str(error));
            Assert.AreEqual(py.Get("ok").BoolValue, ok, name + ": load verdict (C#: " + (error ?? "accepted") + ")");
            if (ok)
            {
                Assert.AreEqual(py.Get("model_ok").BoolValue, modelOk.Value, name + ": model check (C#: " + (error ?? "accepted") + ")");
                if (modelOk.Value) AssertSameArrays(VoiceVectors.TheVoice, pack, name);
            }
            else Assert.IsTrue(error.Length > 0 && error.IndexOf(".voice", StringComparison.Ordinal) >= 0, name + ": the error names the pack: " + error);
        }

        static void AssertSameArrays(VoicePack want, VoicePack got, string what)
        {
            Assert.AreEqual(want.ModelId, got.ModelId, what + ": model id");
            Assert.AreEqual(want.TokenMelRatio, got.TokenMelRatio, what + ": token_mel_ratio");
            Assert.AreEqual(want.Transcript, got.Transcript, what + ": transcript");
            Assert.AreEqual(HostVectors.IntsJson(want.PromptText), HostVectors.IntsJson(got.PromptText), what + ": prompt_text");
            Assert.AreEqual(HostVectors.IntsJson(want.PromptSpeechToken), HostVectors.IntsJson(got.PromptSpeechToken), what + ": prompt_speech_token");
            HostVectors.AssertBitEqual(want.PromptSpeechFeat, got.PromptSpeechFeat, what + ": prompt_speech_feat");
            HostVectors.AssertBitEqual(Tensors.Floats(want.Embedding, 1, want.Embedding.Length), Tensors.Floats(got.Embedding, 1, got.Embedding.Length), what + ": embedding");
        }

        [Test]
        public void SynthesizerReadsStreamScheduleAndEmbeddingWidthFromTheManifest()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var flow = VoiceVectors.TheBundle.Component("flow").Constants;
            var stream = Constants.Node(flow, "stream");
            var s = VoiceVectors.NoGraphs;
            Assert.AreEqual(Constants.Int(stream, "token_hop"), s.TokenHop, "token_hop");
            Assert.AreEqual(Constants.Int(stream, "token_max_hop"), s.TokenMaxHop, "token_max_hop");
            Assert.AreEqual(Constants.Int(stream, "scale"), s.StreamScale, "scale");
            Assert.AreEqual(Constants.Int(flow, "spk_embed_dim"), s.LlmEmbeddingDim, "llm_embedding width");
            Assert.AreEqual(Constants.Int(flow, "spk_embed_dim"), s.Flow.SpkEmbedDim, "flow_embedding width");
        }

        [Test]
        public void TheVectorVoiceReadsLikeNumpy()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var pack = VoiceVectors.TheVoice;
            string dir = VoiceVectors.Index.Get("voice").StringValue;
            Assert.AreEqual(HostVectors.IntsJson(Npy.ReadFile(Path.Combine(dir, "prompt_text.npy.bytes")).Ints), HostVectors.IntsJson(pack.PromptText), "prompt_text");
            HostVectors.AssertBitEqual(Npy.ReadFile(Path.Combine(dir, "prompt_speech_feat.npy.bytes")), pack.PromptSpeechFeat, "prompt_speech_feat");
            Assert.AreEqual(Constants.Int(VoiceVectors.TheBundle.Component("flow").Constants, "spk_embed_dim"), pack.Embedding.Length, "embedding size");
            Assert.AreEqual(pack.TokenMelRatio * pack.PromptSpeechToken.Length, pack.PromptSpeechFeat.Shape[1], "frames");
            Assert.AreEqual(VoiceVectors.TheBundle.Manifest.ModelId, pack.ModelId, "model id");
            Assert.IsTrue(pack.PromptTextString.StartsWith(VoicePack.SystemPrompt + Qwen2Tokenizer.EndOfPrompt, StringComparison.Ordinal), "prompt text");
            Assert.AreEqual(HostVectors.IntsJson(VoiceVectors.Synth(new NoGraphRunner()).Tokenizer.Encode(pack.PromptTextString)), HostVectors.IntsJson(pack.PromptText),
                            "prompt_text = the bundle tokenizer on prompt.text");
        }

        [Test]
        public void PlainFileNames()
        {
            string reason;
            foreach (var ok in new[] { "prompt_text.npy.bytes", "a-b.c_d.npy.bytes", "x.npy.bytes" })
                Assert.IsTrue(VoicePack.IsPlainFileName(ok, out reason), ok + ": " + reason);
            foreach (var bad in new[] { "", ".", "..", ".npy.bytes", "sub/x.npy.bytes", "..\\x.npy.bytes", "/x.npy.bytes", "x.npy", "x.npy.bytes\n", "x y.npy.bytes", "\u00e9.npy.bytes" })
                Assert.IsFalse(VoicePack.IsPlainFileName(bad, out reason), "accepted " + VectorTests.Str(bad));
        }

        static VoicePack Small(string modelId)
        {
            return VoicePack.FromArrays("small", modelId, new[] { 1, 2, 3 }, new[] { 4, 5 }, NpyArray.FromFloats(new[] { 1, 4, 80 }, new float[320]),
                                        new float[192], 2, "hi");
        }

        [Test]
        public void FromArraysChecksLikeLoad()
        {
            var id = new string('a', 64);
            var p = Small(id);
            Assert.AreEqual(2, p.PromptSpeechToken.Length, "tokens");
            Assert.IsNull(p.Folder, "no folder");
            var e = Assert.Throws<BundleException>(() => VoicePack.FromArrays("x", id, new int[0], new[] { 1, 2 }, NpyArray.FromFloats(new[] { 1, 5, 80 }, new float[400]), new float[192]));
            Assert.IsTrue(e.Message.Contains("token_mel_ratio x prompt_speech_token"), e.Message);
            var nan = new float[192];
            nan[3] = float.NaN;
            e = Assert.Throws<BundleException>(() => VoicePack.FromArrays("x", id, new int[0], new[] { 1, 2 }, NpyArray.FromFloats(new[] { 1, 4, 80 }, new float[320]), nan));
            Assert.IsTrue(e.Message.Contains("NaN"), e.Message);
            e = Assert.Throws<BundleException>(() => VoicePack.FromArrays("x", "not-a-sha", new int[0], new[] { 1 }, NpyArray.FromFloats(new[] { 1, 2, 80 }, new float[160]), new float[192]));
            Assert.IsTrue(e.Message.Contains("sha256"), e.Message);
        }

        [Test]
        public void CheckModelNamesBothModels()
        {
            var manifest = new BundleManifest { ModelId = new string('b', 64), BundleName = "my-bundle" };
            Small(new string('b', 64)).CheckModel(manifest);   // same model: fine
            var e = Assert.Throws<BundleException>(() => Small(new string('a', 64)).CheckModel(manifest));
            Assert.IsTrue(e.Message.Contains("this voice pack was made for another model"), e.Message);
            Assert.IsTrue(e.Message.Contains("model.model_id") && e.Message.Contains("aaaaaaaaaaaa") && e.Message.Contains("bbbbbbbbbbbb")
                          && e.Message.Contains("my-bundle") && e.Message.Contains("packager voice"), e.Message);
        }

        [Test]
        public void LoadMissingFolder()
        {
            var e = Assert.Throws<BundleException>(() => VoicePack.Load(Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("N") + ".voice")));
            Assert.IsTrue(e.Message.Contains("voice pack not found"), e.Message);
        }

        [Test]
        public void InstructPromptWrapping()
        {
            Assert.AreEqual("You are a helpful assistant. Speak slowly.<|endofprompt|>", Synthesizer.InstructPrompt("  Speak slowly.\n"), "wrapped and stripped");
            Assert.AreEqual("Be calm.<|endofprompt|>", Synthesizer.InstructPrompt("Be calm.<|endofprompt|>"), "as given");
            var e = Assert.Throws<HostInputException>(() => Synthesizer.InstructPrompt(" \t"));
            Assert.IsTrue(e.Message.Contains("empty instruction"), e.Message);
            Assert.Throws<HostInputException>(() => Synthesizer.InstructPrompt(null));
        }
    }

    public class VoiceTextTests
    {
        public static IEnumerable<TestCaseData> FrontendCases() { return VoiceVectors.Of("frontend"); }
        public static IEnumerable<TestCaseData> SpeakCases() { return VoiceVectors.Of("speak"); }

        [Test, TestCaseSource(nameof(FrontendCases))]
        public void Frontend(JsonValue v)
        {
            string name = v.Get("name").StringValue;
            var synth = VoiceVectors.NoGraphs;
            var voice = VoiceVectors.TheVoice;
            var instruction = v.Get("instruction");
            List<TextCase> cases = null;
            string error = null;
            try
            {
                cases = synth.BuildCases(v.Get("text").StringValue, voice, VoiceVectors.ModeOf(v.Get("mode").StringValue),
                                         instruction.Kind == JsonKind.Null ? null : instruction.StringValue);
            }
            catch (HostInputException e) { error = e.Message; }
            var pieces = new List<string>();
            var ids = new List<int[]>();
            if (cases != null)
                foreach (var c in cases) { pieces.Add(c.Text); ids.Add(c.Case.Text); }
            VoiceVectors.Write("frontend", name, "ok", VoiceVectors.Bool(error == null), "error", VectorTests.Str(error),
                               "pieces", VoiceVectors.StrList(pieces), "text_ids", VoiceVectors.IdLists(ids),
                               "prompt_text", cases != null && cases.Count > 0 ? HostVectors.IntsJson(cases[0].Case.PromptText) : "null",
                               "llm_prompt_speech_token", cases != null && cases.Count > 0 ? HostVectors.IntsJson(cases[0].Case.LlmPromptSpeechToken) : "null");
            if (v.Has("error"))
            {
                Assert.IsNotNull(error, name + ": Python refused (" + v.Get("error").StringValue + "), C# accepted");
                return;
            }
            Assert.IsNull(error, name + ": C# refused: " + error);
            var wantPieces = v.Get("pieces").Items;
            Assert.AreEqual(wantPieces.Count, cases.Count, name + ": number of pieces");
            for (int k = 0; k < cases.Count; k++)
            {
                Assert.AreEqual(wantPieces[k].StringValue, cases[k].Text, name + ": piece " + k);
                Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("text_ids").Items[k])), HostVectors.IntsJson(cases[k].Case.Text), name + ": text ids of piece " + k);
                Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("prompt_text"))), HostVectors.IntsJson(cases[k].Case.PromptText), name + ": prompt_text");
                Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("llm_prompt_speech_token"))), HostVectors.IntsJson(cases[k].Case.LlmPromptSpeechToken),
                                name + ": llm_prompt_speech_token");
                var c = cases[k].Case;   // the flow side is always the voice's
                Assert.IsTrue(ReferenceEquals(c.FlowPromptSpeechToken, voice.PromptSpeechToken) && ReferenceEquals(c.PromptSpeechFeat, voice.PromptSpeechFeat)
                              && ReferenceEquals(c.LlmEmbedding, voice.Embedding) && ReferenceEquals(c.FlowEmbedding, voice.Embedding), name + ": flow inputs are the voice's");
            }
        }

        [Test, TestCaseSource(nameof(SpeakCases))]
        public void Speak(JsonValue v)
        {
            string name = v.Get("name").StringValue;
            var replay = new VoiceReplayRunner(v.Get("calls").StringValue);
            var synth = VoiceVectors.Synth(replay);
            var s = v.Get("settings");
            var chunks = new List<int>();
            var options = new SynthesisOptions
            {
                Sampling = s.Get("sampling").StringValue == "ras" ? Sampling.Ras : Sampling.Greedy,
                Seed = ulong.Parse(s.Get("seed").StringValue), Stream = s.Get("stream").BoolValue,
                UpstreamQuirks = s.Get("upstream_quirks").BoolValue, OnAudio = a => chunks.Add(a.Length),
            };
            string text = v.Get("text").StringValue, mode = v.Get("mode").StringValue;
            SpeechResult res = null;
            string error = null;
            try
            {
                if (mode == "zero_shot") res = synth.Synthesize(text, VoiceVectors.TheVoice, options);
                else if (mode == "instruct") res = synth.SynthesizeInstruct(text, v.Get("instruction").StringValue, VoiceVectors.TheVoice, options);
                else res = synth.SynthesizeCrossLingual(text, VoiceVectors.TheVoice, options);
            }
            catch (Exception e) { error = e.GetType().Name + ": " + e.Message; }
            int diff = res == null ? -3 : HostVectors.FirstDifference(VoiceVectors.Array(v.Get("speech").StringValue), Tensors.Floats(res.Speech, 1, res.Speech.Length));
            VoiceVectors.Write("speak", name, "ok", VoiceVectors.Bool(error == null), "error", VectorTests.Str(error), "calls", replay.Next.ToString(),
                               "first_difference", diff.ToString(), "pieces", res == null ? "[]" : VoiceVectors.StrList(res.Pieces),
                               "tokens", res == null ? "[]" : VoiceVectors.IdLists(res.SpeechTokens), "chunks", HostVectors.IntsJson(chunks));
            Assert.IsNull(error, name + ": " + error);
            Assert.AreEqual(replay.Count, replay.Next, name + ": number of graph calls");
            HostVectors.AssertBitEqual(VoiceVectors.Array(v.Get("speech").StringValue), Tensors.Floats(res.Speech, 1, res.Speech.Length), name + ": speech");
            var wantPieces = v.Get("pieces").Items;
            Assert.AreEqual(wantPieces.Count, res.Pieces.Count, name + ": pieces");
            for (int k = 0; k < wantPieces.Count; k++)
            {
                Assert.AreEqual(wantPieces[k].StringValue, res.Pieces[k], name + ": piece " + k);
                Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("tokens").Items[k])), HostVectors.IntsJson(res.SpeechTokens[k]), name + ": tokens of piece " + k);
            }
            Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("chunks"))), HostVectors.IntsJson(chunks), name + ": OnAudio chunk sizes");
            Assert.AreEqual(VoiceVectors.Index.Get("speak").Items[0].Get("sample_rate").NumberValue, (double)res.SampleRate, name + ": sample rate");
        }

        [Test]
        public void OtherModelRefusedBeforeAnyGraphCall()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            string path = null;
            foreach (var p in VoiceVectors.Index.Get("packs").Items) if (p.Get("name").StringValue == "other_model_id") path = p.Get("path").StringValue;
            var other = VoicePack.Load(path);
            var runner = new NoGraphRunner();
            var synth = VoiceVectors.Synth(runner);
            var e = Assert.Throws<BundleException>(() => synth.Synthesize("Hello.", other));
            Assert.IsTrue(e.Message.Contains("another model"), e.Message);
            Assert.Throws<BundleException>(() => synth.SynthesizeInstruct("", "", other));   // the model check comes first
            Assert.Throws<BundleException>(() => synth.SynthesizeCrossLingual("...", other));
            Assert.AreEqual(0, runner.Calls, "graph calls");
        }

        [Test]
        public void TextErrorsBeforeAnyGraphCall()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var runner = new NoGraphRunner();
            var synth = VoiceVectors.Synth(runner);
            foreach (var t in new[] { "", "  \n", "...", "?!", null })
            {
                var e = Assert.Throws<HostInputException>(() => synth.Synthesize(t, VoiceVectors.TheVoice));
                Assert.IsTrue(e.Key == "text" && e.Message.Contains("text with at least one letter or digit"), e.Message);
            }
            var ei = Assert.Throws<HostInputException>(() => synth.SynthesizeInstruct("Hello.", "  ", VoiceVectors.TheVoice));
            Assert.AreEqual("instruction", ei.Key, ei.Message);
            Assert.AreEqual(0, runner.Calls, "graph calls");
        }

        [Test]
        public void FromBundleLoadsTokenizerAndManifest()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var synth = VoiceVectors.Synth(new NoGraphRunner());
            Assert.IsNotNull(synth.Tokenizer, "the tiny bundle ships a tokenizer");
            Assert.AreEqual(VoiceVectors.TheBundle.Manifest.ModelId, synth.Manifest.ModelId, "manifest");
        }
    }
}
