// The text + voice modes of Synthesizer.BuildCases (packager/runtime/tts.py MODES).

namespace CosyVoice3.Host
{
    /// <summary>Upstream's three CosyVoice3 modes (packager/runtime/tts.py MODES).</summary>
    public enum SynthesisMode { ZeroShot, Instruct, CrossLingual }
}
