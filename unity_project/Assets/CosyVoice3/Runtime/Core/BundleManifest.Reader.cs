// The schema-checking JSON accessors behind BundleManifest.Parse (schemas/manifest.schema.json, "$defs"):
// required/unknown keys, types, enums, patterns, ranges, safe paths. Every error names the manifest path of the
// offending value ("components[0].graphs[1].timeout_ms") and what was expected and found.
using System.Collections.Generic;
using System.Text.RegularExpressions;

namespace CosyVoice3.Core
{
    public sealed partial class BundleManifest
    {
        /// <summary>Typed, schema-checking accessors; every error names the manifest path of the offending value.</summary>
        sealed class Reader
        {
            readonly string origin;
            public Reader(string origin) { this.origin = origin; }

            public BundleException Err(JsonValue at, string message, string expected, string found)
            {
                return new BundleException(origin + ": " + at.Path, message, expected, found);
            }

            public void Kind(JsonValue v, JsonKind k)
            {
                if (v.Kind != k) throw Err(v, "wrong type", JsonValue.KindName(k), JsonValue.KindName(v.Kind));
            }

            public void Object(JsonValue v, string[] required, string[] optional)
            {
                Kind(v, JsonKind.Object);
                foreach (var k in required)
                    if (!v.Has(k)) throw Err(v, "missing required key \"" + k + "\"", string.Join(", ", required), null);
                foreach (var kv in v.Members)
                    if (System.Array.IndexOf(required, kv.Key) < 0 && System.Array.IndexOf(optional, kv.Key) < 0)
                        throw Err(v, "unknown key \"" + kv.Key + "\"", "only " + Known(required, optional), kv.Key);
            }

            static string Known(string[] required, string[] optional)
            {
                var all = new List<string>(required);
                all.AddRange(optional);
                return string.Join(", ", all.ToArray());
            }

            public IList<JsonValue> Array(JsonValue v, int minItems, int maxItems)
            {
                Kind(v, JsonKind.Array);
                if (v.Items.Count < minItems) throw Err(v, "too few items", ">= " + minItems, v.Items.Count.ToString());
                if (v.Items.Count > maxItems) throw Err(v, "too many items", "<= " + maxItems, v.Items.Count.ToString());
                return v.Items;
            }

            public string Str(JsonValue obj, string key, string pattern = null)
            {
                var v = obj.Get(key);
                Kind(v, JsonKind.String);
                if (pattern != null && !Regex.IsMatch(v.StringValue, pattern, RegexOptions.CultureInvariant))
                    throw Err(v, "does not match the required pattern", pattern, Show(v));
                return v.StringValue;
            }

            public string OptStr(JsonValue obj, string key) { return obj.Has(key) ? Str(obj, key) : null; }

            public string Enum(JsonValue obj, string key, params string[] allowed)
            {
                var v = obj.Get(key);
                if (v.Kind != JsonKind.String || System.Array.IndexOf(allowed, v.StringValue) < 0)
                    throw Err(v, "value not allowed", "one of " + string.Join(", ", allowed), Show(v));
                return v.StringValue;
            }

            public long Int(JsonValue obj, string key, long min, long max)
            {
                var v = obj.Get(key);
                if (!v.IsInteger) throw Err(v, "wrong type", "integer", Show(v));
                if (v.NumberValue < min || v.NumberValue > max) throw Err(v, "out of range", "[" + min + ", " + max + "]", Show(v));
                return (long)v.NumberValue;
            }

            public double Num(JsonValue obj, string key, double min)
            {
                var v = obj.Get(key);
                Kind(v, JsonKind.Number);
                if (v.NumberValue < min) throw Err(v, "out of range", ">= " + min, Show(v));
                return v.NumberValue;
            }

            public string RelPath(JsonValue obj, string key)
            {
                var s = Str(obj, key);
                string reason;
                if (!BundleFiles.IsSafeRelativePath(s, out reason))
                    throw Err(obj.Get(key), "unsafe bundle path (" + reason + ")", "a relative path inside the bundle", Show(obj.Get(key)));
                return s;
            }

            public string Sha(JsonValue obj, string key)
            {
                var s = Str(obj, key);
                if (!BundleFiles.IsSha256Hex(s)) throw Err(obj.Get(key), "not a sha256", "64 lowercase hex digits", Show(obj.Get(key)));
                return s;
            }

            string DType(JsonValue obj) { return Enum(obj, "dtype", "float32", "int32"); }

