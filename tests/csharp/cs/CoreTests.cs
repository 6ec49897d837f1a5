// Unit tests of the Unity-independent runtime code (JSON reader, bundle loading, chains, file checks), run under
// plain mono by tests/csharp/harness/Runner.cs. The shared-vector tests are in VectorTests.cs.
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;
using NUnit.Framework;

namespace CosyVoice3.Tests
{
    public class JsonSchemaTests
    {
        static JsonSchemaError Check(string schema, string instance)
        {
            return new JsonSchema(schema, "s.json").Validate(Json.Parse(instance, "i.json"));
        }

        [Test]
        public void RefusesKeywordsItDoesNotImplement()
        {
            foreach (var kw in new[] { "oneOf", "allOf", "anyOf", "not", "if", "format", "exclusiveMinimum", "patternProperties" })
            {
                var e = Assert.Throws<BundleException>(() => new JsonSchema("{\"properties\": {\"a\": {\"" + kw + "\": []}}}", "s.json"));
                Assert.IsTrue(e.Message.Contains("\"" + kw + "\"") && e.Message.Contains("properties.a"), e.Message);
            }
            var r = Assert.Throws<BundleException>(() => new JsonSchema("{\"$ref\": \"other.json#/x\"}", "s.json"));
            Assert.IsTrue(r.Message.Contains("$ref"), r.Message);
        }

        [Test]
        public void ChecksEachKeywordItImplements()
        {
            const string s = "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"n\"], \"properties\": {"
                + "\"n\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 9}, \"c\": {\"const\": 1}, \"e\": {\"enum\": [\"x\", \"y\"]},"
                + "\"s\": {\"$ref\": \"#/$defs/hex\"}, \"t\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 2},"
                + "\"a\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 2, \"items\": {\"type\": \"number\"}}},"
                + "\"$defs\": {\"hex\": {\"type\": \"string\", \"pattern\": \"^[0-9a-f]+$\"}}}";
            Assert.IsNull(Check(s, "{\"n\": 2.0, \"c\": 1.0, \"e\": \"y\", \"s\": \"0af\", \"t\": \"\\ud83d\\ude00a\", \"a\": [1, 2.5]}"), "a conforming instance");
            var cases = new[]
            {
                new[] { "{}", "$", "missing required key \"n\"" },
                new[] { "{\"n\": 1, \"z\": 0}", "$", "unknown key \"z\"" },
                new[] { "{\"n\": 1.5}", "n", "wrong type" },
                new[] { "{\"n\": 0}", "n", "out of range" },
                new[] { "{\"n\": 10}", "n", "out of range" },
                new[] { "{\"n\": 1, \"c\": true}", "c", "wrong value" },
                new[] { "{\"n\": 1, \"c\": \"1\"}", "c", "wrong value" },
                new[] { "{\"n\": 1, \"e\": \"z\"}", "e", "value not allowed" },
                new[] { "{\"n\": 1, \"s\": \"0AF\"}", "s", "does not match the pattern" },
                new[] { "{\"n\": 1, \"t\": \"\"}", "t", "too short" },
                new[] { "{\"n\": 1, \"t\": \"abc\"}", "t", "too long" },
                new[] { "{\"n\": 1, \"a\": []}", "a", "too few items" },
                new[] { "{\"n\": 1, \"a\": [1, 2, 3]}", "a", "too many items" },
                new[] { "{\"n\": 1, \"a\": [1, \"2\"]}", "a[1]", "wrong type" },
                new[] { "[]", "$", "wrong type" },
            };
            foreach (var c in cases)
            {
                var e = Check(s, c[0]);
                Assert.IsNotNull(e, c[0]);
                Assert.AreEqual(c[1], e.At.Path, c[0]);
                Assert.IsTrue(e.Message.StartsWith(c[2], StringComparison.Ordinal), c[0] + ": " + e.Message);
                Assert.IsFalse(string.IsNullOrEmpty(e.Expected), c[0] + ": says what was expected");
            }
        }

        [Test]
        public void TheVoiceSchemaLoads()
        {
            var schema = new JsonSchema(Schemas.Voice, Schemas.VoiceFile);
            var e = schema.Validate(Json.Parse("{}", "voice.json"));
            Assert.IsTrue(e != null && e.Message.Contains("\"format\""), e == null ? "accepted {}" : e.Message);
        }
    }

