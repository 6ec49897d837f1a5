// A speak golden (packager/verbs/unity_install.py write_speak_golden, docs/unity_speaker.md): what `packager synth --voice --text`
// gives for a fixed text in one installed voice, so a test can run the speaker's code path (SpeakerCore over a graph
// backend) on the same text, voice and settings and compare. Installed by `unity-install --voice NAME.voice` as
//   <bundle>/Voices~/NAME.voice/            the voice pack
//   <bundle>/Golden~/speak/NAME/speak.json  text, settings, pieces, chunk sizes, array entries (sha256)
//   <bundle>/Golden~/speak/NAME/speech.npy, speech_tokens.npy
// File names are fixed here; nothing read from speak.json is used as a path. The tolerances are the bundle's own:
// those of its first pipeline golden for "speech" and "speech_tokens" (manifest "pipeline").
// Unity-independent (tested under mono, tests/csharp/cs/SpeakerTests.cs).
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;

namespace CosyVoice3.Speech
{
    public sealed class SpeakGolden
    {
        public const string Format = "cosyvoice3-speak-golden";
        public const string VoicesDir = "Voices~";
        public const string GoldenDir = "Golden~/speak";

        public string Name, Text, VoiceName, ModelId;
        public SynthesisMode Mode;
        public SynthesisOptions Settings;
        public List<string> Pieces = new List<string>();
        public List<int> Chunks = new List<int>();
        public NpyArray Speech, SpeechTokens;
        public string VoicePath;

        /// <summary>The speak goldens installed in a bundle folder (their names, sorted); none when there are none.</summary>
        public static List<string> Names(string bundleDir)
        {
            var names = new List<string>();
            string dir = Path.Combine(bundleDir, GoldenDir);
            if (!Directory.Exists(dir)) return names;
            foreach (var d in Directory.GetDirectories(dir))
                if (File.Exists(Path.Combine(d, "speak.json"))) names.Add(Path.GetFileName(d));
            names.Sort(StringComparer.Ordinal);
            return names;
        }

        public static SpeakGolden Load(string bundleDir, string name)
        {
            if (string.IsNullOrEmpty(name) || name.StartsWith(".", StringComparison.Ordinal) || name.IndexOfAny(new[] { '/', '\\', ':' }) >= 0)
                throw new BundleException(bundleDir, "not a plain speak golden name", "a folder name under " + GoldenDir, name ?? "null");
            string dir = Path.Combine(Path.Combine(bundleDir, GoldenDir), name);
            string file = Path.Combine(dir, "speak.json");
            if (!File.Exists(file)) throw new BundleException(file, "speak golden is missing", "speak.json", "nothing");
            var j = Json.Parse(File.ReadAllText(file), file);
            if (j.Kind != JsonKind.Object || !j.Has("format") || j.Get("format").StringValue != Format)
                throw new BundleException(file, "not a speak golden", "format \"" + Format + "\"", j.Has("format") ? j.Get("format").StringValue : "no format");
            var g = new SpeakGolden { Name = name, VoicePath = Path.Combine(Path.Combine(bundleDir, VoicesDir), name + ".voice") };
            g.Text = Str(j, "text", file);
            g.VoiceName = Str(j, "voice", file);
            g.ModelId = Str(j, "model_id", file);
            var s = Field(j, "settings", file);
            string mode = Str(s, "mode", file);
            if (mode == "zero_shot") g.Mode = SynthesisMode.ZeroShot;
            else if (mode == "instruct") g.Mode = SynthesisMode.Instruct;
            else if (mode == "cross_lingual") g.Mode = SynthesisMode.CrossLingual;
            else throw new BundleException(file, "unknown settings.mode", "zero_shot, instruct or cross_lingual", mode);
            if (g.Mode == SynthesisMode.Instruct) throw new BundleException(file, "instruct speak goldens carry no instruction", "zero_shot or cross_lingual", mode);
            g.Settings = new SynthesisOptions
            {
                Sampling = Samp(Str(s, "sampling", file), file),
                Seed = (ulong)Field(s, "seed", file).NumberValue,
                Stream = Field(s, "stream", file).BoolValue,
                UpstreamQuirks = Field(s, "upstream_quirks", file).BoolValue,
            };
            foreach (var p in Field(j, "pieces", file).Items) g.Pieces.Add(p.StringValue);
            foreach (var c in Field(j, "chunks", file).Items) g.Chunks.Add((int)c.NumberValue);
            foreach (var a in Field(j, "arrays", file).Items)
            {
                string arr = Str(a, "name", file);
                if (arr != "speech" && arr != "speech_tokens")
                    throw new BundleException(file, "unknown array in a speak golden", "speech, speech_tokens", arr);
                string rel = arr + ".npy";
                string full = Path.Combine(dir, rel);
                if (!File.Exists(full)) throw new BundleException(file, "array file is missing", rel, "nothing");
                byte[] data = File.ReadAllBytes(full);
                BundleFiles.Verify(data, rel, Str(a, "sha256", file), (long)Field(a, "bytes", file).NumberValue, file);
                var npy = Npy.Read(data, full);
                if (arr == "speech") g.Speech = npy; else g.SpeechTokens = npy;
            }
            if (g.Speech == null || g.SpeechTokens == null)
                throw new BundleException(file, "a speak golden needs both arrays", "speech, speech_tokens", g.Speech == null ? "no speech" : "no speech_tokens");
            return g;
        }

        /// <summary>The samples and tokens of a finished job against this golden, under the bundle's pipeline tolerances.</summary>
        public List<Verdict> Check(Bundle bundle, float[] speech, SpeechResult result)
        {
            var goldens = PipelineGolden.Load(bundle);
            if (goldens.Count == 0)
                throw new BundleException(bundle.Root, "the bundle has no pipeline golden to take tolerances from", "manifest pipeline.goldens", "none");
            var tol = goldens[0];
            var tokens = new List<int>();
            if (result != null) foreach (var t in result.SpeechTokens) tokens.AddRange(t);
            return new List<Verdict>
            {
                Tolerance.Compare("speech_tokens", NpyArray.FromInts(new[] { 1, tokens.Count }, tokens.ToArray()), SpeechTokens, tol.ToleranceFor("speech_tokens")),
                Tolerance.Compare("speech", NpyArray.FromFloats(new[] { 1, speech.Length }, speech), Speech, tol.ToleranceFor("speech")),
            };
        }

        static Sampling Samp(string s, string file)
        {
            if (s == "greedy") return Sampling.Greedy;
            if (s == "ras") return Sampling.Ras;
            throw new BundleException(file, "unknown settings.sampling", "greedy or ras", s);
        }

        static JsonValue Field(JsonValue o, string key, string file)
        {
            if (o.Kind != JsonKind.Object || !o.Has(key)) throw new BundleException(file, "speak golden field is missing", key, "nothing");
            return o.Get(key);
        }

        static string Str(JsonValue o, string key, string file)
        {
            var v = Field(o, key, file);
            if (v.Kind != JsonKind.String) throw new BundleException(file, "speak golden field is not a string", key, v.Kind.ToString());
            return v.StringValue;
        }
    }
}
