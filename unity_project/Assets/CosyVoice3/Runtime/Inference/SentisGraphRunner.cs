// The run-to-completion scheduling of a bundle's Sentis sessions (GraphSessions), as the host loops' IGraphRunner
// (docs/unity_runtime.md): every call (the LLM decode steps, the ten Euler steps per flow call, every HiFT call) runs
// its graph's Worker to the end. Inputs are uploaded per call and outputs downloaded into fresh arrays
// (GraphSession.Run), so nothing a loop holds is ever overwritten by the next Schedule().
using System;
using System.Collections.Generic;
using CosyVoice3.Core;
using CosyVoice3.Host;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Inference
{
    public sealed class SentisGraphRunner : IGraphRunner, IDisposable
    {
        readonly GraphSessions sessions;

        /// <summary>Its own sessions over <paramref name="loadModel"/>'s Models (see <see cref="GraphSessions"/>).</summary>
        public SentisGraphRunner(Bundle bundle, Func<GraphEntry, Model> loadModel, BackendType backendType = BackendType.CPU)
            : this(new GraphSessions(bundle, loadModel, backendType)) { }

        /// <summary>Over <paramref name="sessions"/>; disposing the runner disposes them.</summary>
        public SentisGraphRunner(GraphSessions sessions)
        {
            if (sessions == null) throw new ArgumentNullException("sessions");
            this.sessions = sessions;
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
            foreach (var name in graphNames) sessions.Get(name);
        }

        public Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs)
        {
            var s = sessions.Get(graph);
            return s.Run(inputs, sessions.OutputNames(graph));
        }

        public void Dispose() { sessions.Dispose(); }
    }
}