            public TensorSpec Tensor(JsonValue t)
            {
                Object(t, new[] { "name", "dtype", "shape" }, new[] { "description" });
                var spec = new TensorSpec { Name = Str(t, "name"), DType = DType(t), Description = OptStr(t, "description") };
                if (spec.Name.Length == 0) throw Err(t.Get("name"), "empty name", "a non-empty name", "\"\"");
                var dims = Array(t.Get("shape"), 0, 8);
                spec.Shape = new object[dims.Count];
                for (int i = 0; i < dims.Count; i++)
                {
                    var d = dims[i];
                    if (d.IsInteger && d.NumberValue >= 0) spec.Shape[i] = (long)d.NumberValue;
                    else if (d.Kind == JsonKind.String && Regex.IsMatch(d.StringValue, NamePattern)) spec.Shape[i] = d.StringValue;
                    else throw Err(d, "bad dim", "an integer >= 0 or a snake_case name", Show(d));
                }
                return spec;
            }

            public ArrayFile ArrayFileOf(JsonValue a)
            {
                Object(a, new[] { "name", "file", "sha256", "bytes", "dtype", "shape" }, new[] { "description" });
                var f = new ArrayFile
                {
                    Name = Str(a, "name"), File = RelPath(a, "file"), Sha256 = Sha(a, "sha256"),
                    Bytes = Int(a, "bytes", 0, long.MaxValue), DType = DType(a), Description = OptStr(a, "description"),
                };
                if (f.Name.Length == 0) throw Err(a.Get("name"), "empty name", "a non-empty name", "\"\"");
                var dims = Array(a.Get("shape"), 0, int.MaxValue);
                f.Shape = new int[dims.Count];
                for (int i = 0; i < dims.Count; i++)
                {
                    if (!dims[i].IsInteger || dims[i].NumberValue < 0) throw Err(dims[i], "bad dim", "an integer >= 0", Show(dims[i]));
                    if (dims[i].NumberValue > int.MaxValue) throw Err(dims[i], "dim too large", "< 2^31", Show(dims[i]));
                    f.Shape[i] = (int)dims[i].NumberValue;
                }
                return f;
            }

            public ToleranceSpec Tol(JsonValue t)
            {
                Object(t, new[] { "output", "atol", "rtol" }, new[] { "exact", "elementwise", "metrics" });
                var spec = new ToleranceSpec { Output = Str(t, "output"), Atol = Num(t, "atol", 0), Rtol = Num(t, "rtol", 0) };
                if (spec.Output.Length == 0) throw Err(t.Get("output"), "empty output name", "a non-empty name", "\"\"");
                if (t.Has("exact")) { Kind(t.Get("exact"), JsonKind.Bool); spec.Exact = t.Get("exact").BoolValue; }
                if (t.Has("elementwise")) { Kind(t.Get("elementwise"), JsonKind.Bool); spec.Elementwise = t.Get("elementwise").BoolValue; }
                if (t.Has("metrics"))
                {
                    var m = t.Get("metrics");
                    Object(m, new string[0], new[] { "cosine", "sqnr_db", "top1", "max_abs", "kl" });
                    foreach (var kv in m.Members)
                    {
                        double min = kv.Key == "cosine" || kv.Key == "sqnr_db" ? double.NegativeInfinity : 0;
                        double bound = Num(m, kv.Key, min);
                        if (kv.Key == "top1" && bound > 1) throw Err(kv.Value, "out of range", "<= 1", Show(kv.Value));
                        spec.Metrics[kv.Key] = bound;
                    }
                }
                return spec;
            }

            public GoldenCase Golden(JsonValue g)
            {
                Object(g, new[] { "name", "inputs", "outputs" }, new[] { "description", "chain" });
                var gc = new GoldenCase { Name = Str(g, "name", "^[A-Za-z0-9_]+$"), Description = OptStr(g, "description") };
                foreach (var a in Array(g.Get("inputs"), 0, int.MaxValue)) gc.Inputs.Add(ArrayFileOf(a));
                foreach (var a in Array(g.Get("outputs"), 0, int.MaxValue)) gc.Outputs.Add(ArrayFileOf(a));
                if (g.Has("chain"))
                {
                    var ch = g.Get("chain");
                    Object(ch, new[] { "after", "carry" }, new string[0]);
                    gc.Chain = new GoldenChain { After = Str(ch, "after") };
                    var carry = ch.Get("carry");
                    Kind(carry, JsonKind.Object);
                    foreach (var kv in carry.Members)
                    {
                        Kind(kv.Value, JsonKind.String);
                        gc.Chain.Carry.Add(new KeyValuePair<string, string>(kv.Key, kv.Value.StringValue));
                    }
                }
                return gc;
            }
        }
    }
}
