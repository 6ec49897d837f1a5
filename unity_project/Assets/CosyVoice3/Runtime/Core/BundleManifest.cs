// manifest.json -> typed records, validated like schemas/manifest.schema.json (required keys, no unknown keys,
// types, enums, patterns, ranges, safe paths), plus the cross-references a runtime relies on (see Validate()).
// Parsing is strict on purpose: a manifest this code accepts is one the Python side's schema accepts too
// (tests/csharp/test_core.py checks both on the same valid and broken manifests).
using System;
using System.Collections.Generic;

namespace CosyVoice3.Core
{
    public sealed class TensorSpec
    {
        public string Name, DType, Description;
        /// <summary>Each dim is an int (fixed) or a string (symbolic, e.g. "t_text").</summary>
        public object[] Shape;
    }

    public sealed class ArrayFile
    {
        public string Name, File, Sha256, DType, Description;
        public long Bytes;
        public int[] Shape;
    }

    public sealed class FileRef
    {
        public string File, Sha256;
        public long Bytes;
    }

    public sealed class GoldenChain
    {
        public string After;
        /// <summary>input name of this case -> output name of the previous case (file order kept).</summary>
        public List<KeyValuePair<string, string>> Carry = new List<KeyValuePair<string, string>>();
    }

    public sealed class GoldenCase
    {
        public string Name, Description;
        public List<ArrayFile> Inputs = new List<ArrayFile>();
        public List<ArrayFile> Outputs = new List<ArrayFile>();
        public GoldenChain Chain;
    }

    public sealed class GraphEntry
    {
        public string Name, Description, File, Sha256, Precision, UnityQuantization;
        public long Bytes;
        public FileRef ExternalData;
        public int Opset, TimeoutMs;
        public bool? SentisImportable;
        public List<TensorSpec> Inputs = new List<TensorSpec>();
        public List<TensorSpec> Outputs = new List<TensorSpec>();
        public List<ToleranceSpec> Tolerances = new List<ToleranceSpec>();
        public List<GoldenCase> Goldens = new List<GoldenCase>();

        public GoldenCase Golden(string name) { return Goldens.Find(g => g.Name == name); }
        public ToleranceSpec ToleranceFor(string output) { return Tolerances.Find(t => t.Output == output); }

        /// <summary>The cases a host loop runs to reach <paramref name="target"/>: its chain root first, target last.</summary>
        public List<GoldenCase> ChainTo(GoldenCase target)
        {
            var steps = new List<GoldenCase>();
            var seen = new HashSet<string>();
            for (var c = target; c != null; c = c.Chain == null ? null : Golden(c.Chain.After))
            {
                if (!seen.Add(c.Name)) throw new BundleException("graph " + Name, "golden chain loops at case " + c.Name, null, null);
                steps.Insert(0, c);
            }
            return steps;
        }
    }

    public sealed class ComponentEntry
    {
        public string Name, Description;
        public List<GraphEntry> Graphs = new List<GraphEntry>();
        public JsonValue Constants;
        public List<ArrayFile> Data = new List<ArrayFile>();
    }

    public sealed partial class BundleManifest
    {
        /// <summary>generator.name of every bundle (packager GENERATOR_NAME, the schema's const).</summary>
        public const string Generator = "cosyvoice3-unity-packager";

        public string GeneratorName, GeneratorVersion, BundleName, BundlePackage;
        public string SourceKind, SourcePreset, SourceName;
        public string ModelId;   // source.model_id: the model's identity; voice packs are tied to it
        public long SourceSeed;
        public string TargetRuntime, TargetUnityPackage, TargetPackageVersion, TargetNamespace, TargetBackend;
        public List<ComponentEntry> Components = new List<ComponentEntry>();

