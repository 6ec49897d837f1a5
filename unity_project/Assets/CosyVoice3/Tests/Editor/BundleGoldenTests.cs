// EditMode tests: every graph x golden case of every installed bundle runs on Sentis (CPU) against its goldens
// (docs/unity.md). Bundles are installed by `python -m packager unity-install BUNDLE --project unity_project`
// as embedded packages: Packages/<bundle.package>/ with Models/*.onnx (imported as ModelAssets) and Golden~/
// (ignored by the importer; read here with System.IO).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using CosyVoice3.Core;
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
    public class BundleGoldenTests
    {
        const string PackagesDir = "Packages";

        /// <summary>Installed bundles: Packages/*/manifest.json written by our packager (project-relative paths).</summary>
        public static List<string> BundleDirs() { return Bundle.FindInstalled(PackagesDir); }

        /// <summary>
        /// One case per bundle x component x graph x golden, named "bundle.component.graph.case" (stable across runs).
        /// The "Timeout" property is what NUnit's [Timeout] attribute sets, here per case from graph.timeout_ms;
        /// the test body also fails if the case ran longer than that (so the limit holds on every runner).
        /// A manifest that fails to load becomes a failing case carrying the error, not a silent skip.
        /// </summary>
        public static IEnumerable<TestCaseData> Cases()
        {
            var cases = new List<TestCaseData>();
            foreach (var dir in BundleDirs())
            {
                Bundle bundle;
                try { bundle = Bundle.Load(dir); }
                catch (Exception e)
                {
                    cases.Add(new TestCaseData(dir, "", "", "", e.Message).SetName(Path.GetFileName(dir) + ".manifest"));
                    continue;
                }
                var m = bundle.Manifest;
                foreach (var c in m.Components)
                    foreach (var g in c.Graphs)
                        foreach (var gc in g.Goldens)
                            cases.Add(new TestCaseData(dir, c.Name, g.Name, gc.Name, "")
                                      .SetName(m.BundleName + "." + c.Name + "." + g.Name + "." + gc.Name)
                                      .SetProperty("Timeout", g.TimeoutMs));
            }
            return cases;
        }

        [Test]
        public void BundlesAreInstalled()
        {
            var dirs = BundleDirs();
            Assert.IsTrue(dirs.Count > 0, "no bundle installed under " + Path.GetFullPath(PackagesDir)
                          + "; run: python -m packager build --out build/tiny && python -m packager unity-install build/tiny --project unity_project");
            foreach (var d in dirs)
            {
                var b = Bundle.Load(d);
                Assert.AreEqual(Path.GetFileName(d), b.Manifest.BundlePackage, d + ": folder name must be the bundle's UPM package name");
                foreach (var c in b.Manifest.Components)
                    foreach (var f in c.Data) b.LoadArray(f);   // host data: present, hash-checked, well-formed
            }
        }

        [Test, TestCaseSource(nameof(Cases))]
        public void Golden(string bundleDir, string component, string graphName, string caseName, string loadError)
        {
            if (loadError.Length > 0) Assert.Fail(loadError);
            var clock = Stopwatch.StartNew();
            var bundle = Bundle.Load(bundleDir);
            var graph = bundle.Graph(component, graphName);
            var target = graph.Golden(caseName);
            string where = bundle.Manifest.BundleName + "/" + component + "/" + graphName + "/" + caseName;

            // The model file must be the one the manifest describes before Unity's import of it is trusted.
            bundle.VerifiedPath(graph.File, graph.Sha256, graph.Bytes);
            if (graph.ExternalData != null) bundle.VerifiedPath(graph.ExternalData.File, graph.ExternalData.Sha256, graph.ExternalData.Bytes);
            string assetPath = bundleDir + "/" + graph.File;
            var asset = AssetDatabase.LoadAssetAtPath<ModelAsset>(assetPath);
            if (asset == null)
            {
                AssetDatabase.ImportAsset(assetPath, ImportAssetOptions.ForceSynchronousImport);
                asset = AssetDatabase.LoadAssetAtPath<ModelAsset>(assetPath);
            }
            Assert.IsNotNull(asset, where + ": Unity did not import " + assetPath + " as a ModelAsset (importer errors are in the Editor log)");

            var failures = new List<string>();
            var report = new List<string>();
            using (var session = new GraphSession(ModelLoader.Load(asset), graph.UnityQuantization))
            {
                session.CheckInputs(graph.Inputs, where);
                var outputNames = graph.Outputs.ConvertAll(o => o.Name);
                // A chained case is run the way the host loop runs it, each step fed the previous step's *Sentis*
                // outputs for the carried inputs; only the target step is compared here (earlier steps are their own
                // test cases).
                var previous = bundle.RunChain(graph, target, inputs => session.Run(inputs, outputNames));
                foreach (var f in target.Outputs)
                {
                    var verdict = Tolerance.Compare(f.Name, previous[f.Name], bundle.LoadArray(f), graph.ToleranceFor(f.Name));
                    string line = f.Name + ": " + verdict.Summary();
                    report.Add(line);
                    if (!verdict.Passed) failures.Add(line);
                }
            }
            clock.Stop();
            if (failures.Count > 0)
                Assert.Fail(where + " (" + graph.UnityQuantization + ", CPU): " + failures.Count + " output(s) out of tolerance\n  "
                            + string.Join("\n  ", failures.ToArray()));
            Assert.IsTrue(clock.ElapsedMilliseconds <= graph.TimeoutMs,
                          where + ": took " + clock.ElapsedMilliseconds + " ms, over the manifest's timeout_ms " + graph.TimeoutMs);
            UnityEngine.Debug.Log(where + " passed in " + clock.ElapsedMilliseconds + " ms\n  " + string.Join("\n  ", report.ToArray()));
        }
    }
}
