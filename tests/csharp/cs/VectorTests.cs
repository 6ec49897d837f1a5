// The C# half of the shared-vector check (tests/csharp/core_vectors.py writes the vectors and the Python verdicts).
// Each case asserts that the C# verdict equals the recorded Python verdict, and appends the C# verdict to
// $COSY_RESULTS (JSON lines) so that tests/csharp/test_core.py can compare the two sides independently as well.
// $COSY_VECTORS is the vectors folder.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using CosyVoice3.Core;
using NUnit.Framework;

namespace CosyVoice3.Tests
{
    public class VectorTests
    {
        static readonly VectorSet Vectors = new VectorSet("COSY", "vectors");
        static string Dir { get { return Vectors.Dir; } }
        static JsonValue Index { get { return Vectors.Index; } }

        static IEnumerable<TestCaseData> Of(string kind, string nameKey)
        {
            foreach (var v in Index.Get(kind).Items)
                yield return new TestCaseData(v).SetName(kind + "." + Escape(v.Get(nameKey).StringValue));
        }

        public static IEnumerable<TestCaseData> NpyCases() { return Of("npy", "name"); }
        public static IEnumerable<TestCaseData> ToleranceCases() { return Of("tolerance", "name"); }
        public static IEnumerable<TestCaseData> ManifestCases() { return Of("manifest", "name"); }
        public static IEnumerable<TestCaseData> PathCases() { return Of("paths", "path"); }
        public static IEnumerable<TestCaseData> ShaCases() { return Of("sha", "name"); }

        [Test, TestCaseSource(nameof(NpyCases))]
        public void Npy(JsonValue v)
        {
            var py = v.Get("python");
            string name = v.Get("name").StringValue;
            NpyArray arr = null;
            string error = null;
            try { arr = CosyVoice3.Core.Npy.ReadFile(Path.Combine(Dir, v.Get("file").StringValue)); }
            catch (BundleException e) { error = e.Message; }
            var r = new Result("npy", name).Add("ok", arr != null).Add("error", error);
            if (arr != null)
            {
                var values = new List<string>();
                foreach (var x in Tolerance.ToDoubles(arr)) values.Add(Num(x));
                r.Add("dtype", arr.DTypeName).AddRaw("shape", Ints(arr.Shape)).AddRaw("values", "[" + string.Join(", ", values.ToArray()) + "]");
            }
            r.Write();
            Assert.AreEqual(py.Get("ok").BoolValue, arr != null, name + ": C# and Python disagree on acceptance; C# error: " + error);
            if (arr == null) return;
            Assert.AreEqual(py.Get("dtype").StringValue, arr.DTypeName, name + " dtype");
            Assert.AreEqual(IntsOf(py.Get("shape")), Ints(arr.Shape), name + " shape");
            var want = py.Get("values").Items;
            Assert.AreEqual(want.Count, arr.Length, name + " length");
            for (int i = 0; i < want.Count; i++) Assert.AreEqual(NumOf(want[i]), arr[i], 0.0, name + " value " + i);
        }

        [Test]
        public void HalfConversionIsExactForAllBitPatterns()
        {
            var half = Index.Get("half");
            var f16 = CosyVoice3.Core.Npy.ReadFile(Path.Combine(Dir, half.Get("f16").StringValue));
            var f32 = CosyVoice3.Core.Npy.ReadFile(Path.Combine(Dir, half.Get("f32").StringValue));
            Assert.AreEqual(65536, f16.Length, "all float16 patterns");
            int bad = 0, first = -1;
            for (int i = 0; i < f16.Length; i++)
            {
                int a = BitConverter.ToInt32(BitConverter.GetBytes(f16.Floats[i]), 0);
                int b = BitConverter.ToInt32(BitConverter.GetBytes(f32.Floats[i]), 0);
                if (a != b) { bad++; if (first < 0) first = i; }
            }
            Assert.AreEqual(0, bad, "float16 patterns converted differently from numpy; first: 0x" + (first < 0 ? "" : first.ToString("x4")));
        }

        [Test, TestCaseSource(nameof(ToleranceCases))]
        public void ToleranceVerdict(JsonValue v)
        {
            string name = v.Get("name").StringValue;
            var actual = CosyVoice3.Core.Npy.ReadFile(Path.Combine(Dir, v.Get("actual").StringValue));
            var expected = CosyVoice3.Core.Npy.ReadFile(Path.Combine(Dir, v.Get("expected").StringValue));
            var tol = ParseTolerance(v.Get("tolerance"));
            var verdict = Tolerance.Compare("y", actual, expected, tol);
            var metrics = new List<string>();
            foreach (var kv in verdict.Metrics) metrics.Add(Str(kv.Key) + ": " + Num(kv.Value));
            new Result("tolerance", name).Add("passed", verdict.Passed).AddRaw("max_abs", Num(verdict.MaxAbs))
                .AddRaw("worst_index", Ints(verdict.WorstIndex)).AddRaw("actual_at_worst", Num(verdict.ActualAtWorst))
                .AddRaw("expected_at_worst", Num(verdict.ExpectedAtWorst))
                .AddRaw("metrics", "{" + string.Join(", ", metrics.ToArray()) + "}").AddRaw("reasons", verdict.Reasons.Count.ToString())
                .Add("summary", verdict.Summary()).Write();

            var py = v.Get("python");
            Assert.AreEqual(py.Get("passed").BoolValue, verdict.Passed, name + ": verdicts differ; C#: " + verdict.Summary());
            Assert.AreEqual(IntsOf(py.Get("worst_index")), Ints(verdict.WorstIndex), name + " worst index");
            Close(NumOf(py.Get("max_abs")), verdict.MaxAbs, name + " max_abs");
            Assert.AreEqual(py.Get("reasons").NumberValue, (double)verdict.Reasons.Count, 0.0, name + " number of reasons");
            var pm = py.Get("metrics");
            Assert.AreEqual(pm.Members.Count, verdict.Metrics.Count, name + " metric count");
            foreach (var kv in pm.Members) Close(NumOf(kv.Value), verdict.Metrics[kv.Key], name + " " + kv.Key);
        }

