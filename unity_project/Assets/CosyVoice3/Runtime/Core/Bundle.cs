// An installed bundle on disk: its manifest plus checked access to its files.
// Every file is resolved inside the bundle root (BundleFiles.Resolve) and its size + sha256 are checked against
// the manifest before its bytes are used; arrays are also checked against the manifest's dtype and shape.
using System;
using System.Collections.Generic;
using System.IO;

namespace CosyVoice3.Core
{
    public sealed class Bundle
    {
        public const string ManifestFile = "manifest.json";

        public string Root { get; private set; }
        public BundleManifest Manifest { get; private set; }
        readonly HashSet<string> verified = new HashSet<string>();

        Bundle(string root, BundleManifest manifest) { Root = root; Manifest = manifest; }

        public static Bundle Load(string root)
        {
            string path = Path.Combine(root, ManifestFile);
            if (!File.Exists(path)) throw new BundleException(path, "no manifest.json: not a bundle folder", null, null);
            return new Bundle(root, BundleManifest.Parse(File.ReadAllText(path), path));
        }

        /// <summary>
        /// Bundles installed in a Unity project's Packages folder (what `packager unity-install` writes): each
        /// Packages/*/manifest.json written by our packager, in ordinal order, as "Packages/name" paths.
        /// </summary>
        public static List<string> FindInstalled(string packagesDir)
        {
            var dirs = new List<string>();
            if (!Directory.Exists(packagesDir)) return dirs;
            var all = new List<string>(Directory.GetDirectories(packagesDir));
            all.Sort(System.StringComparer.Ordinal);
            foreach (var d in all)
            {
                string m = Path.Combine(d, ManifestFile);
                if (File.Exists(m) && File.ReadAllText(m).Contains("\"" + BundleManifest.Generator + "\"")) dirs.Add(d.Replace('\\', '/'));
            }
            return dirs;
        }

        public ComponentEntry Component(string name)
        {
            var c = Manifest.Components.Find(x => x.Name == name);
            if (c == null) throw new BundleException(Root, "no component \"" + name + "\" in the manifest", null, null);
            return c;
        }

        public GraphEntry Graph(string component, string graph)
        {
            var g = Component(component).Graphs.Find(x => x.Name == graph);
            if (g == null) throw new BundleException(Root, "no graph \"" + component + "/" + graph + "\" in the manifest", null, null);
            return g;
        }

        /// <summary>Full path of a manifest file after the path and sha256 checks (each file is hashed once).</summary>
        public string VerifiedPath(string rel, string sha256, long bytes)
        {
            string full = BundleFiles.Resolve(Root, rel, Root);
            if (!verified.Contains(full))
            {
                BundleFiles.Verify(full, rel, sha256, bytes, Root);
                verified.Add(full);
            }
            return full;
        }

        /// <summary>
        /// Golden case <paramref name="target"/> of <paramref name="graph"/> run the way a host loop reaches it: from
        /// its chain's first case, each step fed its stored inputs with the carried ones (KV cache, Euler state)
        /// replaced by the previous step's outputs. <paramref name="run"/> runs the graph once. Without
        /// <paramref name="carry"/>, only the target on its stored inputs. Returns the target step's outputs.
        /// </summary>
        public Dictionary<string, NpyArray> RunChain(GraphEntry graph, GoldenCase target,
                                                     Func<Dictionary<string, NpyArray>, Dictionary<string, NpyArray>> run,
                                                     bool carry = true)
        {
            Dictionary<string, NpyArray> previous = null;
            foreach (var step in carry ? graph.ChainTo(target) : new List<GoldenCase> { target })
            {
                var inputs = new Dictionary<string, NpyArray>();
                foreach (var f in step.Inputs) inputs[f.Name] = LoadArray(f);
                if (previous != null && step.Chain != null)
                    foreach (var kv in step.Chain.Carry) inputs[kv.Key] = previous[kv.Value];
                previous = run(inputs);
            }
            return previous;
        }

        /// <summary>Read, hash-check and parse one .npy; its dtype and shape must be what the manifest says.</summary>
        public NpyArray LoadArray(ArrayFile f)
        {
            string full = BundleFiles.Resolve(Root, f.File, Root);
            byte[] data = File.Exists(full) ? File.ReadAllBytes(full) : null;
            if (data == null) throw new BundleException(Root, "file \"" + f.File + "\" is missing from the bundle", full, "nothing");
            BundleFiles.Verify(data, f.File, f.Sha256, f.Bytes, Root);
            var arr = Npy.Read(data, f.File);
            if (arr.DTypeName != f.DType)
                throw new BundleException(f.File, "dtype differs from the manifest", f.DType, arr.DTypeName);
            if (NpyArray.ShapeToString(arr.Shape) != NpyArray.ShapeToString(f.Shape))
                throw new BundleException(f.File, "shape differs from the manifest", NpyArray.ShapeToString(f.Shape), arr.ShapeText);
            return arr;
        }
    }
}
