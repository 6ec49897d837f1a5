// API stubs of the Inference Engine 2.4 (Unity.InferenceEngine) / Sentis 2.1.3 (Unity.Sentis, with -define:COSY_SENTIS)
// members our code uses. Signatures follow design/sentis.md §3.1 and §3.3 (same API in both packages, only the
// namespace differs). For compile checks under mono only; bodies are placeholders.
using System;
using System.Collections.Generic;

#if COSY_SENTIS
namespace Unity.Sentis
#else
namespace Unity.InferenceEngine
#endif
{
    public enum DeviceType { GPU = 1 << 8, CPU = 1 << 9 }

    public enum BackendType { GPUCompute = 0 | DeviceType.GPU, GPUPixel = 1 | DeviceType.GPU, CPU = 0 | DeviceType.CPU }

    public enum DataType { Float, Int, Short, Byte, Custom }

    public enum QuantizationType { Float16, Uint8 }

    public class ModelAsset : UnityEngine.ScriptableObject { }

    public struct DynamicTensorShape { }

    public class Model
    {
        public struct Input { public string name; public int index; public DataType dataType; public DynamicTensorShape shape; }
        public struct Output { public string name; public int index; }
        public List<Input> inputs = new List<Input>();
        public List<Output> outputs = new List<Output>();
        public List<Layer> layers = new List<Layer>();
        public List<Constant> constants = new List<Constant>();
        public string ProducerName;
    }

    public abstract class Layer { public int[] inputs; public int[] outputs; }

    public class Constant { public int index; public DataType dataType; }

    public static class ModelLoader
    {
        public static Model Load(ModelAsset modelAsset) { throw new NotImplementedException("stub"); }
        public static Model Load(string path) { throw new NotImplementedException("stub"); }
        public static Model Load(System.IO.Stream stream) { throw new NotImplementedException("stub"); }
    }

    public static class ModelWriter
    {
        public static void Save(string fileName, Model model) { throw new NotImplementedException("stub"); }
        public static void Save(System.IO.Stream stream, Model model) { throw new NotImplementedException("stub"); }
    }

    public static class ModelQuantizer
    {
        public static void QuantizeWeights(QuantizationType quantizationType, ref Model model) { throw new NotImplementedException("stub"); }
    }

    public struct TensorShape
    {
        public const int maxRank = 8;
        public TensorShape(int d0) { throw new NotImplementedException("stub"); }
        public TensorShape(int d1, int d0) { throw new NotImplementedException("stub"); }
        public TensorShape(int d2, int d1, int d0) { throw new NotImplementedException("stub"); }
        public TensorShape(int d3, int d2, int d1, int d0) { throw new NotImplementedException("stub"); }
        public TensorShape(int d4, int d3, int d2, int d1, int d0) { throw new NotImplementedException("stub"); }
        public TensorShape(int d5, int d4, int d3, int d2, int d1, int d0) { throw new NotImplementedException("stub"); }
        public TensorShape(int d6, int d5, int d4, int d3, int d2, int d1, int d0) { throw new NotImplementedException("stub"); }
        public TensorShape(int d7, int d6, int d5, int d4, int d3, int d2, int d1, int d0) { throw new NotImplementedException("stub"); }
        public int length { get { throw new NotImplementedException("stub"); } }
        public int rank { get { throw new NotImplementedException("stub"); } }
        public int this[int axis] { get { throw new NotImplementedException("stub"); } }
    }

    public abstract class Tensor : IDisposable
    {
        public DataType dataType { get { throw new NotImplementedException("stub"); } }
        public TensorShape shape { get { throw new NotImplementedException("stub"); } }
        public int count { get { throw new NotImplementedException("stub"); } }
        public void Dispose() { }
    }

    // The real constraint is `where T : unmanaged` (C# 7.3); mcs -langversion:7.2 cannot parse it, so `struct` stands in.
    public class Tensor<T> : Tensor where T : struct
    {
        public Tensor(TensorShape shape, T[] srcData, int dataStartIndex = 0) { throw new NotImplementedException("stub"); }
        public Tensor(TensorShape shape, bool clearOnInit = true) { throw new NotImplementedException("stub"); }
        public T[] DownloadToArray() { throw new NotImplementedException("stub"); }
    }

    public class Worker : IDisposable
    {
        public Worker(Model model, BackendType backendType) { throw new NotImplementedException("stub"); }
        public Worker(Model model, DeviceType deviceType) { throw new NotImplementedException("stub"); }
        public BackendType backendType { get { throw new NotImplementedException("stub"); } }
        public void SetInput(int index, Tensor input) { throw new NotImplementedException("stub"); }
        public void SetInput(string name, Tensor input) { throw new NotImplementedException("stub"); }
        public void Schedule() { throw new NotImplementedException("stub"); }
        public void Schedule(params Tensor[] inputs) { throw new NotImplementedException("stub"); }
        public System.Collections.IEnumerator ScheduleIterable() { throw new NotImplementedException("stub"); }
        public Tensor PeekOutput() { throw new NotImplementedException("stub"); }
        public Tensor PeekOutput(int index) { throw new NotImplementedException("stub"); }
        public Tensor PeekOutput(string name) { throw new NotImplementedException("stub"); }
        public void CopyOutput(string name, ref Tensor tensor) { throw new NotImplementedException("stub"); }
        public void Dispose() { }
    }
}
