// Running one bundle graph on Inference Engine / Sentis (design/sentis.md §3.1, §3.3, "Implications B").
// Compiles against com.unity.ai.inference 2.4 (namespace Unity.InferenceEngine) by default and against
// com.unity.sentis 2.1.3 (namespace Unity.Sentis) when the asmdef's versionDefines set COSY_SENTIS.
// The CPU backend is used on purpose: GPU backends need a graphics device, which -nographics does not create.
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

    /// <summary>
    /// The manifest's unity_quantization applied to a Model, in a form every Worker can bind by name.
    /// A model is either as imported from the .onnx (quantized here) or baked (quantized and written as a .sentis file
    /// by the editor step, docs/unity.md "Player builds"): the quantized constants tell which (float16 leaves Short
    /// constants, uint8 Byte ones; an imported bundle graph has neither), so a baked model is not quantized twice and
    /// one baked with another policy than the manifest's is refused.
    /// Sentis 2.4.x (not 2.1.x): ModelQuantizer rebuilds the model and renumbers its tensors, so input i no longer
    /// has tensor index i; Worker.SetInput(name) looks the tensor index up and passes it on as a *position*
    /// ("Cannot set input tensor at index 346 as model only contains 1 inputs"). RenumberInputs restores the
    /// invariant every imported or loaded model has (docs/unity_runtime.md, "Sentis behaviour we depend on").
    /// </summary>
    public static class SentisModels
    {
        public static readonly string[] Quantizations = { "none", "float16", "uint8" };

        public static void Quantize(ref Model model, string unityQuantization)
        {
            if (Array.IndexOf(Quantizations, unityQuantization) < 0)
                throw new BundleException("unity_quantization", "unknown value", "none, float16 or uint8", unityQuantization);
            string now = QuantizationOf(model);
            if (now == unityQuantization) { RenumberInputs(model); return; }   // baked, or nothing to do
            if (now != "none")
                throw new BundleException("unity_quantization", "the model is already quantized (a baked .sentis of another policy?); bake it again",
                                          unityQuantization, now);
            ModelQuantizer.QuantizeWeights(unityQuantization == "float16" ? QuantizationType.Float16 : QuantizationType.Uint8, ref model);
            RenumberInputs(model);
        }

        /// <summary>"float16" or "uint8" when ModelQuantizer has run on <paramref name="model"/>, else "none".</summary>
        public static string QuantizationOf(Model model)
        {
            foreach (var c in model.constants)
            {
                if (c.dataType == DataType.Short) return "float16";
                if (c.dataType == DataType.Byte) return "uint8";
            }
            return "none";
        }

        /// <summary>
        /// What a player ships: <paramref name="model"/> (as imported) quantized per unity_quantization and written
        /// with ModelWriter as a .sentis file, which Unity imports as a ModelAsset that keeps the quantized weights
        /// (an .onnx import widens fp16 weights to float32). Returns the file's size in bytes.
        /// </summary>
        public static long Bake(Model model, string unityQuantization, string path)
        {
            Quantize(ref model, unityQuantization);
            ModelWriter.Save(path, model);
            return new System.IO.FileInfo(path).Length;
        }

        /// <summary>True when input i has tensor index i for every i (what Worker.SetInput relies on).</summary>
        public static bool InputsInPlace(Model model)
        {
            for (int i = 0; i < model.inputs.Count; i++)
                if (model.inputs[i].index != i) return false;
            return true;
        }

        /// <summary>
        /// A permutation of tensor indices (nothing else changes) that gives input i index i: each input moves to its
        /// position, and a non-input tensor that held one of those indices takes a freed input index instead.
        /// </summary>
        public static void RenumberInputs(Model model)
        {
            if (InputsInPlace(model)) return;
            int n = model.inputs.Count;
            var map = new Dictionary<int, int>();
            var inputIndices = new HashSet<int>();
            for (int i = 0; i < n; i++) { map[model.inputs[i].index] = i; inputIndices.Add(model.inputs[i].index); }
            var freed = new List<int>();
            foreach (var old in inputIndices) if (old >= n) freed.Add(old);
            freed.Sort();
            int k = 0;
            for (int target = 0; target < n; target++)
                if (!inputIndices.Contains(target)) map[target] = freed[k++];   // the displaced tensor takes a freed index
            Func<int, int> f = x => { int y; return map.TryGetValue(x, out y) ? y : x; };
            for (int i = 0; i < n; i++) { var inp = model.inputs[i]; inp.index = f(inp.index); model.inputs[i] = inp; }
            for (int i = 0; i < model.outputs.Count; i++) { var o = model.outputs[i]; o.index = f(o.index); model.outputs[i] = o; }
            foreach (var c in model.constants) c.index = f(c.index);
            foreach (var l in model.layers)
            {
                for (int j = 0; j < l.inputs.Length; j++) if (l.inputs[j] >= 0) l.inputs[j] = f(l.inputs[j]);
                for (int j = 0; j < l.outputs.Length; j++) if (l.outputs[j] >= 0) l.outputs[j] = f(l.outputs[j]);
            }
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
            SentisModels.Quantize(ref model, unityQuantization);
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
