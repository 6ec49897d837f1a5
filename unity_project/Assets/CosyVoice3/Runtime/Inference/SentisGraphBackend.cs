// The Sentis / Inference Engine IGraphBackend of SlicedRunner (docs/unity_speaker.md): one GraphSession per bundle
// graph (quantized per the manifest, created by Prepare or on first use), each call scheduled one layer per Step()
// with Worker.ScheduleIterable(). Outputs the runner keeps on the device (the KV cache) are copied into tensors we
// own with Worker.CopyOutput (a copy on the backend, no download) and passed back as the next call's inputs as they
// are; every other output is downloaded into a fresh array, as SentisGraphRunner does.
// Only the thread that calls SlicedRunner.Pump (Unity's main thread) ever runs this code.
using System;
using System.Collections;
using System.Collections.Generic;
using CosyVoice3.Speech;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Bundles
{
    public sealed class SentisGraphBackend : IGraphBackend
    {
        readonly Bundle bundle;
        readonly Func<GraphEntry, Model> loadModel;
        readonly BackendType backendType;
        readonly Dictionary<string, GraphEntry> graphs = new Dictionary<string, GraphEntry>(StringComparer.Ordinal);
        readonly Dictionary<string, GraphSession> sessions = new Dictionary<string, GraphSession>(StringComparer.Ordinal);

        public SentisGraphBackend(Bundle bundle, Func<GraphEntry, Model> loadModel, BackendType backendType)
        {
            if (bundle == null) throw new ArgumentNullException("bundle");
            if (loadModel == null) throw new ArgumentNullException("loadModel");
            this.bundle = bundle;
            this.loadModel = loadModel;
            this.backendType = backendType;
            foreach (var c in bundle.Manifest.Components)
                foreach (var g in c.Graphs) graphs[g.Name] = g;
        }

        public BackendType BackendType { get { return backendType; } }

        /// <summary>Import, quantize and create the worker of <paramref name="graph"/> now (Prepare does each graph once).</summary>
        public void Prepare(string graph) { Session(graph); }

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
            return s;
        }

        public IGraphCall Begin(string graph, Dictionary<string, NpyArray> inputs, ICollection<string> keepOnDevice)
        {
            var s = Session(graph);
            return new Call(s.Worker, inputs, graphs[graph].Outputs.ConvertAll(o => o.Name), keepOnDevice);
        }

        public void Release(NpyArray deviceArray)
        {
            var t = deviceArray.Device as Tensor;
            if (t != null) t.Dispose();
            deviceArray.Device = null;
        }

        public void Dispose()
        {
            foreach (var s in sessions.Values) s.Dispose();
            sessions.Clear();
        }

        sealed class Call : IGraphCall
        {
            readonly Worker worker;
            readonly List<Tensor> owned = new List<Tensor>();
            readonly List<string> outputs;
            readonly ICollection<string> keep;
            readonly IEnumerator schedule;

            public Call(Worker worker, Dictionary<string, NpyArray> inputs, List<string> outputs, ICollection<string> keep)
            {
                this.worker = worker;
                this.outputs = outputs;
                this.keep = keep;
                try
                {
                    foreach (var kv in inputs)
                    {
                        var t = kv.Value.Device as Tensor;
                        if (t == null)
                        {
                            t = SentisTensors.ToTensor(kv.Value);
                            owned.Add(t);
                        }
                        worker.SetInput(kv.Key, t);
                    }
                    schedule = worker.ScheduleIterable();
                }
                catch
                {
                    Dispose();
                    throw;
                }
            }

            public bool Step() { return !schedule.MoveNext(); }

            public Dictionary<string, NpyArray> Outputs()
            {
                var result = new Dictionary<string, NpyArray>();
                foreach (var name in outputs)
                {
                    if (keep.Contains(name))
                    {
                        Tensor copy = null;
                        worker.CopyOutput(name, ref copy);   // a tensor we own, on the worker's device
                        result[name] = new NpyArray
                        {
                            DType = copy.dataType == DataType.Int ? NpyDType.Int32 : NpyDType.Float32,
                            Shape = SentisTensors.Dims(copy.shape), Device = copy,
                        };
                    }
                    else result[name] = SentisTensors.FromTensor(worker.PeekOutput(name));
                }
                return result;
            }

            public void Dispose()
            {
                foreach (var t in owned) t.Dispose();
                owned.Clear();
            }
        }
    }
}
