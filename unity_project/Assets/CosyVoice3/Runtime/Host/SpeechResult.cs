// What Synthesizer.Speak returns for a whole text (packager/runtime/tts.py Speech).
using System.Collections.Generic;

namespace CosyVoice3.Host
{
    /// <summary>Speech from text (tts.Speech): the pieces' audio concatenated.</summary>
    public sealed class SpeechResult
    {
        public float[] Speech;                                             // [n] at SampleRate
        public int SampleRate;
        public List<string> Pieces = new List<string>();                   // TextCase.Text of each piece
        public List<int[]> SpeechTokens = new List<int[]>();               // per piece, after the silent filter
        public List<SynthesisResult> Results = new List<SynthesisResult>(); // per piece (mel, generation)
    }
}
