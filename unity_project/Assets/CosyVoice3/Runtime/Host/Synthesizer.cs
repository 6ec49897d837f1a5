// CosyVoice3 tts() over a bundle's graphs, a 1:1 mirror of packager/synth.py (docs/unity_runtime.md):
//   LLM generation -> silent-token filter -> flow (Euler/CFG) -> HiFT (noise rows [0, 480 T), continued past the cap)
// Non-streaming reproduces upstream CosyVoice3Model.tts(stream=False). Streaming follows upstream's schedule
// (synth._synthesize_stream): token hops 25 -> 50 -> 100 (the first padded so that prompt + hop is a multiple of 25),
// each chunk re-runs the flow on prompt + all tokens so far + the look-ahead tokens with the chunked attention and
// finalize = false, HiFT re-runs on the accumulated mel and only new samples are emitted, then one finalize call.
using System;
using System.Collections.Generic;
using CosyVoice3.Bundles;

namespace CosyVoice3.Host
{
    /// <summary>One synthesis request in upstream's frontend names (synth.CASE_KEYS).</summary>
    public sealed class SynthesisCase
    {
        public int[] Text, PromptText, LlmPromptSpeechToken, FlowPromptSpeechToken;
        public NpyArray PromptSpeechFeat;   // float32 [1, P * token_mel_ratio, 80]
        public float[] LlmEmbedding, FlowEmbedding;   // [192] each

        public static readonly string[] Keys =
        {
            "text", "prompt_text", "llm_prompt_speech_token", "flow_prompt_speech_token", "prompt_speech_feat",
            "llm_embedding", "flow_embedding",
        };

        /// <summary>From arrays named as in synth.CASE_KEYS (ids int32 [1, n], feat [1, N, 80], embeddings [1, 192]).</summary>
        public static SynthesisCase FromArrays(IDictionary<string, NpyArray> a)
        {
            foreach (var k in Keys)
                if (!a.ContainsKey(k)) throw new HostInputException(k, "missing key", string.Join(", ", Keys), null);
            return new SynthesisCase
            {
                Text = Ids(a, "text"), PromptText = Ids(a, "prompt_text"),
                LlmPromptSpeechToken = Ids(a, "llm_prompt_speech_token"), FlowPromptSpeechToken = Ids(a, "flow_prompt_speech_token"),
                PromptSpeechFeat = Feat(a["prompt_speech_feat"]),
                LlmEmbedding = Row(a, "llm_embedding"), FlowEmbedding = Row(a, "flow_embedding"),
            };
        }

        static int[] Ids(IDictionary<string, NpyArray> a, string k)
        {
            Tensors.CheckShape(k, a[k], 1, -1);
            if (a[k].Ints == null) throw new HostInputException(k, "wrong dtype", "integer token ids", a[k].DTypeName);
            return a[k].Ints;
        }

        static float[] Row(IDictionary<string, NpyArray> a, string k)
        {
            Tensors.CheckShape(k, a[k], 1, -1);
            if (a[k].Floats == null) throw new HostInputException(k, "wrong dtype", "float32", a[k].DTypeName);
            return a[k].Floats;
        }

        static NpyArray Feat(NpyArray f)
        {
            Tensors.CheckShape("prompt_speech_feat", f, 1, -1, -1);
            if (f.Floats == null) throw new HostInputException("prompt_speech_feat", "wrong dtype", "float32", f.DTypeName);
            return f.DType == NpyDType.Float32 ? f : NpyArray.FromFloats(f.Shape, f.Floats);   // float16 files widen on read
        }
    }

    public sealed class SynthesisOptions
    {
        public Sampling Sampling = Sampling.Greedy;
        public ulong Seed;                 // RAS seed (numpy default_rng(seed))
        public bool Stream;
        public bool UpstreamQuirks = true; // quirk L3 (upstream): only SOS is masked before min_len
        /// <summary>Streaming only: called with each newly emitted piece of waveform, in order.</summary>
        public Action<float[]> OnAudio;
    }

    public sealed class SynthesisResult
    {
        public int[] SpeechTokens;   // after the silent filter, [1, n]
        public NpyArray Mel;         // [1, 80, T]
        public float[] Speech;       // [1, 480 T] at sample_rate
        public int SampleRate;
        public Generation Generation;

