// The sliced scheduling of a bundle's Sentis sessions (GraphSessions), as SlicedRunner's IGraphBackend
// (docs/unity_speaker.md): each call is scheduled one layer per Step() with Worker.ScheduleIterable(), so the caller
// decides how many layers fit a frame's budget; a graph's session is created by Prepare or on first use. Outputs the
// runner keeps on the device (the KV cache) are copied into tensors we own with Worker.CopyOutput (a copy on the
// backend, no download) and passed back as the next call's inputs as they are; every other output is downloaded into
// a fresh array, as SentisGraphRunner does.
// Only the thread that calls SlicedRunner.Pump (Unity's main thread) ever runs this code.
using System;
using System.Collections;
using System.Collections.Generic;
using CosyVoice3.Core;
using CosyVoice3.Speech;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Inference
{
    public sealed class SentisGraphBackend : IGraphBackend
    {
        readonly GraphSessions sessions;

        /// <summary>Its own sessions over <paramref name="loadModel"/>'s Models (see <see cref="GraphSessions"/>).</summary>
        public SentisGraphBackend(Bundle bundle, Func<GraphEntry, Model> loadModel, BackendType backendType)
            : this(new GraphSessions(bundle, loadModel, backendType)) { }

        /// <summary>Over <paramref name="sessions"/>; disposing the backend disposes them.</summary>
        public SentisGraphBackend(GraphSessions sessions)
        {
            if (sessions == null) throw new ArgumentNullException("sessions");
            this.sessions = sessions;
        }

        public BackendType BackendType { get { return sessions.BackendType; } }

        /// <summary>Import, quantize and create the worker of <paramref name="graph"/> now (Prepare does each graph once).</summary>
        public void Prepare(string graph) { sessions.Get(graph); }

        public IGraphCall Begin(string graph, Dictionary<string, NpyArray> inputs, ICollection<string> keepOnDevice)
        {
            var s = sessions.Get(graph);
            return new Call(s.Worker, inputs, sessions.OutputNames(graph), keepOnDevice);
        }

        public void Release(NpyArray deviceArray)
        {
            var t = deviceArray.Device as Tensor;
            if (t != null) t.Dispose();
            deviceArray.Device = null;
        }

        public void Dispose() { sessions.Dispose(); }

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