    public class JsonTests
    {
        [Test]
        public void ParsesNestedValuesAndKeepsPaths()
        {
            var v = Json.Parse("{\"a\": [1, -2.5e3, \"x\\u00e9\\n\", true, null, {\"b\": {}}], \"c\": 0}", "t.json");
            Assert.AreEqual(JsonKind.Object, v.Kind);
            var a = v.Get("a");
            Assert.AreEqual(6, a.Items.Count);
            Assert.AreEqual(1.0, a.Items[0].NumberValue, 0.0, "int");
            Assert.IsTrue(a.Items[0].IsInteger);
            Assert.AreEqual(-2500.0, a.Items[1].NumberValue, 0.0, "exponent");
            Assert.AreEqual("x\u00e9\n", a.Items[2].StringValue);
            Assert.AreEqual(JsonKind.Null, a.Items[4].Kind);
            Assert.AreEqual("a[5].b", a.Items[5].Get("b").Path);
            Assert.AreEqual("c", v.Members[1].Key, "member order kept");
        }

        [Test]
        public void RejectsNonStrictJson()
        {
            foreach (var bad in new[] { "{\"a\": 1,}", "[1 2]", "{\"a\": NaN}", "{'a': 1}", "{\"a\": 01}", "{\"a\": 1} x",
                                        "{\"a\": 1, \"a\": 2}", "\"tab\there\"", "{\"a\": .5}", "{\"a\": 1.}", "", "[", "{\"a\": tru}" })
            {
                var e = Assert.Throws<BundleException>(() => Json.Parse(bad, "bad.json"));
                Assert.IsTrue(e.Message.StartsWith("bad.json:"), "error names the file: " + e.Message);
            }
        }

        [Test]
        public void ErrorsGiveLineAndColumn()
        {
            var e = Assert.Throws<BundleException>(() => Json.Parse("{\n  \"a\": [1,\n  ]}", "m.json"));
            Assert.IsTrue(e.Message.StartsWith("m.json:3:3:"), e.Message);
        }
    }

    public class BundleTests
    {
        static string Dir { get { return Path.Combine(Environment.GetEnvironmentVariable("COSY_VECTORS") ?? "vectors", "bundle"); } }

        [Test]
        public void LoadsTheVectorBundleAndItsGoldensPassAgainstThemselves()
        {
            var b = Bundle.Load(Dir);
            var m = b.Manifest;
            Assert.AreEqual("vectors", m.BundleName);
            Assert.AreEqual("com.example.vectors", m.BundlePackage);
            Assert.AreEqual("preset", m.SourceKind);
            Assert.AreEqual("Unity.InferenceEngine", m.TargetNamespace);
            var c = b.Component("demo");
            Assert.AreEqual(24000.0, c.Constants.Get("sample_rate").NumberValue, 0.0, "free-form constants are readable");
            Assert.AreEqual(new[] { 2, 3 }.Length, b.LoadArray(c.Data[0]).Shape.Length, "host data");
            int compared = 0;
            foreach (var g in c.Graphs)
            {
                b.VerifiedPath(g.File, g.Sha256, g.Bytes);
                foreach (var gc in g.Goldens)
                {
                    foreach (var f in gc.Inputs) b.LoadArray(f);
                    foreach (var f in gc.Outputs)
                    {
                        var arr = b.LoadArray(f);
                        var v = Tolerance.Compare(f.Name, arr, arr, g.ToleranceFor(f.Name));
                        Assert.IsTrue(v.Passed, v.Summary());
                        compared++;
                    }
                }
            }
            Assert.AreEqual(3, compared, "golden outputs compared");
            Assert.AreEqual(typeof(int), b.LoadArray(c.Graphs[0].Goldens[0].Inputs[1]).Ints.GetType().GetElementType());
        }

        [Test]
        public void ChainRunsFromItsRoot()
        {
            var g = Bundle.Load(Dir).Graph("demo", "step");
            var steps = g.ChainTo(g.Golden("s1"));
            Assert.AreEqual(2, steps.Count);
            Assert.AreEqual("s0", steps[0].Name);
            Assert.AreEqual("s1", steps[1].Name);
            Assert.AreEqual("next", steps[1].Chain.Carry[0].Value);
            Assert.AreEqual(1, g.ChainTo(g.Golden("s0")).Count);
            Assert.AreEqual("float16", g.UnityQuantization);
            Assert.AreEqual(1000, g.TimeoutMs);
        }

