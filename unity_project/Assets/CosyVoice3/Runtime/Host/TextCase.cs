// One text piece and the synthesis case made from it (packager/runtime/tts.py frontend_cases).

namespace CosyVoice3.Host
{
    /// <summary>One text piece and its synthesis case (tts.frontend_cases: (piece, case)).</summary>
    public sealed class TextCase
    {
        /// <summary>The piece as the LLM reads it (cross-lingual: with the system prompt and &lt;|endofprompt|&gt;).</summary>
        public string Text;
        public SynthesisCase Case;
    }
}