        public static BundleManifest Parse(string json, string origin)
        {
            var root = Json.Parse(json, origin);
            var r = new Reader(origin);
            var m = new BundleManifest();
            r.Object(root, new[] { "format_version", "generator", "bundle", "source", "target", "components" },
                     new[] { "precision_policy", "pipeline" });
            // Informational / later-use sections: the Python side validates them against the schema; here only their kind.
            if (root.Has("precision_policy")) r.Kind(root.Get("precision_policy"), JsonKind.Object);
            if (root.Has("pipeline")) r.Kind(root.Get("pipeline"), JsonKind.Object);
            var fv = root.Get("format_version");
            if (!(fv.IsInteger && fv.NumberValue == Schemas.ManifestFormatVersion))
                throw r.Err(fv, "unsupported format_version (rebuild the bundle with this packager)",
                            Schemas.ManifestFormatVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), Show(fv));
            var gen = root.Get("generator");
            r.Object(gen, new[] { "name", "version" }, new string[0]);
            m.GeneratorName = r.Str(gen, "name");
            if (m.GeneratorName != Generator) throw r.Err(gen.Get("name"), "unknown generator", Generator, m.GeneratorName);
            m.GeneratorVersion = r.Str(gen, "version", "^[0-9]+\\.[0-9]+\\.[0-9]+");
            var b = root.Get("bundle");
            r.Object(b, new[] { "name", "package" }, new string[0]);
            m.BundleName = r.Str(b, "name", "^[a-z0-9][a-z0-9._-]*$");
            m.BundlePackage = r.Str(b, "package", "^[a-z0-9]+(\\.[a-z0-9-]+)+$");
            ParseSource(r, root.Get("source"), m);
            var t = root.Get("target");
            r.Object(t, new[] { "runtime", "unity_package", "namespace", "backend" }, new[] { "package_version" });
            m.TargetRuntime = r.Enum(t, "runtime", "ie-2.4", "sentis-2.1");
            m.TargetUnityPackage = r.Enum(t, "unity_package", "com.unity.ai.inference", "com.unity.sentis");
            m.TargetPackageVersion = t.Has("package_version") ? r.Str(t, "package_version") : null;
            m.TargetNamespace = r.Enum(t, "namespace", "Unity.InferenceEngine", "Unity.Sentis");
            m.TargetBackend = r.Enum(t, "backend", "CPU");
            var comps = r.Array(root.Get("components"), 1, int.MaxValue);
            foreach (var c in comps) m.Components.Add(ParseComponent(r, c));
            m.Validate(origin);
            return m;
        }

        static void ParseSource(Reader r, JsonValue s, BundleManifest m)
        {
            // oneOf: {"kind": "preset", preset, seed, model_id} | {"kind": "checkpoint", name, files, model_id}
            r.Kind(s, JsonKind.Object);
            var kind = s.Get("kind");
            if (kind != null && kind.Kind == JsonKind.String && kind.StringValue == "preset")
            {
                r.Object(s, new[] { "kind", "preset", "seed", "model_id" }, new string[0]);
                m.SourceKind = "preset";
                m.SourcePreset = r.Enum(s, "preset", "tiny");
                m.SourceSeed = r.Int(s, "seed", long.MinValue, long.MaxValue);
                m.ModelId = r.Sha(s, "model_id");
            }
            else if (kind != null && kind.Kind == JsonKind.String && kind.StringValue == "checkpoint")
            {
                r.Object(s, new[] { "kind", "name", "files", "model_id" }, new string[0]);
                m.SourceKind = "checkpoint";
                m.SourceName = r.Str(s, "name");
                m.ModelId = r.Sha(s, "model_id");
                foreach (var f in r.Array(s.Get("files"), 0, int.MaxValue))
                {
                    r.Object(f, new[] { "path", "sha256", "bytes" }, new string[0]);
                    r.RelPath(f, "path");
                    r.Sha(f, "sha256");
                    r.Int(f, "bytes", 0, long.MaxValue);
                }
            }
            else throw r.Err(kind ?? s, "source.kind must be \"preset\" or \"checkpoint\"", "preset | checkpoint", kind == null ? "nothing" : Show(kind));
        }

        static ComponentEntry ParseComponent(Reader r, JsonValue c)
        {
            r.Object(c, new[] { "name", "graphs", "constants", "data" }, new[] { "description" });
            var ce = new ComponentEntry { Name = r.Str(c, "name", NamePattern), Description = r.OptStr(c, "description") };
            foreach (var g in r.Array(c.Get("graphs"), 1, int.MaxValue)) ce.Graphs.Add(ParseGraph(r, g));
            ce.Constants = c.Get("constants");
            r.Kind(ce.Constants, JsonKind.Object);
            foreach (var d in r.Array(c.Get("data"), 0, int.MaxValue)) ce.Data.Add(r.ArrayFileOf(d));
            return ce;
        }

        const string NamePattern = "^[a-z][a-z0-9_]*$";

