// The editor step of a player build (docs/unity.md "Player builds"): every graph of the bundles installed in the
// project, quantized per the manifest's unity_quantization (SentisModels.Bake: ModelQuantizer, then ModelWriter) and
// written as <out>/<bundle package>/<graph>.sentis. Unity imports a .sentis file as a ModelAsset that keeps the
// quantized weights, while the .onnx import widens fp16 weights to float32, so these are the assets a player should
// reference (CosyVoiceSpeaker.graphs): a float16 graph ships at half its float32 size, a uint8 one at a quarter.
// The runtime recognises a baked model by its quantized constants and does not quantize it again.
// It also copies what a player reads from disk, the bundle's manifest.json and Data/ (and its voice packs, Voices~/ ->
// Voices/), to Assets/StreamingAssets/<bundle package>/, so CosyVoiceSpeaker.bundlePath "<bundle package>" (or empty)
// finds it in a player.
//   Menu: Tools > CosyVoice3 > Bake Models for Player Build
//   Batch: Unity -batchmode -nographics -projectPath P -executeMethod CosyVoice3.Editor.BakeModels.Run
//          [-cosyvoiceBundle Packages/<bundle package>] [-cosyvoiceOut Assets/CosyVoice3Models]
//          [-cosyvoiceStreaming Assets/StreamingAssets] -quit
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Inference;
using UnityEditor;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Editor
{
    public static class BakeModels
    {
        public const string DefaultOut = "Assets/CosyVoice3Models";
        public const string DefaultStreaming = "Assets/StreamingAssets";

        [MenuItem("Tools/CosyVoice3/Bake Models for Player Build")]
        static void FromMenu()
        {
            try { UnityEngine.Debug.Log(Report(BakeAll(Bundle.FindInstalled("Packages"), DefaultOut, DefaultStreaming))); }
            catch (Exception e) { UnityEngine.Debug.LogError("CosyVoice3: baking failed: " + e.Message); }
        }

        /// <summary>Batch-mode entry point: exit code 0 when every graph was baked, 1 otherwise (the error is logged).</summary>
        public static void Run()
        {
            string bundle = Argument("-cosyvoiceBundle"), output = Argument("-cosyvoiceOut") ?? DefaultOut;
            string streaming = Argument("-cosyvoiceStreaming") ?? DefaultStreaming;
            try
            {
                var bundles = bundle != null ? new List<string> { bundle } : Bundle.FindInstalled("Packages");
                UnityEngine.Debug.Log(Report(BakeAll(bundles, output, streaming)));
                EditorApplication.Exit(0);
            }
            catch (Exception e)
            {
                UnityEngine.Debug.LogError("CosyVoice3: baking failed: " + e.Message);
                EditorApplication.Exit(1);
            }
        }

        /// <summary>One line per graph: bundle, graph, quantization, the .onnx bytes and the .sentis bytes.</summary>
        public static List<string> BakeAll(List<string> bundleDirs, string outDir, string streamingDir)
        {
            if (bundleDirs.Count == 0)
                throw new BundleException("Packages", "no CosyVoice3 bundle is installed in this project", "python -m packager unity-install BUNDLE --project .", "none");
            var lines = new List<string>();
            foreach (var dir in bundleDirs)
            {
                var bundle = Bundle.Load(dir);
                string target = Path.Combine(outDir, bundle.Manifest.BundlePackage);
                Directory.CreateDirectory(target);
                foreach (var c in bundle.Manifest.Components)
                    foreach (var g in c.Graphs)
                    {
                        bundle.VerifiedPath(g.File, g.Sha256, g.Bytes);
                        if (g.ExternalData != null) bundle.VerifiedPath(g.ExternalData.File, g.ExternalData.Sha256, g.ExternalData.Bytes);
                        string assetPath = dir.TrimEnd('/') + "/" + g.File;
                        var asset = AssetDatabase.LoadAssetAtPath<ModelAsset>(assetPath);
                        if (asset == null)
                            throw new BundleException(assetPath, "Unity did not import this graph as a ModelAsset (the importer's errors are in the Console)", "a ModelAsset", "nothing");
                        string path = Path.Combine(target, g.Name + ".sentis");
                        long bytes = SentisModels.Bake(ModelLoader.Load(asset), g.UnityQuantization, path);
                        lines.Add(bundle.Manifest.BundlePackage + "/" + g.Name + " (" + g.UnityQuantization + "): .onnx "
                                  + (g.Bytes + (g.ExternalData != null ? g.ExternalData.Bytes : 0)) + " bytes -> " + path + " " + bytes + " bytes");
                    }
                lines.Add(CopyPlayerFiles(bundle, dir, Path.Combine(streamingDir, bundle.Manifest.BundlePackage)));
            }
            AssetDatabase.Refresh();
            return lines;
        }

        /// <summary>manifest.json, every Data/ file (hash-checked on the way) and the voice packs, to <paramref name="target"/>.</summary>
        static string CopyPlayerFiles(Bundle bundle, string dir, string target)
        {
            Directory.CreateDirectory(target);
            File.Copy(Path.Combine(dir, Bundle.ManifestFile), Path.Combine(target, Bundle.ManifestFile), true);
            int files = 1;
            foreach (var c in bundle.Manifest.Components)
                foreach (var f in c.Data)
                {
                    bundle.LoadArray(f);   // present, inside the bundle, size and sha256 as the manifest says
                    string dst = Path.Combine(target, f.File);
                    Directory.CreateDirectory(Path.GetDirectoryName(dst));
                    File.Copy(BundleFiles.Resolve(dir, f.File, dir), dst, true);
                    files++;
                }
            string voices = Path.Combine(dir, "Voices~");
            if (Directory.Exists(voices))
                foreach (var src in Directory.GetFiles(voices, "*", SearchOption.AllDirectories))
                {
                    string dst = Path.Combine(target, "Voices", src.Substring(voices.Length + 1));
                    Directory.CreateDirectory(Path.GetDirectoryName(dst));
                    File.Copy(src, dst, true);
                    files++;
                }
            return "player files (manifest.json, Data/, Voices/): " + files + " file(s) -> " + target;
        }

        static string Report(List<string> lines)
        {
            return "CosyVoice3: baked for a player build; assign the .sentis models to CosyVoiceSpeaker.graphs\n  "
                   + string.Join("\n  ", lines.ToArray());
        }

        static string Argument(string name)
        {
            var args = Environment.GetCommandLineArgs();
            for (int i = 0; i + 1 < args.Length; i++)
                if (args[i] == name) return args[i + 1];
            return null;
        }
    }
}
