// CosyVoice3 tts() over a bundle's graphs, a 1:1 mirror of packager/runtime/pipeline.py (docs/unity_runtime.md):
//   LLM generation -> silent-token filter -> flow (Euler/CFG) -> HiFT (noise rows [0, 480 T), continued past the cap)
// Non-streaming reproduces upstream CosyVoice3Model.tts(stream=False). Streaming follows upstream's schedule
// (synth._Streamer) while the LLM generates: token hops 25 -> 50 -> 100 (the first padded so that prompt + hop is a
// multiple of 25), each chunk re-runs the flow on prompt + all tokens so far + the look-ahead tokens with the chunked
// attention and finalize = false, HiFT re-runs on the accumulated mel and only new samples are emitted, then one
// finalize call once generation ends.
// Text + voice pack (packager/runtime/tts.py): text_normalize without wetext (TextFrontend), one synthesis per piece in
// zero-shot, instruct or cross-lingual mode, piece k with seed + k, the audio concatenated.
using System;
using System.Collections.Generic;
using System.Globalization;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    public sealed class Synthesizer
    {
        /// <summary>The vocoder graph (hift constants "graphs": vocoder).</summary>
        public readonly string HiftGraph;

        readonly IGraphRunner runner;
        readonly TokenTap tap;
        public readonly LlmGenerator Llm;
        public readonly EulerCfg Flow;
        public readonly HiftNoise Noise;
        readonly string noiseInput;
        public readonly int SamplesPerFrame, SampleRate, StreamTrimFrames;
        /// <summary>The streaming token2wav schedule (flow constants "stream"): first hop, largest hop, growth factor.</summary>
        public readonly int TokenHop, TokenMaxHop, StreamScale;
        /// <summary>Width of llm_embedding: upstream's frontend passes the same CAMPPlus embedding as flow_embedding
        /// (flow constants spk_embed_dim); the CosyVoice3 LM does not read it.</summary>
        public int LlmEmbeddingDim { get { return Flow.SpkEmbedDim; } }
        /// <summary>The bundle's text tokenizer (set by FromBundle when the bundle ships one); needed for text input.</summary>
        public Qwen2Tokenizer Tokenizer { get; set; }
        /// <summary>The bundle's manifest (set by FromBundle): a voice pack's model_id is checked against it.</summary>
        public BundleManifest Manifest { get; set; }

        public Synthesizer(IGraphRunner runner, JsonValue llmConstants, JsonValue flowConstants, JsonValue hiftConstants,
                           NpyArray flowNoise, NpyArray hiftNoiseTable, NpyArray hiftNoiseState)
        {
            this.runner = runner;
            tap = new TokenTap(runner);
            Llm = new LlmGenerator(tap, llmConstants);
            tap.SpeechEmbed = Llm.SpeechEmbed;
            Flow = new EulerCfg(runner, flowConstants, flowNoise);
            Noise = new HiftNoise(hiftNoiseTable, hiftNoiseState);
            HiftGraph = Constants.String(Constants.Node(hiftConstants, "graphs"), "vocoder");
            noiseInput = Constants.String(Constants.Node(hiftConstants, "noise"), "input");
            SamplesPerFrame = Constants.Int(hiftConstants, "samples_per_frame");
            SampleRate = Constants.Int(hiftConstants, "sample_rate");
            StreamTrimFrames = Constants.Int(Constants.Node(hiftConstants, "finalize"), "stream_trim_frames");
            var stream = Constants.Node(flowConstants, "stream");
            TokenHop = Constants.Int(stream, "token_hop");
            TokenMaxHop = Constants.Int(stream, "token_max_hop");
            StreamScale = Constants.Int(stream, "scale");
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
                                   Data(bundle, hift, Constants.String(hn, "table")), Data(bundle, hift, Constants.String(hn, "state")))
            {
                Tokenizer = Qwen2Tokenizer.FromBundle(bundle), Manifest = bundle.Manifest,
            };
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

        /// <summary>
        /// synth.synthesize: speech tokens (after the silent filter), mel [1, 80, T], speech [1, 480 T].
        /// Not streaming: <see cref="SynthesisOptions.OnAudio"/> gets the whole waveform once. Streaming: the flow and
        /// HiFT run on each chunk as soon as the LLM has produced its tokens (upstream's schedule, graph calls in
        /// Python's order), and OnAudio gets each new non-empty piece of waveform.
        /// </summary>
        public SynthesisResult Synthesize(SynthesisCase c, SynthesisOptions options = null)
        {
            options = options ?? new SynthesisOptions();
            CheckCase(c);
            Streamer streamer = options.Stream ? new Streamer(this, c, options.OnAudio) : null;
            Generation gen;
            var onToken = options.OnToken;
            if (streamer != null)
            {
                var emitted = new List<int>();
                tap.OnToken = token =>
                {
                    if (onToken != null) onToken(token);
                    emitted.Add(token);
                    streamer.Push(Llm.SilentFilter(emitted));
                };
            }
            else if (onToken != null) tap.OnToken = onToken;
            try { gen = Llm.Generate(c.Text, c.PromptText, c.LlmPromptSpeechToken, options.Sampling, options.Seed, options.UpstreamQuirks); }
            finally { tap.OnToken = null; }
            var tokens = gen.TokensForFlow.ToArray();
            if (tokens.Length == 0)
                throw new HostInputException("text", "the LLM produced no speech tokens (it stopped at the first step)", null, "stop token " + gen.StopToken);
            var result = new SynthesisResult { SpeechTokens = tokens, SampleRate = SampleRate, Generation = gen };
            if (streamer == null)
            {
                result.Mel = Flow.Synthesize(tokens, c.FlowPromptSpeechToken, c.PromptSpeechFeat, c.FlowEmbedding, false, true);
                result.Speech = Hift(result.Mel);
                if (options.OnAudio != null) options.OnAudio(result.Speech);
                return result;
            }
            streamer.Finish(tokens, result);
            return result;
        }

        // ------------------------------------------------------------------------------- text + voice (packager/runtime/tts.py)

        public const string SystemPrompt = VoicePack.SystemPrompt;
        public const string InstructPrefix = SystemPrompt + " ";   // upstream's instruct prompt: SystemPrompt + " " + instruction + EndOfPrompt
        public const string Speakable = "text with at least one letter or digit";

        /// <summary>Zero-shot (upstream inference_zero_shot): <paramref name="text"/> in <paramref name="voice"/>.</summary>
        public SpeechResult Synthesize(string text, VoicePack voice, SynthesisOptions options = null)
        {
            return Speak(BuildCases(text, voice, SynthesisMode.ZeroShot, null), options);
        }

        /// <summary>Instruct (upstream inference_instruct2): the instruction replaces the prompt text, no LLM prompt speech.</summary>
        public SpeechResult SynthesizeInstruct(string text, string instruction, VoicePack voice, SynthesisOptions options = null)
        {
            return Speak(BuildCases(text, voice, SynthesisMode.Instruct, instruction), options);
        }

        /// <summary>Cross-lingual (upstream inference_cross_lingual): no prompt text, no LLM prompt speech.</summary>
        public SpeechResult SynthesizeCrossLingual(string text, VoicePack voice, SynthesisOptions options = null)
        {
            return Speak(BuildCases(text, voice, SynthesisMode.CrossLingual, null), options);
        }

        /// <summary>
        /// tts.frontend_cases: one case per text piece. Checks, in this order: the voice belongs to this bundle's model,
        /// the bundle has a tokenizer, the instruction (Instruct), the text (something speakable after normalization).
        /// The flow always gets the voice's prompt tokens, mel and embedding; the arrays are shared, not copied.
        /// </summary>
        public List<TextCase> BuildCases(string text, VoicePack voice, SynthesisMode mode, string instruction = null)
        {
            if (voice == null) throw new ArgumentNullException("voice");
            if (Manifest == null)
                throw new InvalidOperationException("no bundle manifest to check the voice pack's model against: create the Synthesizer with FromBundle or set Manifest");
            voice.CheckModel(Manifest);
            if (Tokenizer == null)
                throw new BundleException(Manifest.BundleName, "the bundle has no text tokenizer", "a bundle built from a checkpoint with CosyVoice-BlankEN/ tokenizer files", null);
            int[] promptText = voice.PromptText, llmPrompt = voice.PromptSpeechToken;
            if (mode == SynthesisMode.Instruct)
            {
                promptText = Tokenizer.Encode(InstructPrompt(instruction));
                llmPrompt = new int[0];
            }
            else if (mode == SynthesisMode.CrossLingual)
            {
                promptText = new int[0];
                llmPrompt = new int[0];
            }
            else if (mode != SynthesisMode.ZeroShot) throw new ArgumentOutOfRangeException("mode");
            var cases = new List<TextCase>();
            foreach (var piece in TextPieces(text))
            {
                string spoken = piece;
                if (mode == SynthesisMode.CrossLingual && piece.IndexOf(Qwen2Tokenizer.EndOfPrompt, StringComparison.Ordinal) < 0)
                    spoken = SystemPrompt + Qwen2Tokenizer.EndOfPrompt + piece;
                cases.Add(new TextCase
                {
                    Text = spoken,
                    Case = new SynthesisCase
                    {
                        Text = Tokenizer.Encode(spoken), PromptText = promptText, LlmPromptSpeechToken = llmPrompt,
                        FlowPromptSpeechToken = voice.PromptSpeechToken, PromptSpeechFeat = voice.PromptSpeechFeat,
                        LlmEmbedding = voice.Embedding, FlowEmbedding = voice.Embedding,
                    },
                });
            }
            return cases;
        }

        /// <summary>tts.instruct_prompt: the instruction as given when it has &lt;|endofprompt|&gt;, else wrapped like upstream's.</summary>
        public static string InstructPrompt(string instruction)
        {
            string s = TextFrontend.Strip(instruction ?? "");
            if (s.Length == 0) throw new HostInputException("instruction", "empty instruction", "an instruction, e.g. 'Speak slowly.'", null);
            return s.IndexOf(Qwen2Tokenizer.EndOfPrompt, StringComparison.Ordinal) >= 0 ? s : InstructPrefix + s + Qwen2Tokenizer.EndOfPrompt;
        }

        /// <summary>tts.text_pieces: upstream's text_normalize(text, split=True) without wetext, speakable pieces only.</summary>
        public List<string> TextPieces(string text)
        {
            if (text == null || TextFrontend.Strip(text).Length == 0)
                throw new HostInputException("text", "empty text", Speakable, null);
            if (Tokenizer == null) throw new InvalidOperationException("no text tokenizer: set Tokenizer (FromBundle loads the bundle's)");
            string[] normalized;
            try { normalized = TextFrontend.Normalize(text, Tokenizer); }
            catch (NumberTooLongException e) { throw new HostInputException("text", e.Message, null, null); }
            var pieces = new List<string>();
            foreach (var p in normalized)
                if (TextFrontend.IsSpeakable(p, Tokenizer)) pieces.Add(p);
            if (pieces.Count == 0)
                throw new HostInputException("text", "the text has nothing to speak (only punctuation or symbols)", Speakable,
                                             "\"" + (text.Length > 60 ? text.Substring(0, 60) : text) + "\"");
            return pieces;
        }

        /// <summary>tts.speak: one synthesis per piece (piece k samples with seed + k), the audio concatenated
        /// (<see cref="BuildCases"/> makes the cases; <see cref="SynthesisOptions.OnPiece"/> is told each piece's index).</summary>
        public SpeechResult Speak(List<TextCase> cases, SynthesisOptions options)
        {
            options = options ?? new SynthesisOptions();
            var result = new SpeechResult { SampleRate = SampleRate };
            var parts = new List<float[]>();
            int total = 0;
            for (int k = 0; k < cases.Count; k++)
            {
                if (options.Seed > ulong.MaxValue - (ulong)k)
                    throw new HostInputException("seed", "seed + piece index does not fit in 64 bits", "a seed <= " + (ulong.MaxValue - (ulong)cases.Count + 1), options.Seed.ToString(CultureInfo.InvariantCulture));
                var o = new SynthesisOptions
                {
                    Sampling = options.Sampling, Seed = options.Seed + (ulong)k, Stream = options.Stream,
                    UpstreamQuirks = options.UpstreamQuirks, OnAudio = options.OnAudio, OnToken = options.OnToken,
                };
                if (options.OnPiece != null) options.OnPiece(k);
                var r = Synthesize(cases[k].Case, o);
                result.Pieces.Add(cases[k].Text);
                result.SpeechTokens.Add(r.SpeechTokens);
                result.Results.Add(r);
                parts.Add(r.Speech);
                total += r.Speech.Length;
            }
            result.Speech = new float[total];
            int at = 0;
            foreach (var p in parts) { Array.Copy(p, 0, result.Speech, at, p.Length); at += p.Length; }
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

        /// <summary>Upstream's streaming token2wav schedule (synth._Streamer), fed with the tokens generated so far.</summary>
        sealed class Streamer
        {
            readonly Synthesizer s;
            readonly SynthesisCase c;
            readonly Action<float[]> onAudio;
            readonly int bins;
            int hop, offset, emitted, accFrames, samples;
            float[] acc = new float[0];   // accumulated mel [80, accFrames]
            readonly List<float[]> pieces = new List<float[]>();

            public Streamer(Synthesizer s, SynthesisCase c, Action<float[]> onAudio)
            {
                this.s = s;
                this.c = c;
                this.onAudio = onAudio;
                bins = s.Flow.MelBins;
                int nPrompt = c.FlowPromptSpeechToken.Length;
                hop = s.TokenHop + ((s.TokenHop - nPrompt % s.TokenHop) % s.TokenHop);   // prompt + hop is a multiple of TokenHop
            }

            public void Push(IList<int> tokens)
            {
                while (tokens.Count - offset >= hop + s.Flow.Lookahead)
                {
                    Emit(tokens, offset + hop + s.Flow.Lookahead, false);
                    offset += hop;
                    hop = Math.Min(s.TokenMaxHop, hop * s.StreamScale);
                }
            }

            public void Finish(int[] tokens, SynthesisResult result)
            {
                Emit(tokens, tokens.Length, true);
                result.Mel = Tensors.Floats(acc, 1, bins, accFrames);
                result.Speech = new float[samples];
                int at = 0;
                foreach (var p in pieces) { Array.Copy(p, 0, result.Speech, at, p.Length); at += p.Length; }
            }

            void Emit(IList<int> tokens, int nTokens, bool finalize)
            {
                var sub = new int[nTokens];
                for (int i = 0; i < nTokens; i++) sub[i] = tokens[i];
                var mel = s.Flow.Synthesize(sub, c.FlowPromptSpeechToken, c.PromptSpeechFeat, c.FlowEmbedding, !finalize, finalize);
                int frames = mel.Shape[2], from = Math.Min(offset * s.Flow.Ratio, frames), newFrames = frames - from;
                var grown = new float[bins * (accFrames + newFrames)];
                for (int ch = 0; ch < bins; ch++)
                {
                    Array.Copy(acc, ch * accFrames, grown, ch * (accFrames + newFrames), accFrames);
                    Array.Copy(mel.Floats, ch * frames + from, grown, ch * (accFrames + newFrames) + accFrames, newFrames);
                }
                acc = grown;
                accFrames += newFrames;
                var speech = s.Hift(Tensors.Floats(acc, 1, bins, accFrames));
                int keep = finalize ? speech.Length : Math.Max(Math.Min(s.SamplesPerFrame * (accFrames - s.StreamTrimFrames), speech.Length), 0);
                int n = Math.Max(keep - emitted, 0);
                var piece = new float[n];
                if (n > 0) Array.Copy(speech, emitted, piece, 0, n);
                pieces.Add(piece);
                samples += n;
                emitted = keep;
                if (onAudio != null && n > 0) onAudio(piece);
            }
        }

        /// <summary>
        /// The LLM's runner: passes every call through, and tells <see cref="OnToken"/> each emitted token just before
        /// its llm_speech_embed call (where Python's generate calls on_token), so that streaming chunks are made
        /// while the LLM generates, in the order Python makes its graph calls.
        /// </summary>
        sealed class TokenTap : IGraphRunner
        {
            readonly IGraphRunner inner;
            public Action<int> OnToken;
            public string SpeechEmbed;   // the llm's speech_embed graph

            public TokenTap(IGraphRunner inner) { this.inner = inner; }

            public Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs)
            {
                NpyArray ids;
                if (OnToken != null && graph == SpeechEmbed && inputs.TryGetValue("speech_ids", out ids) && ids.Ints != null && ids.Ints.Length == 1)
                    OnToken(ids.Ints[0]);
                return inner.Run(graph, inputs);
            }
        }
    }
}
