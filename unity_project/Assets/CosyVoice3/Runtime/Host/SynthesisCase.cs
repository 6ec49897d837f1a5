// One synthesis request (upstream's frontend tensors) for Synthesizer.Synthesize: packager/runtime/pipeline.py's case.
using System.Collections.Generic;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    /// <summary>One synthesis request in upstream's frontend names (synth.CASE_KEYS).</summary>
    public sealed class SynthesisCase
    {
        public int[] Text, PromptText, LlmPromptSpeechToken, FlowPromptSpeechToken;
        public NpyArray PromptSpeechFeat;   // float32 [1, P * token_mel_ratio, 80]
        public float[] LlmEmbedding, FlowEmbedding;   // [spk_embed_dim] each (the flow constants)

        public static readonly string[] Keys =
        {
            "text", "prompt_text", "llm_prompt_speech_token", "flow_prompt_speech_token", "prompt_speech_feat",
            "llm_embedding", "flow_embedding",
        };

        /// <summary>From arrays named as in synth.CASE_KEYS (ids int32 [1, n], feat [1, N, 80], embeddings [1, spk_embed_dim]).</summary>
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
}
