// Running one bundle graph on Inference Engine / Sentis (design/sentis.md §3.1, §3.3, "Implications B").
// Compiles against com.unity.ai.inference 2.4 (namespace Unity.InferenceEngine) by default and against
// com.unity.sentis 2.1.3 (namespace Unity.Sentis) when the asmdef's versionDefines set COSY_SENTIS.
// The CPU backend is used on purpose: GPU backends need a graphics device, which -nographics does not create.
using System;
using System.Collections.Generic;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Bundles
{
    public static class SentisTensors
    {
        /// <summary>TensorShape from an int[] of rank 0..8 (the public ctors take one int per dim, innermost last).</summary>
        public static TensorShape Shape(int[] s)
        {
            switch (s.Length)
            {
                case 0: return new TensorShape();
                case 1: return new TensorShape(s[0]);
                case 2: return new TensorShape(s[0], s[1]);
                case 3: return new TensorShape(s[0], s[1], s[2]);
                case 4: return new TensorShape(s[0], s[1], s[2], s[3]);
                case 5: return new TensorShape(s[0], s[1], s[2], s[3], s[4]);
                case 6: return new TensorShape(s[0], s[1], s[2], s[3], s[4], s[5]);
                case 7: return new TensorShape(s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
                case 8: return new TensorShape(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
                default: throw new BundleException("rank " + s.Length + " is above Sentis' maximum of 8");
            }
        }

        public static int[] Dims(TensorShape shape)
        {
            var d = new int[shape.rank];
            for (int i = 0; i < d.Length; i++) d[i] = shape[i];
            return d;
        }

        /// <summary>A new tensor the caller owns (float32/float16 arrays -> Tensor&lt;float&gt;, int32 -> Tensor&lt;int&gt;).</summary>
        public static Tensor ToTensor(NpyArray a)
        {
            // Zero-element tensors (an empty KV cache: past_len = 0) use the data-less constructor, as Unity's
            // own LLM sample does, instead of uploading an empty array.
            if (a.Length == 0) return a.IsInt ? (Tensor)new Tensor<int>(Shape(a.Shape)) : new Tensor<float>(Shape(a.Shape));
            if (a.IsInt) return new Tensor<int>(Shape(a.Shape), a.Ints);
            return new Tensor<float>(Shape(a.Shape), a.Floats);
        }

        /// <summary>A copy of a (worker-owned) output; blocks until the scheduled work has finished.</summary>
        public static NpyArray FromTensor(Tensor t)
        {
            var shape = Dims(t.shape);
            if (t.dataType == DataType.Int) return NpyArray.FromInts(shape, ((Tensor<int>)t).DownloadToArray());
            if (t.dataType == DataType.Float) return NpyArray.FromFloats(shape, ((Tensor<float>)t).DownloadToArray());
            throw new BundleException("output data type " + t.dataType + " is neither Float nor Int");
        }
    }

    /// <summary>One worker for a graph; Run() can be called repeatedly (the steps of a chained golden).</summary>
    public sealed class GraphSession : IDisposable
    {
        readonly Worker worker;
        public Model Model { get; private set; }

        /// <summary>
        /// <paramref name="unityQuantization"/> is the manifest's graph.unity_quantization: "none", "float16" or "uint8"
        /// (weights-only, ModelQuantizer; dequantized at run time, design/sentis.md §3.3).
        /// </summary>
        public GraphSession(Model model, string unityQuantization) : this(model, unityQuantization, BackendType.CPU) { }

        /// <summary>As above on <paramref name="backend"/> (CosyVoiceSpeaker: GPUCompute only where the goldens pass on it).</summary>
        public GraphSession(Model model, string unityQuantization, BackendType backend)
        {
            if (unityQuantization == "float16") ModelQuantizer.QuantizeWeights(QuantizationType.Float16, ref model);
            else if (unityQuantization == "uint8") ModelQuantizer.QuantizeWeights(QuantizationType.Uint8, ref model);
            else if (unityQuantization != "none")
                throw new BundleException("unity_quantization", "unknown value", "none, float16 or uint8", unityQuantization);
            Model = model;
            worker = new Worker(model, backend);
        }

        /// <summary>The worker (SentisGraphBackend schedules it layer by layer).</summary>
        public Worker Worker { get { return worker; } }

        /// <summary>Names and dtypes of the imported model's inputs must be the manifest's (I/O contract check).</summary>
        public void CheckInputs(IList<TensorSpec> specs, string where)
        {
            var names = new List<string>();
            foreach (var input in Model.inputs) names.Add(input.name);
            foreach (var spec in specs)
            {
                int i = names.IndexOf(spec.Name);
                if (i < 0) throw new BundleException(where, "imported model lacks input \"" + spec.Name + "\"", spec.Name, string.Join(", ", names.ToArray()));
                var want = spec.DType == "int32" ? DataType.Int : DataType.Float;
                if (Model.inputs[i].dataType != want)
                    throw new BundleException(where, "input \"" + spec.Name + "\" has the wrong data type", want.ToString(), Model.inputs[i].dataType.ToString());
            }
            if (names.Count != specs.Count)
                throw new BundleException(where, "imported model has a different number of inputs", specs.Count.ToString(), names.Count.ToString());
        }

        public Dictionary<string, NpyArray> Run(IDictionary<string, NpyArray> inputs, IEnumerable<string> outputNames)
        {
            var owned = new List<Tensor>();
            try
            {
                foreach (var kv in inputs)
                {
                    var t = SentisTensors.ToTensor(kv.Value);
                    owned.Add(t);
                    worker.SetInput(kv.Key, t);
                }
                worker.Schedule();
                var result = new Dictionary<string, NpyArray>();
                // PeekOutput tensors belong to the worker (never disposed here); FromTensor copies them out.
                foreach (var name in outputNames) result[name] = SentisTensors.FromTensor(worker.PeekOutput(name));
                return result;
            }
            finally
            {
                foreach (var t in owned) t.Dispose();
            }
        }

        public void Dispose() { worker.Dispose(); }
    }
}