        /// <summary>The outputs as synth.synthesize() returns them (speech_tokens, mel, speech).</summary>
        public Dictionary<string, NpyArray> ToArrays()
        {
            return new Dictionary<string, NpyArray>
            {
                { "speech_tokens", Tensors.Ints(SpeechTokens, 1, SpeechTokens.Length) },
                { "mel", Mel },
                { "speech", Tensors.Floats(Speech, 1, Speech.Length) },
            };
        }
    }

    public sealed class Synthesizer
    {
        public const int TokenHop = 25, TokenMaxHop = 100, StreamScale = 2;
        public const string HiftGraph = "hift";

        readonly IGraphRunner runner;
        public readonly LlmGenerator Llm;
        public readonly EulerCfg Flow;
        public readonly HiftNoise Noise;
        readonly string noiseInput;
        public readonly int SamplesPerFrame, SampleRate, StreamTrimFrames, LlmEmbeddingDim = 192;

        public Synthesizer(IGraphRunner runner, JsonValue llmConstants, JsonValue flowConstants, JsonValue hiftConstants,
                           NpyArray flowNoise, NpyArray hiftNoiseTable, NpyArray hiftNoiseState)
        {
            this.runner = runner;
            Llm = new LlmGenerator(runner, llmConstants);
            Flow = new EulerCfg(runner, flowConstants, flowNoise);
            Noise = new HiftNoise(hiftNoiseTable, hiftNoiseState);
            noiseInput = Constants.String(Constants.Node(hiftConstants, "noise"), "input");
            SamplesPerFrame = Constants.Int(hiftConstants, "samples_per_frame");
            SampleRate = Constants.Int(hiftConstants, "sample_rate");
            StreamTrimFrames = Constants.Int(Constants.Node(hiftConstants, "finalize"), "stream_trim_frames");
        }

        /// <summary>From an installed bundle: constants from its manifest, host data read and sha256-checked from its files.</summary>
        public static Synthesizer FromBundle(Bundle bundle, IGraphRunner runner)
        {
            var llm = bundle.Component("llm");
            var flow = bundle.Component("flow");
            var hift = bundle.Component("hift");
            var hn = Constants.Node(hift.Constants, "noise");
            return new Synthesizer(runner, llm.Constants, flow.Constants, hift.Constants,
                                   Data(bundle, flow, Constants.String(flow.Constants, "noise")),
                                   Data(bundle, hift, Constants.String(hn, "table")), Data(bundle, hift, Constants.String(hn, "state")));
        }

        static NpyArray Data(Bundle bundle, ComponentEntry c, string name)
        {
            var f = c.Data.Find(d => d.Name == name);
            if (f == null) throw new BundleException(bundle.Root, "component " + c.Name + " lists no data \"" + name + "\"", name, null);
            return bundle.LoadArray(f);
        }

        void CheckCase(SynthesisCase c)
        {
            if (c.Text == null || c.Text.Length == 0) throw new HostInputException("text", "empty text", "at least one token id", null);
            Tensors.CheckIds("text", c.Text, 0, Llm.TextVocabSize);
            Tensors.CheckIds("prompt_text", c.PromptText, 0, Llm.TextVocabSize);
            Tensors.CheckIds("llm_prompt_speech_token", c.LlmPromptSpeechToken, 0, Llm.SpeechTokenSize);
            Tensors.CheckIds("flow_prompt_speech_token", c.FlowPromptSpeechToken, 0, Flow.VocabSize);
            if (c.LlmEmbedding == null || c.LlmEmbedding.Length != LlmEmbeddingDim)
                throw new HostInputException("llm_embedding", "wrong shape", "[1, " + LlmEmbeddingDim + "]", c.LlmEmbedding == null ? "nothing" : "[1, " + c.LlmEmbedding.Length + "]");
            if (c.FlowEmbedding == null || c.FlowEmbedding.Length != Flow.SpkEmbedDim)
                throw new HostInputException("flow_embedding", "wrong shape", "[1, " + Flow.SpkEmbedDim + "]", c.FlowEmbedding == null ? "nothing" : "[1, " + c.FlowEmbedding.Length + "]");
            Tensors.CheckShape("prompt_speech_feat", c.PromptSpeechFeat, 1, c.FlowPromptSpeechToken.Length * Flow.Ratio, Flow.MelBins);
        }

