// The Sentis sessions of one bundle: graph name -> GraphSession (the imported Model quantized per the manifest's
// unity_quantization, a Worker on one backend, its inputs checked against the manifest), created on first use and
// disposed together. Where the Model comes from is the caller's choice (a delegate): in the Editor AssetDatabase +
// ModelLoader.Load(asset), in a player ModelAssets referenced by a component, or ModelLoader.Load(path) of
// pre-serialized .sentis files.
// Two schedulings use it: SentisGraphRunner (each call run to completion, IGraphRunner) and SentisGraphBackend (each
// call one layer per Step(), IGraphBackend of SlicedRunner).
using System;
using System.Collections.Generic;
using CosyVoice3.Core;

#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Inference
{
    public sealed class GraphSessions : IDisposable
    {
        readonly Bundle bundle;
        readonly Func<GraphEntry, Model> loadModel;
        readonly BackendType backendType;
        readonly Dictionary<string, GraphEntry> graphs = new Dictionary<string, GraphEntry>(StringComparer.Ordinal);
        readonly Dictionary<string, GraphSession> sessions = new Dictionary<string, GraphSession>(StringComparer.Ordinal);
        readonly Dictionary<string, List<string>> outputNames = new Dictionary<string, List<string>>(StringComparer.Ordinal);

        /// <summary>
        /// <paramref name="loadModel"/> returns the imported (not yet quantized) Model of a manifest graph; the cache
        /// quantizes it per graph.unity_quantization, checks its inputs against the manifest and owns the Worker.
        /// </summary>
        public GraphSessions(Bundle bundle, Func<GraphEntry, Model> loadModel, BackendType backendType)
        {
            if (bundle == null) throw new ArgumentNullException("bundle");
            if (loadModel == null) throw new ArgumentNullException("loadModel");
            this.bundle = bundle;
            this.loadModel = loadModel;
            this.backendType = backendType;
            foreach (var c in bundle.Manifest.Components)
                foreach (var g in c.Graphs) graphs[g.Name] = g;
        }

        public Bundle Bundle { get { return bundle; } }
        public BackendType BackendType { get { return backendType; } }

        /// <summary>The session of <paramref name="graph"/>: imported, quantized and given its Worker on first use.</summary>
        public GraphSession Get(string graph)
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

        /// <summary>The manifest's output names of <paramref name="graph"/>, in manifest order (after <see cref="Get"/>).</summary>
        public List<string> OutputNames(string graph)
        {
            Get(graph);
            return outputNames[graph];
        }

        public void Dispose()
        {
            foreach (var s in sessions.Values) s.Dispose();
            sessions.Clear();
            outputNames.Clear();
        }
    }
}
