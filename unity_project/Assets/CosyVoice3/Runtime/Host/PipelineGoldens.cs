// The manifest's "pipeline" section (schemas/manifest.schema.json "$defs/pipeline_golden"; packager/runtime/pipeline.py
// pipeline_goldens): end-to-end tts() cases with their settings, input/output arrays and tolerances. BundleManifest
// only checks that the section is an object, so it is read here, strictly, for the runtime's own end-to-end check:
// run each case through Synthesizer and compare with Tolerance.Compare (tokens exact, mel atol, speech sqnr_db).
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    public sealed class PipelineGolden
    {
        public string Name, Description;
        public Sampling Sampling = Sampling.Greedy;
        public ulong Seed;
        public bool Stream, UpstreamQuirks = true;
        public List<ArrayFile> Inputs = new List<ArrayFile>();
        public List<ArrayFile> Outputs = new List<ArrayFile>();
        public List<ToleranceSpec> Tolerances = new List<ToleranceSpec>();

        public SynthesisOptions Options()
        {
            return new SynthesisOptions { Sampling = Sampling, Seed = Seed, Stream = Stream, UpstreamQuirks = UpstreamQuirks };
        }

        public ToleranceSpec ToleranceFor(string output) { return Tolerances.Find(t => t.Output == output); }

        /// <summary>The pipeline goldens of a bundle (none when its manifest has no "pipeline" section).</summary>
        public static List<PipelineGolden> Load(Bundle bundle)
        {
            string path = Path.Combine(bundle.Root, Bundle.ManifestFile);
            return Parse(Json.Parse(File.ReadAllText(path), path));
        }

        public static List<PipelineGolden> Parse(JsonValue manifest)
        {
            var list = new List<PipelineGolden>();
            var p = manifest.Get("pipeline");
            if (p == null) return list;
            Expect(p, JsonKind.Object);
            foreach (var g in Items(Constants.Node(p, "goldens")))
            {
                Expect(g, JsonKind.Object);
                var pg = new PipelineGolden { Name = Constants.String(g, "name") };
                if (g.Has("description")) pg.Description = Constants.String(g, "description");
                var s = Constants.Node(g, "settings");
                string sampling = Constants.String(s, "sampling");
                if (sampling != "greedy" && sampling != "ras") throw new BundleException(s.Path, "unknown sampling", "greedy or ras", sampling);
                pg.Sampling = sampling == "ras" ? Sampling.Ras : Sampling.Greedy;
                pg.Stream = Bool(s, "stream");
                pg.UpstreamQuirks = Bool(s, "upstream_quirks");
                if (s.Has("seed") && s.Get("seed").Kind != JsonKind.Null)
                {
                    double seed = Constants.Number(s, "seed");
                    if (seed < 0 || Math.Floor(seed) != seed) throw new BundleException(s.Path, "seed must be a non-negative integer", ">= 0", seed.ToString());
                    pg.Seed = (ulong)seed;
                }
                foreach (var a in Items(Constants.Node(g, "inputs"))) pg.Inputs.Add(ArrayOf(a));
                foreach (var a in Items(Constants.Node(g, "outputs"))) pg.Outputs.Add(ArrayOf(a));
                foreach (var t in Items(Constants.Node(g, "tolerances"))) pg.Tolerances.Add(TolOf(t));
                foreach (var o in pg.Outputs)
                    if (pg.ToleranceFor(o.Name) == null) throw new BundleException(g.Path, "pipeline output \"" + o.Name + "\" has no tolerance", "a tolerances entry", "none");
                list.Add(pg);
            }
            return list;
        }

        static void Expect(JsonValue v, JsonKind k)
        {
            if (v.Kind != k) throw new BundleException(v.Path, "wrong type", JsonValue.KindName(k), JsonValue.KindName(v.Kind));
        }

        static IList<JsonValue> Items(JsonValue v) { Expect(v, JsonKind.Array); return v.Items; }

        static bool Bool(JsonValue obj, string key)
        {
            var v = Constants.Node(obj, key);
            Expect(v, JsonKind.Bool);
            return v.BoolValue;
        }

        static ArrayFile ArrayOf(JsonValue a)
        {
            var f = new ArrayFile
            {
                Name = Constants.String(a, "name"), File = Constants.String(a, "file"), Sha256 = Constants.String(a, "sha256"),
                Bytes = (long)Constants.Number(a, "bytes"), DType = Constants.String(a, "dtype"), Shape = Constants.Ints(a, "shape"),
            };
            string reason;
            if (!BundleFiles.IsSafeRelativePath(f.File, out reason)) throw new BundleException(a.Path, "unsafe bundle path (" + reason + ")", "a relative path inside the bundle", f.File);
            if (!BundleFiles.IsSha256Hex(f.Sha256)) throw new BundleException(a.Path, "not a sha256", "64 lowercase hex digits", f.Sha256);
            if (f.DType != "float32" && f.DType != "int32") throw new BundleException(a.Path, "unsupported dtype", "float32 or int32", f.DType);
            return f;
        }

        static ToleranceSpec TolOf(JsonValue t)
        {
            var spec = new ToleranceSpec { Output = Constants.String(t, "output"), Atol = Constants.Number(t, "atol"), Rtol = Constants.Number(t, "rtol") };
            if (t.Has("exact")) spec.Exact = Bool(t, "exact");
            if (t.Has("elementwise")) spec.Elementwise = Bool(t, "elementwise");
            if (t.Has("metrics"))
                foreach (var kv in Constants.Node(t, "metrics").Members)
                {
                    if (!Tolerance.IsKnownMetric(kv.Key)) throw new BundleException(kv.Value.Path, "unknown metric", "cosine, sqnr_db, top1, max_abs, kl", kv.Key);
                    Expect(kv.Value, JsonKind.Number);
                    spec.Metrics[kv.Key] = kv.Value.NumberValue;
                }
            return spec;
        }

        /// <summary>Run this case through <paramref name="synth"/> and compare every output with its golden (loaded and
        /// sha256-checked from <paramref name="bundle"/>). Returns one verdict per output, in manifest order.</summary>
        public List<Verdict> Check(Bundle bundle, Synthesizer synth)
        {
            var inputs = new Dictionary<string, NpyArray>();
            foreach (var f in Inputs) inputs[f.Name] = bundle.LoadArray(f);
            var got = synth.Synthesize(SynthesisCase.FromArrays(inputs), Options()).ToArrays();
            var verdicts = new List<Verdict>();
            foreach (var f in Outputs)
            {
                NpyArray actual;
                if (!got.TryGetValue(f.Name, out actual)) throw new BundleException(Name, "the synthesizer has no output \"" + f.Name + "\"", "speech_tokens, mel, speech", f.Name);
                verdicts.Add(Tolerance.Compare(f.Name, actual, bundle.LoadArray(f), ToleranceFor(f.Name)));
            }
            return verdicts;
        }
    }
}