        static GraphEntry ParseGraph(Reader r, JsonValue g)
        {
            r.Object(g, new[] { "name", "file", "sha256", "bytes", "opset", "precision", "unity_quantization", "inputs", "outputs", "tolerances", "goldens", "timeout_ms" },
                     new[] { "description", "external_data", "sentis_importable", "measured", "precision_cost" });
            if (g.Has("precision_cost")) r.Kind(g.Get("precision_cost"), JsonKind.Object);
            var ge = new GraphEntry
            {
                Name = r.Str(g, "name", NamePattern),
                Description = r.OptStr(g, "description"),
                File = r.RelPath(g, "file"),
                Sha256 = r.Sha(g, "sha256"),
                Bytes = r.Int(g, "bytes", 1, long.MaxValue),
                Opset = (int)r.Int(g, "opset", 7, 20),
                Precision = r.Enum(g, "precision", "fp32", "fp16", "uint8", "int8"),
                UnityQuantization = r.Enum(g, "unity_quantization", "none", "float16", "uint8"),
                TimeoutMs = (int)r.Int(g, "timeout_ms", 1000, int.MaxValue),
            };
            if (g.Has("external_data"))
            {
                var x = g.Get("external_data");
                r.Object(x, new[] { "file", "sha256", "bytes" }, new string[0]);
                ge.ExternalData = new FileRef { File = r.RelPath(x, "file"), Sha256 = r.Sha(x, "sha256"), Bytes = r.Int(x, "bytes", 0, long.MaxValue) };
            }
            if (g.Has("sentis_importable")) { r.Kind(g.Get("sentis_importable"), JsonKind.Bool); ge.SentisImportable = g.Get("sentis_importable").BoolValue; }
            foreach (var t in r.Array(g.Get("inputs"), 1, int.MaxValue)) ge.Inputs.Add(r.Tensor(t));
            foreach (var t in r.Array(g.Get("outputs"), 1, int.MaxValue)) ge.Outputs.Add(r.Tensor(t));
            foreach (var t in r.Array(g.Get("tolerances"), 0, int.MaxValue)) ge.Tolerances.Add(r.Tol(t));
            foreach (var gc in r.Array(g.Get("goldens"), 0, int.MaxValue)) ge.Goldens.Add(r.Golden(gc));
            if (g.Has("measured"))
            {
                foreach (var me in r.Array(g.Get("measured"), 0, int.MaxValue))
                {
                    r.Object(me, new[] { "output", "max_abs" }, new[] { "mean_abs", "cosine", "sqnr_db", "top1", "kl" });
                    r.Str(me, "output");
                    foreach (var kv in me.Members) if (kv.Key != "output") r.Kind(kv.Value, JsonKind.Number);
                }
            }
            return ge;
        }

        /// <summary>
        /// Cross-references the schema cannot express (packager/contract/manifest.py cross_reference_problems is the same rule
        /// set; tests/csharp/core_vectors.py checks both on the same manifests): unique names per scope (components and
        /// graphs bundle-wide, data per component, inputs/outputs/tolerances/goldens per graph, arrays per case);
        /// tolerances, goldens and carries name real graph inputs/outputs; every golden case has all the graph's
        /// inputs and a tolerance for each output; golden arrays have the graph tensor's dtype, rank and fixed dims;
        /// a chain's "after" is an earlier case of the same graph.
        /// </summary>
        void Validate(string origin)
        {
            try { ValidateReferences(); }
            catch (BundleException e) { throw new BundleException(origin + ": " + e.Message); }
        }