        /// <summary>synth.synthesize: speech tokens (after the silent filter), mel [1, 80, T], speech [1, 480 T].</summary>
        public SynthesisResult Synthesize(SynthesisCase c, SynthesisOptions options = null)
        {
            options = options ?? new SynthesisOptions();
            CheckCase(c);
            var gen = Llm.Generate(c.Text, c.PromptText, c.LlmPromptSpeechToken, options.Sampling, options.Seed, options.UpstreamQuirks);
            var tokens = gen.TokensForFlow.ToArray();
            if (tokens.Length == 0)
                throw new HostInputException("text", "the LLM produced no speech tokens (it stopped at the first step)", null, "stop token " + gen.StopToken);
            var result = new SynthesisResult { SpeechTokens = tokens, SampleRate = SampleRate, Generation = gen };
            if (!options.Stream)
            {
                result.Mel = Flow.Synthesize(tokens, c.FlowPromptSpeechToken, c.PromptSpeechFeat, c.FlowEmbedding, false, true);
                result.Speech = Hift(result.Mel);
                return result;
            }
            Stream(c, tokens, result, options.OnAudio);
            return result;
        }

        /// <summary>HiFT on a whole mel [1, 80, T]: waveform [480 T].</summary>
        public float[] Hift(NpyArray mel)
        {
            var outs = runner.Run(HiftGraph, new Dictionary<string, NpyArray>
            {
                { "mel", mel }, { noiseInput, Noise.ForFrames(mel.Shape[2], SamplesPerFrame) },
            });
            return Tensors.Output(outs, HiftGraph, "waveform").Floats;
        }

        void Stream(SynthesisCase c, int[] tokens, SynthesisResult result, Action<float[]> onAudio)
        {
            int nPrompt = c.FlowPromptSpeechToken.Length, total = tokens.Length, bins = Flow.MelBins;
            int hop = TokenHop + ((TokenHop - nPrompt % TokenHop) % TokenHop);   // prompt + hop is a multiple of 25
            int offset = 0, emitted = 0, accFrames = 0;
            float[] acc = new float[0];   // accumulated mel [80, accFrames]
            var pieces = new List<float[]>();
            int samples = 0;
            Action<int, bool> emit = (nTokens, finalize) =>
            {
                var sub = new int[nTokens];
                Array.Copy(tokens, sub, nTokens);
                var mel = Flow.Synthesize(sub, c.FlowPromptSpeechToken, c.PromptSpeechFeat, c.FlowEmbedding, !finalize, finalize);
                int frames = mel.Shape[2], from = Math.Min(offset * Flow.Ratio, frames), newFrames = frames - from;
                var grown = new float[bins * (accFrames + newFrames)];
                for (int ch = 0; ch < bins; ch++)
                {
                    Array.Copy(acc, ch * accFrames, grown, ch * (accFrames + newFrames), accFrames);
                    Array.Copy(mel.Floats, ch * frames + from, grown, ch * (accFrames + newFrames) + accFrames, newFrames);
                }
                acc = grown;
                accFrames += newFrames;
                var speech = Hift(Tensors.Floats(acc, 1, bins, accFrames));
                int keep = finalize ? speech.Length : Math.Max(Math.Min(SamplesPerFrame * (accFrames - StreamTrimFrames), speech.Length), 0);
                int n = Math.Max(keep - emitted, 0);
                var piece = new float[n];
                if (n > 0) Array.Copy(speech, emitted, piece, 0, n);
                pieces.Add(piece);
                samples += n;
                emitted = keep;
                if (onAudio != null) onAudio(piece);
            };
            while (total - offset >= hop + Flow.Lookahead)
            {
                emit(offset + hop + Flow.Lookahead, false);
                offset += hop;
                hop = Math.Min(TokenMaxHop, hop * StreamScale);
            }
            emit(total, true);
            result.Mel = Tensors.Floats(acc, 1, bins, accFrames);
            result.Speech = new float[samples];
            int at = 0;
            foreach (var p in pieces) { Array.Copy(p, 0, result.Speech, at, p.Length); at += p.Length; }
        }
    }
}
