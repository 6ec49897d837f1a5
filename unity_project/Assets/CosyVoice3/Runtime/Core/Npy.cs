// NPY reader for golden tensors and host data (bundle contract: .npy v1.0, little-endian, C order).
// Accepted: format versions 1.0 and 2.0 (2.0 only widens the header length), descr '<f4' (float32), '<i4' (int32)
// and '<f2' (float16, widened to float32 on read). Everything else is rejected with a message that names the file
// and what was found: big-endian or native-order descrs, other dtypes, Fortran order, a header that is not the
// three-key dict, and a data section whose length is not exactly prod(shape) * itemsize (truncated or trailing bytes).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace CosyVoice3.Core
{
    public enum NpyDType { Float32, Int32, Float16 }

    /// <summary>An n-d array in C order. Float32/Float16 data lives in <see cref="Floats"/>, Int32 in <see cref="Ints"/>.</summary>
    public sealed class NpyArray
    {
        public NpyDType DType;
        public int[] Shape;
        public float[] Floats;
        public int[] Ints;
        /// <summary>Data a graph backend keeps on its device (e.g. the KV cache left on the Sentis worker between LLM
        /// steps): Floats and Ints are null, the array can only be passed back to that backend as a graph input.</summary>
        public object Device;

        public static NpyArray FromFloats(int[] shape, float[] data) { return new NpyArray { DType = NpyDType.Float32, Shape = shape, Floats = data }; }
        public static NpyArray FromInts(int[] shape, int[] data) { return new NpyArray { DType = NpyDType.Int32, Shape = shape, Ints = data }; }

        public int Length
        {
            get
            {
                if (Ints != null) return Ints.Length;
                if (Floats != null) return Floats.Length;
                int n = 1;
                foreach (int d in Shape) n *= d;
                return n;
            }
        }
        public bool IsInt { get { return DType == NpyDType.Int32; } }
        public double this[int flat] { get { return Ints != null ? Ints[flat] : (double)Floats[flat]; } }

        /// <summary>numpy's dtype name, used in messages and verdicts ("float32", "int32", "float16").</summary>
        public string DTypeName { get { return DTypeNameOf(DType); } }

        public static string DTypeNameOf(NpyDType d)
        {
            return d == NpyDType.Float32 ? "float32" : d == NpyDType.Int32 ? "int32" : "float16";
        }

        public string ShapeText { get { return ShapeToString(Shape); } }

        public static string ShapeToString(int[] shape)
        {
            var parts = new string[shape.Length];
            for (int i = 0; i < shape.Length; i++) parts[i] = shape[i].ToString(CultureInfo.InvariantCulture);
            return "[" + string.Join(", ", parts) + "]";
        }

        /// <summary>Multi-index of a flat C-order position.</summary>
        public static int[] Unravel(int flat, int[] shape)
        {
            var idx = new int[shape.Length];
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                if (shape[d] == 0) return idx;
                idx[d] = flat % shape[d];
                flat /= shape[d];
            }
            return idx;
        }
    }

    public static class Npy
    {
        static readonly byte[] Magic = { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y' };

        public static NpyArray ReadFile(string path)
        {
            return Read(File.ReadAllBytes(path), path);
        }

        public static NpyArray Read(byte[] b, string origin)
        {
            if (b.Length < 10) throw Bad(origin, "file too short for an NPY header", ">= 10 bytes", b.Length + " bytes");
            for (int i = 0; i < Magic.Length; i++)
                if (b[i] != Magic[i]) throw Bad(origin, "not an NPY file (bad magic)", "\\x93NUMPY", null);
            int major = b[6], minor = b[7];
            int headerLen, headerStart;
            if (major == 1 && minor == 0) { headerLen = b[8] | (b[9] << 8); headerStart = 10; }
            else if (major == 2 && minor == 0)
            {
                if (b.Length < 12) throw Bad(origin, "file too short for an NPY 2.0 header", ">= 12 bytes", b.Length + " bytes");
                long len = (long)b[8] | ((long)b[9] << 8) | ((long)b[10] << 16) | ((long)b[11] << 24);
                if (len > int.MaxValue) throw Bad(origin, "NPY header too long", "< 2 GiB", len + " bytes");
                headerLen = (int)len;
                headerStart = 12;
            }
            else throw Bad(origin, "unsupported NPY format version", "1.0 or 2.0", major + "." + minor);
            if ((long)headerStart + headerLen > b.Length)
                throw Bad(origin, "NPY header runs past the end of the file", headerLen + " header bytes", (b.Length - headerStart) + " left");
            for (int i = headerStart; i < headerStart + headerLen; i++)
                if (b[i] > 0x7e) throw Bad(origin, "NPY header is not ASCII", null, null);
            string header = Encoding.ASCII.GetString(b, headerStart, headerLen);

            string descr; bool fortran; int[] shape;
            ParseHeader(header, origin, out descr, out fortran, out shape);
            if (fortran) throw Bad(origin, "Fortran-order array", "C order (fortran_order: False)", "fortran_order: True");
            NpyDType dtype; int itemSize;
            switch (descr)
            {
                case "<f4": dtype = NpyDType.Float32; itemSize = 4; break;
                case "<i4": dtype = NpyDType.Int32; itemSize = 4; break;
                case "<f2": dtype = NpyDType.Float16; itemSize = 2; break;
                default:
                    throw Bad(origin, "unsupported dtype", "'<f4' (float32), '<i4' (int32) or '<f2' (float16), little-endian", "'" + descr + "'");
            }
            long count = 1;
            foreach (int d in shape)
            {
                count *= d;
                if (count > int.MaxValue) throw Bad(origin, "array too large", "< 2^31 elements", null);
            }
            int dataStart = headerStart + headerLen;
            long want = count * itemSize, have = b.Length - dataStart;
            if (have != want)
                throw Bad(origin, have < want ? "truncated data" : "trailing bytes after the data",
                          want + " data bytes for shape " + NpyArray.ShapeToString(shape) + " " + descr, have + " bytes");

            var arr = new NpyArray { DType = dtype, Shape = shape };
            int n = (int)count;
            if (dtype == NpyDType.Int32)
            {
                arr.Ints = new int[n];
                for (int i = 0; i < n; i++) arr.Ints[i] = ReadInt32LE(b, dataStart + 4 * i);
            }
            else if (dtype == NpyDType.Float32)
            {
                arr.Floats = new float[n];
                for (int i = 0; i < n; i++) arr.Floats[i] = Int32BitsToSingle(ReadInt32LE(b, dataStart + 4 * i));
            }
            else
            {
                arr.Floats = new float[n];
                for (int i = 0; i < n; i++) arr.Floats[i] = HalfToFloat((ushort)(b[dataStart + 2 * i] | (b[dataStart + 2 * i + 1] << 8)));
            }
            return arr;
        }

        static int ReadInt32LE(byte[] b, int o)
        {
            return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
        }

        static float Int32BitsToSingle(int bits)
        {
            // BitConverter.Int32BitsToSingle is not in every Unity/mono profile; go through 4 bytes (explicit LE).
            var tmp = BitConverter.GetBytes(bits);
            return BitConverter.ToSingle(tmp, 0);
        }

        /// <summary>IEEE 754 binary16 -> binary32, exact (subnormals, infinities and NaN payloads kept).</summary>
        public static float HalfToFloat(ushort h)
        {
            int sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
            int bits;
            if (exp == 0x1f) bits = (sign << 31) | (0xff << 23) | (mant << 13);
            else if (exp != 0) bits = (sign << 31) | ((exp - 15 + 127) << 23) | (mant << 13);
            else if (mant == 0) bits = sign << 31;
            else
            {
                // subnormal half: normalise the mantissa into a float32 normal number
                int e = -1;
                do { mant <<= 1; e++; } while ((mant & 0x400) == 0);
                bits = (sign << 31) | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
            }
            return Int32BitsToSingle(bits);
        }

        static BundleException Bad(string origin, string message, string expected, string found)
        {
            return new BundleException(origin, "bad .npy: " + message, expected, found);
        }

        // --- header: the Python dict literal numpy writes, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }

        static void ParseHeader(string h, string origin, out string descr, out bool fortran, out int[] shape)
        {
            var p = new HeaderParser(h.TrimEnd(' ', '\n'), origin);
            var keys = new HashSet<string>();
            descr = null; fortran = false; shape = null;
            p.Expect('{');
            while (true)
            {
                p.Ws();
                if (p.Peek() == '}') { p.Next(); break; }
                string key = p.QuotedString();
                if (!keys.Add(key)) throw Bad(origin, "duplicate header key '" + key + "'", null, null);
                p.Ws(); p.Expect(':'); p.Ws();
                if (key == "descr") descr = p.QuotedString();
                else if (key == "fortran_order") fortran = p.Bool();
                else if (key == "shape") shape = p.Tuple();
                else throw Bad(origin, "unexpected header key '" + key + "'", "descr, fortran_order, shape", null);
                p.Ws();
                if (p.Peek() == ',') { p.Next(); continue; }
                p.Ws();
                if (p.Peek() == '}') { p.Next(); break; }
                throw Bad(origin, "malformed header dict", null, "'" + h + "'");
            }
            p.Ws();
            if (!p.AtEnd) throw Bad(origin, "text after the header dict", null, "'" + h + "'");
            if (descr == null || shape == null || !keys.Contains("fortran_order"))
                throw Bad(origin, "header lacks a key", "descr, fortran_order and shape", string.Join(", ", new List<string>(keys).ToArray()));
            if (shape.Length > 8) throw Bad(origin, "rank above 8", "rank <= 8", "rank " + shape.Length);
        }

        sealed class HeaderParser
        {
            readonly string s; readonly string origin; int pos;
            public HeaderParser(string s, string origin) { this.s = s; this.origin = origin; }
            public bool AtEnd { get { return pos >= s.Length; } }
            public char Peek() { return pos < s.Length ? s[pos] : '\0'; }
            public char Next() { return pos < s.Length ? s[pos++] : '\0'; }
            public void Ws() { while (pos < s.Length && s[pos] == ' ') pos++; }
            BundleException Err(string what) { return Bad(origin, "malformed header (" + what + ")", null, "'" + s + "'"); }
            public void Expect(char c) { Ws(); if (Next() != c) throw Err("expected '" + c + "'"); }

            public string QuotedString()
            {
                char q = Next();
                if (q != '\'' && q != '"') throw Err("expected a quoted string");
                int start = pos;
                while (pos < s.Length && s[pos] != q) { if (s[pos] == '\\') throw Err("escapes are not supported"); pos++; }
                if (pos >= s.Length) throw Err("unterminated string");
                return s.Substring(start, pos++ - start);
            }

            public bool Bool()
            {
                if (string.CompareOrdinal(s, pos, "True", 0, 4) == 0) { pos += 4; return true; }
                if (string.CompareOrdinal(s, pos, "False", 0, 5) == 0) { pos += 5; return false; }
                throw Err("expected True or False");
            }

            public int[] Tuple()
            {
                // (), (n,), (a, b), (a, b,) -- non-negative decimal ints only
                var dims = new List<int>();
                Expect('(');
                Ws();
                if (Peek() == ')') { Next(); return dims.ToArray(); }
                bool trailingComma = false;
                while (true)
                {
                    Ws();
                    if (Peek() == ')') { if (!trailingComma) throw Err("empty tuple item"); Next(); break; }
                    int start = pos;
                    while (pos < s.Length && s[pos] >= '0' && s[pos] <= '9') pos++;
                    if (pos == start) throw Err("shape items must be non-negative integers");
                    int d;
                    if (!int.TryParse(s.Substring(start, pos - start), NumberStyles.None, CultureInfo.InvariantCulture, out d))
                        throw Err("shape item too large");
                    dims.Add(d);
                    Ws();
                    char c = Next();
                    if (c == ',') { trailingComma = true; continue; }
                    if (c == ')') { if (dims.Count == 1) throw Err("a 1-tuple needs a trailing comma"); break; }
                    throw Err("expected ',' or ')'");
                }
                return dims.ToArray();
            }
        }
    }
}
