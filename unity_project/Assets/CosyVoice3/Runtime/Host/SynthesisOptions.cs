// How Synthesizer.Synthesize samples and streams (packager/runtime/pipeline.py synthesize's options) and its callbacks.
using System;

namespace CosyVoice3.Host
{
    public sealed class SynthesisOptions
    {
        public Sampling Sampling = Sampling.Greedy;
        public ulong Seed;                 // RAS seed (numpy default_rng(seed))
        public bool Stream;
        public bool UpstreamQuirks = true; // quirk L3 (upstream): only SOS is masked before min_len
        /// <summary>Streaming only: called with each newly emitted piece of waveform, in order.</summary>
        public Action<float[]> OnAudio;
        /// <summary>Speak(cases): the index of the piece about to be synthesized.</summary>
        public Action<int> OnPiece;
        /// <summary>Each speech token as the LLM emits it (before the silent filter), e.g. for progress.</summary>
        public Action<int> OnToken;
    }
}
