// The Sentis / Inference Engine implementation of the host loops' IGraphRunner (docs/unity_runtime.md): one
// GraphSession (a Worker on BackendType.CPU, weights quantized per the manifest's unity_quantization with
// ModelQuantizer) per bundle graph, created on first use and reused for every later call (the LLM decode steps, the
// ten Euler steps per flow call, every HiFT call). Inputs are uploaded per call and outputs downloaded into fresh
// arrays (GraphSession.Run), so nothing a loop holds is ever overwritten by the next Schedule().
// Where the Model comes from is the caller's choice (a delegate): in the Editor AssetDatabase + ModelLoader.Load(asset),
// in a player ModelAssets referenced by a component, or ModelLoader.Load(path) of pre-serialized .sentis files.
using System;
using System.Collections.Generic;
using CosyVoice3.Host;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Bundles
{
    public sealed class SentisGraphRunner : IGraphRunner, IDisposable
    {
        readonly Bundle bundle;
        readonly Func<GraphEntry, Model> loadModel;
        readonly Dictionary<string, GraphEntry> graphs = new Dictionary<string, GraphEntry>(StringComparer.Ordinal);
        readonly Dictionary<string, GraphSession> sessions = new Dictionary<string, GraphSession>(StringComparer.Ordinal);
        readonly Dictionary<string, List<string>> outputNames = new Dictionary<string, List<string>>(StringComparer.Ordinal);

        /// <summary>
        /// <paramref name="loadModel"/> returns the imported (not yet quantized) Model of a manifest graph; the runner
        /// quantizes it per graph.unity_quantization, checks its inputs against the manifest and owns the Worker.
        /// </summary>
        readonly BackendType backendType;

        public SentisGraphRunner(Bundle bundle, Func<GraphEntry, Model> loadModel, BackendType backendType = BackendType.CPU)
        {
            this.backendType = backendType;
            if (bundle == null) throw new ArgumentNullException("bundle");
            if (loadModel == null) throw new ArgumentNullException("loadModel");
            this.bundle = bundle;
            this.loadModel = loadModel;
            foreach (var c in bundle.Manifest.Components)
                foreach (var g in c.Graphs) graphs[g.Name] = g;
        }

        /// <summary>Models from ModelAssets keyed by graph name (e.g. serialized fields of a MonoBehaviour in a player).</summary>
        public static SentisGraphRunner FromModelAssets(Bundle bundle, IDictionary<string, ModelAsset> assets)
        {
            return new SentisGraphRunner(bundle, g =>
            {
                ModelAsset asset;
                if (!assets.TryGetValue(g.Name, out asset) || asset == null)
                    throw new BundleException(bundle.Root, "no ModelAsset for graph \"" + g.Name + "\"", g.File, "nothing");
                return ModelLoader.Load(asset);
            });
        }

        /// <summary>Create every graph's Worker now (import and quantization cost up front instead of at the first call).</summary>
        public void WarmUp(IEnumerable<string> graphNames)
        {
            foreach (var name in graphNames) Session(name);
        }

        GraphSession Session(string graph)
        {
            GraphSession s;
            if (sessions.TryGetValue(graph, out s)) return s;
            GraphEntry entry;
            if (!graphs.TryGetValue(graph, out entry))
                throw new BundleException(bundle.Root, "no graph \"" + graph + "\" in the manifest", graph, null);
            var model = loadModel(entry);
            if (model == null) throw new BundleException(bundle.Root, "the model loader returned nothing for graph \"" + graph + "\"", entry.File, "null");
            s = new GraphSession(model, entry.UnityQuantization, backendType);
            try { s.CheckInputs(entry.Inputs, bundle.Manifest.BundleName + "/" + graph); }
            catch { s.Dispose(); throw; }
            sessions[graph] = s;
            outputNames[graph] = entry.Outputs.ConvertAll(o => o.Name);
            return s;
        }

        public Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs)
        {
            var s = Session(graph);
            return s.Run(inputs, outputNames[graph]);
        }

        public void Dispose()
        {
            foreach (var s in sessions.Values) s.Dispose();
            sessions.Clear();
        }
    }
}