        void ValidateReferences()
        {
            Unique(Components.ConvertAll(c => c.Name), "components");
            var graphNames = new List<string>();
            foreach (var c in Components) graphNames.AddRange(c.Graphs.ConvertAll(g => g.Name));
            Unique(graphNames, "graphs (bundle-wide: each is Models/<name>.onnx)");
            foreach (var c in Components)
            {
                Unique(c.Data.ConvertAll(d => d.Name), "component " + c.Name + " data");
                CheckGraphRoles(c);
                foreach (var g in c.Graphs)
                {
                    string where = c.Name + "/" + g.Name;
                    Unique(g.Inputs.ConvertAll(t => t.Name), where + " inputs");
                    Unique(g.Outputs.ConvertAll(t => t.Name), where + " outputs");
                    Unique(g.Tolerances.ConvertAll(t => t.Output), where + " tolerances");
                    Unique(g.Goldens.ConvertAll(t => t.Name), where + " goldens");
                    foreach (var t in g.Tolerances)
                        if (g.Outputs.Find(o => o.Name == t.Output) == null)
                            throw new BundleException(where, "tolerance for unknown output \"" + t.Output + "\"", Names(g.Outputs), t.Output);
                    for (int i = 0; i < g.Goldens.Count; i++)
                    {
                        var gc = g.Goldens[i];
                        string cw = where + "/" + gc.Name;
                        CheckArrays(gc.Inputs, g.Inputs, cw + " inputs");
                        CheckArrays(gc.Outputs, g.Outputs, cw + " outputs");
                        foreach (var t in g.Inputs)
                            if (gc.Inputs.Find(f => f.Name == t.Name) == null)
                                throw new BundleException(cw, "golden case lacks graph input \"" + t.Name + "\"", Names(g.Inputs), string.Join(", ", gc.Inputs.ConvertAll(f => f.Name).ToArray()));
                        foreach (var o in gc.Outputs)
                            if (g.ToleranceFor(o.Name) == null)
                                throw new BundleException(cw, "golden output \"" + o.Name + "\" has no tolerance", "a tolerances entry", "none");
                        if (gc.Chain == null) continue;
                        int prev = g.Goldens.FindIndex(x => x.Name == gc.Chain.After);
                        if (prev < 0 || prev >= i)
                            throw new BundleException(cw, "chain.after must name an earlier case of this graph", "an earlier case", gc.Chain.After);
                        foreach (var kv in gc.Chain.Carry)
                        {
                            if (g.Inputs.Find(t => t.Name == kv.Key) == null)
                                throw new BundleException(cw, "chain.carry names an unknown input \"" + kv.Key + "\"", Names(g.Inputs), kv.Key);
                            if (g.Outputs.Find(t => t.Name == kv.Value) == null)
                                throw new BundleException(cw, "chain.carry takes an unknown output \"" + kv.Value + "\"", Names(g.Outputs), kv.Value);
                        }
                    }
                }
            }
        }

        static void CheckArrays(List<ArrayFile> files, List<TensorSpec> specs, string where)
        {
            Unique(files.ConvertAll(f => f.Name), where);
            foreach (var f in files)
            {
                var spec = specs.Find(s => s.Name == f.Name);
                if (spec == null) throw new BundleException(where, "golden tensor \"" + f.Name + "\" is not a graph tensor", Names(specs), f.Name);
                if (spec.DType != f.DType) throw new BundleException(where + " " + f.Name, "golden dtype differs from the graph's", spec.DType, f.DType);
                if (spec.Shape.Length != f.Shape.Length)
                    throw new BundleException(where + " " + f.Name, "golden rank differs from the graph's", spec.Shape.Length.ToString(), f.Shape.Length.ToString());
                for (int i = 0; i < f.Shape.Length; i++)
                    if (spec.Shape[i] is long && (long)spec.Shape[i] != f.Shape[i])
                        throw new BundleException(where + " " + f.Name, "golden dim " + i + " differs from the graph's fixed dim", spec.Shape[i].ToString(), f.Shape[i].ToString());
            }
        }

        static string Names(List<TensorSpec> specs) { return string.Join(", ", specs.ConvertAll(s => s.Name).ToArray()); }

        /// <summary>constants.graphs (role -> graph name), where a component has it, names only this component's
        /// graphs: the host loops look every graph up by role.</summary>
        static void CheckGraphRoles(ComponentEntry c)
        {
            if (c.Constants == null || c.Constants.Kind != JsonKind.Object || !c.Constants.Has("graphs")) return;
            var roles = c.Constants.Get("graphs");
            if (roles.Kind != JsonKind.Object) return;
            var own = string.Join(", ", c.Graphs.ConvertAll(g => g.Name).ToArray());
            foreach (var kv in roles.Members)
                if (kv.Value.Kind == JsonKind.String && c.Graphs.Find(g => g.Name == kv.Value.StringValue) == null)
                    throw new BundleException(c.Name, "constants.graphs." + kv.Key + " is not a graph of this component",
                                              own, kv.Value.StringValue);
        }

        static void Unique(List<string> names, string where)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var n in names)
                if (!seen.Add(n)) throw new BundleException(where, "duplicate name \"" + n + "\"", "unique names", n);
        }

        internal static string Show(JsonValue v)
        {
            switch (v.Kind)
            {
                case JsonKind.String: return "\"" + v.StringValue + "\"";
                case JsonKind.Number: return v.NumberValue.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
                case JsonKind.Bool: return v.BoolValue ? "true" : "false";
                default: return JsonValue.KindName(v.Kind);
            }
        }
    }
}