        [Test]
        public void CorruptedOrSwappedFilesAreRefused()
        {
            string tmp = Path.Combine(Path.GetTempPath(), "cosy-bundle-" + Guid.NewGuid().ToString("N"));
            Copy(Dir, tmp);
            try
            {
                var b = Bundle.Load(tmp);
                var g = b.Graph("demo", "enc");
                var golden = g.Goldens[0].Outputs[0];
                string path = Path.Combine(tmp, golden.File);
                var bytes = File.ReadAllBytes(path);
                bytes[bytes.Length - 1] ^= 0x40;   // same size, different content
                File.WriteAllBytes(path, bytes);
                var e = Assert.Throws<BundleException>(() => b.LoadArray(golden));
                Assert.IsTrue(e.Message.Contains("sha256") && e.Message.Contains(golden.File), e.Message);

                File.AppendAllText(Path.Combine(tmp, g.File), "x");
                e = Assert.Throws<BundleException>(() => b.VerifiedPath(g.File, g.Sha256, g.Bytes));
                Assert.IsTrue(e.Message.Contains("wrong size"), e.Message);

                // A golden whose bytes are valid but whose manifest dtype says otherwise is refused too.
                var other = g.Goldens[0].Inputs[1];   // int32 ids
                var lie = new ArrayFile { Name = other.Name, File = other.File, Sha256 = other.Sha256, Bytes = other.Bytes, DType = "float32", Shape = other.Shape };
                e = Assert.Throws<BundleException>(() => b.LoadArray(lie));
                Assert.IsTrue(e.Message.Contains("dtype"), e.Message);
            }
            finally { Directory.Delete(tmp, true); }
        }

        [Test]
        public void ResolveStaysInsideTheRoot()
        {
            Assert.AreEqual(Path.GetFullPath(Path.Combine(Dir, "Models", "enc.onnx")), BundleFiles.Resolve(Dir, "Models/enc.onnx", "t"));
            foreach (var bad in new[] { "../x", "Models/../../x", "/etc/passwd", "a\\..\\..\\x", "C:x", "" })
                Assert.Throws<BundleException>(() => BundleFiles.Resolve(Dir, bad, "t"));
        }

        [Test]
        public void ManifestErrorsNameTheField()
        {
            var text = File.ReadAllText(Path.Combine(Dir, "manifest.json")).Replace("\"timeout_ms\": 1000", "\"timeout_ms\": 10");
            var e = Assert.Throws<BundleException>(() => BundleManifest.Parse(text, "manifest.json"));
            Assert.IsTrue(e.Message.Contains("components[0].graphs[1].timeout_ms") && e.Message.Contains("found 10"), e.Message);
        }

        static void Copy(string from, string to)
        {
            Directory.CreateDirectory(to);
            foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
            foreach (var d in Directory.GetDirectories(from)) Copy(d, Path.Combine(to, Path.GetFileName(d)));
        }
    }

    public class NpyTests
    {
        [Test]
        public void HalfSpecialValues()
        {
            Assert.AreEqual(1.0, (double)Npy.HalfToFloat(0x3c00), 0.0, "one");
            Assert.AreEqual(-2.0, (double)Npy.HalfToFloat(0xc000), 0.0, "minus two");
            Assert.AreEqual(65504.0, (double)Npy.HalfToFloat(0x7bff), 0.0, "max");
            Assert.AreEqual(Math.Pow(2, -24), (double)Npy.HalfToFloat(0x0001), 0.0, "smallest subnormal");
            Assert.IsTrue(float.IsPositiveInfinity(Npy.HalfToFloat(0x7c00)), "inf");
            Assert.IsTrue(float.IsNaN(Npy.HalfToFloat(0x7e00)), "nan");
        }

        [Test]
        public void ErrorsNameTheFileAndWhatWasFound()
        {
            var bytes = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 };
            string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }";
            bytes.Add((byte)header.Length); bytes.Add(0);
            foreach (char ch in header) bytes.Add((byte)ch);
            bytes.AddRange(new byte[8]);
            var e = Assert.Throws<BundleException>(() => Npy.Read(bytes.ToArray(), "Golden~/x/out.y.npy"));
            Assert.IsTrue(e.Message.StartsWith("Golden~/x/out.y.npy:") && e.Message.Contains("'<f8'"), e.Message);
        }
    }
}