        [Test, TestCaseSource(nameof(ManifestCases))]
        public void ManifestVerdict(JsonValue v)
        {
            string name = v.Get("name").StringValue;
            string error = null;
            try { BundleManifest.Parse(File.ReadAllText(Path.Combine(Dir, v.Get("file").StringValue)), name + ".json"); }
            catch (BundleException e) { error = e.Message; }
            new Result("manifest", name).Add("ok", error == null).Add("error", error).Write();
            Assert.AreEqual(v.Get("python").Get("ok").BoolValue, error == null, name + ": verdicts differ; C# error: " + error);
        }

        [Test, TestCaseSource(nameof(PathCases))]
        public void PathVerdict(JsonValue v)
        {
            string path = v.Get("path").StringValue, reason;
            bool ok = BundleFiles.IsSafeRelativePath(path, out reason);
            // A rejected path must also be refused by Resolve (the check used before every file access).
            if (!ok) Assert.Throws<BundleException>(() => BundleFiles.Resolve(Dir, path, "test"));
            new Result("paths", path).Add("ok", ok).Add("error", reason).Write();
            Assert.AreEqual(v.Get("python").Get("ok").BoolValue, ok, "path \"" + Escape(path) + "\": verdicts differ (" + reason + ")");
        }

        [Test, TestCaseSource(nameof(ShaCases))]
        public void ShaVerdict(JsonValue v)
        {
            string name = v.Get("name").StringValue, rel = v.Get("file").StringValue, error = null;
            try
            {
                BundleFiles.Verify(BundleFiles.Resolve(Dir, rel, "test"), rel, v.Get("sha256").StringValue, (long)v.Get("bytes").NumberValue, "test");
            }
            catch (BundleException e) { error = e.Message; }
            new Result("sha", name).Add("ok", error == null).Add("error", error).Write();
            Assert.AreEqual(v.Get("python").Get("ok").BoolValue, error == null, name + ": verdicts differ; C# error: " + error);
        }

        // ---------------------------------------------------------------------------------------------- helpers

        internal static ToleranceSpec ParseTolerance(JsonValue t)
        {
            var spec = new ToleranceSpec { Output = t.Get("output").StringValue, Atol = t.Get("atol").NumberValue, Rtol = t.Get("rtol").NumberValue };
            if (t.Has("exact")) spec.Exact = t.Get("exact").BoolValue;
            if (t.Has("elementwise")) spec.Elementwise = t.Get("elementwise").BoolValue;
            if (t.Has("metrics")) foreach (var kv in t.Get("metrics").Members) spec.Metrics[kv.Key] = kv.Value.NumberValue;
            return spec;
        }

        static void Close(double want, double got, string what)
        {
            // Same formula, different summation order (numpy's pairwise/BLAS sums vs a plain loop): allow ulp-level noise.
            if (double.IsNaN(want) || double.IsInfinity(want) || double.IsNaN(got) || double.IsInfinity(got))
            {
                Assert.AreEqual(want, got, what);
                return;
            }
            Assert.AreEqual(want, got, 1e-12 + 1e-9 * Math.Abs(want), what);
        }

        static double NumOf(JsonValue v)
        {
            if (v.Kind == JsonKind.Number) return v.NumberValue;
            switch (v.StringValue)
            {
                case "nan": return double.NaN;
                case "inf": return double.PositiveInfinity;
                case "-inf": return double.NegativeInfinity;
            }
            throw new FormatException("not a number: " + v.StringValue);
        }

        static string IntsOf(JsonValue arr)
        {
            var xs = new int[arr.Items.Count];
            for (int i = 0; i < xs.Length; i++) xs[i] = (int)arr.Items[i].NumberValue;
            return Ints(xs);
        }

        static string Ints(int[] xs)
        {
            var parts = new string[xs.Length];
            for (int i = 0; i < xs.Length; i++) parts[i] = xs[i].ToString(CultureInfo.InvariantCulture);
            return "[" + string.Join(", ", parts) + "]";
        }

        internal static string Num(double x)
        {
            if (double.IsNaN(x)) return "\"nan\"";
            if (double.IsPositiveInfinity(x)) return "\"inf\"";
            if (double.IsNegativeInfinity(x)) return "\"-inf\"";
            return x.ToString("R", CultureInfo.InvariantCulture);
        }

        internal static string Str(string s)
        {
            if (s == null) return "null";
            var sb = new StringBuilder("\"");
            foreach (char c in s)
            {
                if (c == '"' || c == '\\') sb.Append('\\').Append(c);
                else if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            return sb.Append('"').ToString();
        }

        static string Escape(string s) { var q = Str(s); return q.Substring(1, q.Length - 2); }

        /// <summary>One JSON line of $COSY_RESULTS.</summary>
        sealed class Result
        {
            readonly List<string> fields = new List<string>();
            public Result(string kind, string name) { Add("kind", kind).Add("name", name); }
            public Result Add(string key, string value) { return AddRaw(key, Str(value)); }
            public Result Add(string key, bool value) { return AddRaw(key, value ? "true" : "false"); }
            public Result AddRaw(string key, string json) { fields.Add(Str(key) + ": " + json); return this; }

            public void Write()
            {
                Vectors.WriteLine("{" + string.Join(", ", fields.ToArray()) + "}");
            }
        }
    }
}
