// Shared pieces of the host loops (docs/unity_runtime.md): the graph-runner interface the loops are written against,
// the input error they raise, tensor helpers over Core's NpyArray, and typed access to a component's manifest
// "constants" (free-form JSON, read as data exactly as packager/runtime/*.py reads them).
// Unity-independent on purpose (no UnityEngine / Sentis types): the same code runs in Unity and under plain mono,
// where tests/csharp/test_host.py proves it step-for-step identical to the Python host loops.
using System;
using System.Collections.Generic;
using System.Globalization;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    /// <summary>
    /// Runs one bundle graph: <paramref name="graph"/> is the manifest's graph name (as the components' constants.graphs
    /// name them), inputs and outputs are keyed by the manifest's tensor names. float32 tensors carry Floats, int32 tensors Ints.
    /// The loops never keep a reference to an input after the call returns, and only read the returned arrays.
    /// </summary>
    public interface IGraphRunner
    {
        Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs);
    }

    /// <summary>A caller mistake (bad ids, shapes, lengths): the message names the key, what was expected and found.</summary>
    public class HostInputException : Exception
    {
        public string Key { get; private set; }

        public HostInputException(string key, string message, string expected, string found)
            : base(key + ": " + message + (expected != null ? " (expected " + expected + (found != null ? ", found " + found : "") + ")" : ""))
        {
            Key = key;
        }
    }

    /// <summary>Small helpers over NpyArray (C order) used by the loops.</summary>
    public static class Tensors
    {
        public static NpyArray Floats(float[] data, params int[] shape) { return NpyArray.FromFloats(shape, data); }
        public static NpyArray Ints(int[] data, params int[] shape) { return NpyArray.FromInts(shape, data); }

        /// <summary>The output <paramref name="name"/> of a runner call; a missing or wrongly typed output is a bug of the runner.</summary>
        public static NpyArray Output(Dictionary<string, NpyArray> outputs, string graph, string name, bool isInt = false)
        {
            NpyArray a;
            if (outputs == null || !outputs.TryGetValue(name, out a) || a == null)
                throw new InvalidOperationException("graph " + graph + " returned no output \"" + name + "\"");
            if (a.Device == null && (isInt ? a.Ints == null : a.Floats == null))
                throw new InvalidOperationException("graph " + graph + " output \"" + name + "\" is not " + (isInt ? "int32" : "float32"));
            return a;
        }

        /// <summary>Throws unless <paramref name="a"/> has this rank and these dims (-1 = any size).</summary>
        public static void CheckShape(string key, NpyArray a, params int[] shape)
        {
            bool ok = a != null && a.Shape.Length == shape.Length;
            for (int i = 0; ok && i < shape.Length; i++) ok = shape[i] < 0 || shape[i] == a.Shape[i];
            if (!ok)
            {
                var parts = new string[shape.Length];
                for (int i = 0; i < shape.Length; i++) parts[i] = shape[i] < 0 ? "N" : shape[i].ToString(CultureInfo.InvariantCulture);
                throw new HostInputException(key, "wrong shape", "[" + string.Join(", ", parts) + "]", a == null ? "nothing" : a.ShapeText);
            }
        }

        public static void CheckIds(string key, int[] ids, int low, int high)
        {
            foreach (int id in ids)
                if (id < low || id >= high)
                    throw new HostInputException(key, "id out of range", "ids in [" + low + ", " + high + ")", id.ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>Typed reads of a component's manifest constants; a missing or mistyped key names its JSON path.</summary>
    public static class Constants
    {
        public static JsonValue Node(JsonValue obj, string key)
        {
            var v = obj == null ? null : obj.Get(key);
            if (v == null) throw new BundleException(obj == null ? "constants" : obj.Path, "missing constant \"" + key + "\"", key, "nothing");
            return v;
        }

        public static double Number(JsonValue obj, string key)
        {
            var v = Node(obj, key);
            if (v.Kind != JsonKind.Number) throw new BundleException(v.Path, "constant is not a number", "number", JsonValue.KindName(v.Kind));
            return v.NumberValue;
        }

        public static int Int(JsonValue obj, string key)
        {
            var v = Node(obj, key);
            if (!v.IsInteger || Math.Abs(v.NumberValue) > int.MaxValue)
                throw new BundleException(v.Path, "constant is not an int32 integer", "integer", v.Kind == JsonKind.Number ? v.NumberValue.ToString("R", CultureInfo.InvariantCulture) : JsonValue.KindName(v.Kind));
            return (int)v.NumberValue;
        }

        public static string String(JsonValue obj, string key)
        {
            var v = Node(obj, key);
            if (v.Kind != JsonKind.String) throw new BundleException(v.Path, "constant is not a string", "string", JsonValue.KindName(v.Kind));
            return v.StringValue;
        }

        public static int[] Ints(JsonValue obj, string key)
        {
            var v = Node(obj, key);
            if (v.Kind != JsonKind.Array) throw new BundleException(v.Path, "constant is not an array", "array of integers", JsonValue.KindName(v.Kind));
            var r = new int[v.Items.Count];
            for (int i = 0; i < r.Length; i++)
            {
                if (!v.Items[i].IsInteger) throw new BundleException(v.Items[i].Path, "not an integer", "integer", JsonValue.KindName(v.Items[i].Kind));
                r[i] = (int)v.Items[i].NumberValue;
            }
            return r;
        }

        public static double[] Numbers(JsonValue obj, string key)
        {
            var v = Node(obj, key);
            if (v.Kind != JsonKind.Array) throw new BundleException(v.Path, "constant is not an array", "array of numbers", JsonValue.KindName(v.Kind));
            var r = new double[v.Items.Count];
            for (int i = 0; i < r.Length; i++)
            {
                if (v.Items[i].Kind != JsonKind.Number) throw new BundleException(v.Items[i].Path, "not a number", "number", JsonValue.KindName(v.Items[i].Kind));
                r[i] = v.Items[i].NumberValue;
            }
            return r;
        }
    }
}