namespace CosyVoice3.Tests
{
    /// <summary>
    /// Loads a real installed bundle ($COSY_REAL_BUNDLE, set by tests/verbs/test_unity_install.py) the way the EditMode
    /// tests do, minus Sentis: manifest, every file's sha256, every golden array, every chain and its carries.
    /// </summary>
    public class RealBundleTests
    {
        static int Bits(float x) { return BitConverter.ToInt32(BitConverter.GetBytes(x), 0); }

        static void AssertSameArray(NpyArray want, NpyArray got, string what)
        {
            Assert.AreEqual(NpyArray.ShapeToString(want.Shape), NpyArray.ShapeToString(got.Shape), what + " shape");
            if (want.Floats != null)
                for (int i = 0; i < want.Floats.Length; i++)
                    Assert.AreEqual(Bits(want.Floats[i]), Bits(got.Floats[i]), what + " differs at " + i);
            if (want.Ints != null)
                for (int i = 0; i < want.Ints.Length; i++) Assert.AreEqual(want.Ints[i], got.Ints[i], what + " at " + i);
        }

        [Test]
        public void InstalledBundleLoadsLikeTheEditModeTests()
        {
            string dir = Environment.GetEnvironmentVariable("COSY_REAL_BUNDLE");
            if (string.IsNullOrEmpty(dir)) return;   // only meaningful with a built bundle
            var b = Bundle.Load(dir);
            int graphs = 0, cases = 0, arrays = 0, carries = 0;
            foreach (var c in b.Manifest.Components)
            {
                foreach (var f in c.Data) { b.LoadArray(f); arrays++; }
                foreach (var g in c.Graphs)
                {
                    graphs++;
                    b.VerifiedPath(g.File, g.Sha256, g.Bytes);
                    if (g.ExternalData != null) b.VerifiedPath(g.ExternalData.File, g.ExternalData.Sha256, g.ExternalData.Bytes);
                    foreach (var gc in g.Goldens)
                    {
                        cases++;
                        foreach (var f in gc.Inputs) { b.LoadArray(f); arrays++; }
                        foreach (var f in gc.Outputs)
                        {
                            var arr = b.LoadArray(f);
                            arrays++;
                            Assert.IsTrue(Tolerance.Compare(f.Name, arr, arr, g.ToleranceFor(f.Name)).Passed, f.File + " vs itself");
                        }
                        var steps = g.ChainTo(gc);
                        // RunChain with a stand-in graph that answers each step with that step's stored outputs: every
                        // carried input it is fed is the previous step's golden output, and it returns the target's.
                        int at = 0;
                        var got = b.RunChain(g, gc, inputs =>
                        {
                            var step = steps[at++];
                            if (step.Chain != null)
                                foreach (var kv in step.Chain.Carry)
                                {
                                    var from = steps[at - 2].Outputs.Find(x => x.Name == kv.Value);
                                    AssertSameArray(b.LoadArray(from), inputs[kv.Key], step.Name + " carried " + kv.Key);
                                }
                            var outs = new Dictionary<string, NpyArray>();
                            foreach (var f in step.Outputs) outs[f.Name] = b.LoadArray(f);
                            return outs;
                        });
                        Assert.AreEqual(steps.Count, at, gc.Name + ": RunChain ran every step of the chain once");
                        foreach (var f in gc.Outputs) AssertSameArray(b.LoadArray(f), got[f.Name], gc.Name + " " + f.Name);
                        if (gc.Chain == null) continue;
                        // A carried output of the previous case must fit the input it replaces (same dtype and rank).
                        var prev = steps[steps.Count - 2];
                        foreach (var kv in gc.Chain.Carry)
                        {
                            var into = gc.Inputs.Find(x => x.Name == kv.Key);
                            var from = prev.Outputs.Find(x => x.Name == kv.Value);
                            Assert.IsNotNull(into, gc.Name + ": carried input " + kv.Key + " has no stored golden");
                            Assert.IsNotNull(from, gc.Name + ": carried output " + kv.Value + " is not a golden of " + prev.Name);
                            Assert.AreEqual(into.DType, from.DType, gc.Name + " carry dtype " + kv.Key);
                            Assert.AreEqual(into.Shape.Length, from.Shape.Length, gc.Name + " carry rank " + kv.Key);
                            carries++;
                        }
                    }
                }
            }
            Console.WriteLine("real bundle " + b.Manifest.BundleName + ": " + graphs + " graphs, " + cases + " cases, "
                              + arrays + " arrays, " + carries + " carries checked");
            Assert.IsTrue(graphs > 0 && cases > 0, "bundle has graphs and golden cases");
        }
    }
}
