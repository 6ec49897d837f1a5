// EditMode test of the whole runtime (docs/unity_runtime.md): every end-to-end golden in the manifest's "pipeline"
// section of every installed bundle runs through the C# host loops (CosyVoice3.Host.Synthesizer: LLM decode, silent
// filter, Euler/CFG, HiFT noise) over Sentis graphs (SentisGraphRunner, CPU, ModelQuantizer per unity_quantization)
// and is compared with the stored outputs under the manifest's tolerances (speech tokens exact, mel atol, speech
// sqnr_db). The host loops themselves are proven identical to Python under mono (tests/csharp/test_host.py); this test
// adds the Sentis arithmetic. It has not been run in Unity yet (no Editor in our CI); it compiles against the stubs.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;
using CosyVoice3.Inference;
using NUnit.Framework;
using UnityEditor;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Tests.Editor
{
    public class PipelineGoldenTests
    {
        /// <summary>One case per installed bundle x pipeline golden, named "bundle.pipeline.case"; a load error is a failing case.</summary>
        public static IEnumerable<TestCaseData> Cases()
        {
            var cases = new List<TestCaseData>();
            foreach (var dir in BundleGoldenTests.BundleDirs())
            {
                List<PipelineGolden> goldens;
                string bundleName = Path.GetFileName(dir);
                try
                {
                    var bundle = Bundle.Load(dir);
                    bundleName = bundle.Manifest.BundleName;
                    goldens = PipelineGolden.Load(bundle);
                }
                catch (Exception e)
                {
                    cases.Add(new TestCaseData(dir, "", e.Message).SetName(bundleName + ".pipeline.manifest"));
                    continue;
                }
                foreach (var g in goldens)
                    cases.Add(new TestCaseData(dir, g.Name, "").SetName(bundleName + ".pipeline." + g.Name));
            }
            return cases;
        }

        /// <summary>The Editor's imported ModelAsset of a manifest graph (the .onnx is sha256-checked first).</summary>
        internal static Func<GraphEntry, Model> EditorModels(Bundle bundle, string bundleDir)
        {
            return g =>
            {
                bundle.VerifiedPath(g.File, g.Sha256, g.Bytes);
                if (g.ExternalData != null) bundle.VerifiedPath(g.ExternalData.File, g.ExternalData.Sha256, g.ExternalData.Bytes);
                string assetPath = bundleDir + "/" + g.File;
                var asset = AssetDatabase.LoadAssetAtPath<ModelAsset>(assetPath);
                if (asset == null)
                {
                    AssetDatabase.ImportAsset(assetPath, ImportAssetOptions.ForceSynchronousImport);
                    asset = AssetDatabase.LoadAssetAtPath<ModelAsset>(assetPath);
                }
                Assert.IsNotNull(asset, "Unity did not import " + assetPath + " as a ModelAsset (importer errors are in the Editor log)");
                return ModelLoader.Load(asset);
            };
        }

        [Test, TestCaseSource(nameof(Cases))]
        public void Pipeline(string bundleDir, string caseName, string loadError)
        {
            if (loadError.Length > 0) Assert.Fail(loadError);
            var clock = Stopwatch.StartNew();
            var bundle = Bundle.Load(bundleDir);
            var golden = PipelineGolden.Load(bundle).Find(g => g.Name == caseName);
            Assert.IsNotNull(golden, bundleDir + ": pipeline golden " + caseName + " disappeared");
            string where = bundle.Manifest.BundleName + "/pipeline/" + caseName;
            List<Verdict> verdicts;
            using (var runner = new SentisGraphRunner(bundle, EditorModels(bundle, bundleDir)))
            {
                var synth = Synthesizer.FromBundle(bundle, runner);
                verdicts = golden.Check(bundle, synth);
            }
            clock.Stop();
            var failures = new List<string>();
            var report = new List<string>();
            foreach (var v in verdicts)
            {
                string line = v.Output + ": " + v.Summary();
                report.Add(line);
                if (!v.Passed) failures.Add(line);
            }
            if (failures.Count > 0)
                Assert.Fail(where + " (Sentis CPU): " + failures.Count + " output(s) out of tolerance\n  " + string.Join("\n  ", failures.ToArray()));
            UnityEngine.Debug.Log(where + " passed in " + clock.ElapsedMilliseconds + " ms\n  " + string.Join("\n  ", report.ToArray()));
        }
    }
}
