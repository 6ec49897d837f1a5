// What Synthesizer.Synthesize returns for one case (packager/runtime/pipeline.py synthesize's outputs).
using System.Collections.Generic;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
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
}
