// Output-vs-golden verdicts with exactly the meaning of packager/contract/tolerance.py (the Python side), so that a case
// passes in Unity iff it would pass on the same arrays in Python. tests/csharp/test_core.py runs both on the same vectors.
//   - shape, then dtype must match ("float32" vs "int32" vs "float16"): otherwise fail at once;
//   - max_abs / worst index use |a - e| in float64 with NaN counted as +inf; the first maximum wins (np.argmax);
//   - exact: every element equal (NaN never equals), then stop (metrics are not evaluated, as in Python);
//   - element-wise (default on, skipped for size 0): pass iff |a - e| <= atol + rtol * |e| for every element
//     (IEEE comparisons, so a NaN difference or bound fails);
//   - metrics in name order: cosine, sqnr_db, top1 are lower bounds; max_abs, kl upper bounds (see Metric()).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace CosyVoice3.Core
{
    public sealed class ToleranceSpec
    {
        public string Output;
        public double Atol;
        public double Rtol;
        public bool Exact;
        public bool Elementwise = true;
        /// <summary>Metric name -> bound, kept sorted by name (ordinal), the order Python evaluates them in.</summary>
        public SortedDictionary<string, double> Metrics = new SortedDictionary<string, double>(StringComparer.Ordinal);
    }

    public sealed class Verdict
    {
        public string Output;
        public bool Passed = true;
        public double MaxAbs;
        public int[] WorstIndex = new int[0];
        public double ActualAtWorst;
        public double ExpectedAtWorst;
        public SortedDictionary<string, double> Metrics = new SortedDictionary<string, double>(StringComparer.Ordinal);
        public List<string> Reasons = new List<string>();

        public string Summary()
        {
            var parts = new List<string> { "max_abs=" + G(MaxAbs, 3) };
            if (WorstIndex.Length > 0)
                parts.Add("worst at " + NpyArray.ShapeToString(WorstIndex) + ": got " + G(ActualAtWorst, 6) + ", expected " + G(ExpectedAtWorst, 6));
            foreach (var kv in Metrics) parts.Add(kv.Key + "=" + G(kv.Value, 6));
            var text = string.Join(", ", parts.ToArray());
            return Passed ? text : text + " | " + string.Join("; ", Reasons.ToArray());
        }

        static string G(double v, int digits)
        {
            if (double.IsNaN(v)) return "nan";
            if (double.IsPositiveInfinity(v)) return "inf";
            if (double.IsNegativeInfinity(v)) return "-inf";
            return v.ToString("G" + digits, CultureInfo.InvariantCulture);
        }
    }

    public static class Tolerance
    {
        public static readonly string[] LowerBound = { "cosine", "sqnr_db", "top1" };
        public static readonly string[] UpperBound = { "max_abs", "kl" };

        public static bool IsKnownMetric(string name)
        {
            return Array.IndexOf(LowerBound, name) >= 0 || Array.IndexOf(UpperBound, name) >= 0;
        }

        public static Verdict Compare(string output, NpyArray actual, NpyArray expected, ToleranceSpec tol)
        {
            var v = new Verdict { Output = output };
            if (!SameShape(actual.Shape, expected.Shape))
            {
                v.Passed = false;
                v.Reasons.Add("shape " + actual.ShapeText + " != expected " + expected.ShapeText);
                return v;
            }
            if (actual.DType != expected.DType)
            {
                v.Passed = false;
                v.Reasons.Add("dtype " + actual.DTypeName + " != expected " + expected.DTypeName);
                return v;
            }
            int n = actual.Length;
            var a = ToDoubles(actual);
            var e = ToDoubles(expected);
            var diff = new double[n];
            if (n > 0)
            {
                int worst = 0;
                for (int i = 0; i < n; i++)
                {
                    double d = Math.Abs(a[i] - e[i]);
                    diff[i] = double.IsNaN(d) ? double.PositiveInfinity : d;
                    if (diff[i] > diff[worst]) worst = i;
                }
                v.MaxAbs = diff[worst];
                v.WorstIndex = NpyArray.Unravel(worst, actual.Shape);
                v.ActualAtWorst = a[worst];
                v.ExpectedAtWorst = e[worst];
            }
            if (tol.Exact)
            {
                int differ = 0;
                for (int i = 0; i < n; i++) if (a[i] != e[i]) differ++;
                if (differ > 0)
                {
                    v.Passed = false;
                    v.Reasons.Add(differ + " of " + n + " elements differ (exact match required)");
                }
                return v;
            }
            if (tol.Elementwise && n > 0)
            {
                int bad = 0;
                for (int i = 0; i < n; i++)
                {
                    double bound = tol.Atol + tol.Rtol * Math.Abs(e[i]);
                    if (!(diff[i] <= bound)) bad++;
                }
                if (bad > 0)
                {
                    v.Passed = false;
                    v.Reasons.Add(bad + " of " + n + " elements exceed atol=" + Num(tol.Atol) + " rtol=" + Num(tol.Rtol));
                }
            }
            foreach (var kv in tol.Metrics)
            {
                double value = Metric(kv.Key, a, e, actual.Shape);
                v.Metrics[kv.Key] = value;
                bool lower = Array.IndexOf(LowerBound, kv.Key) >= 0;
                bool ok = lower ? value >= kv.Value : value <= kv.Value;
                if (!ok)
                {
                    v.Passed = false;
                    v.Reasons.Add(kv.Key + "=" + value.ToString("G6", CultureInfo.InvariantCulture) + " violates "
                                  + (lower ? ">=" : "<=") + " " + Num(kv.Value));
                }
            }
            return v;
        }

        /// <summary>One metric over flattened float64 arrays (packager/contract/tolerance.py metric()).</summary>
        public static double Metric(string name, double[] a, double[] e, int[] shape)
        {
            int n = a.Length;
            switch (name)
            {
                case "max_abs":
                {
                    // np.max propagates NaN (no NaN -> inf substitution here, unlike the worst-index search)
                    if (n == 0) return 0.0;
                    double m = double.NegativeInfinity;
                    for (int i = 0; i < n; i++)
                    {
                        double d = Math.Abs(a[i] - e[i]);
                        if (double.IsNaN(d)) return double.NaN;
                        if (d > m) m = d;
                    }
                    return m;
                }
                case "cosine":
                {
                    double na = 0, ne = 0, dot = 0;
                    for (int i = 0; i < n; i++) { na += a[i] * a[i]; ne += e[i] * e[i]; dot += a[i] * e[i]; }
                    na = Math.Sqrt(na); ne = Math.Sqrt(ne);
                    if (na == 0.0 && ne == 0.0) return 1.0;
                    if (na == 0.0 || ne == 0.0) return 0.0;
                    return dot / (na * ne);
                }
                case "sqnr_db":
                {
                    double noise = 0, signal = 0;
                    for (int i = 0; i < n; i++) { double d = a[i] - e[i]; noise += d * d; signal += e[i] * e[i]; }
                    if (noise == 0.0) return double.PositiveInfinity;
                    if (signal == 0.0) return double.NegativeInfinity;
                    return 10.0 * Math.Log10(signal / noise);
                }
                case "top1":
                {
                    if (shape.Length == 0 || shape[shape.Length - 1] == 0) return 1.0;
                    int k = shape[shape.Length - 1], rows = n / k, agree = 0;
                    for (int r = 0; r < rows; r++)
                        if (ArgMax(a, r * k, k) == ArgMax(e, r * k, k)) agree++;
                    return (double)agree / rows;   // rows == 0 gives NaN, as np.mean([]) does
                }
                case "kl":
                {
                    if (shape.Length == 0 || shape[shape.Length - 1] == 0)
                        throw new ArgumentException("kl needs a non-empty last axis (the classes)");
                    int k = shape[shape.Length - 1], rows = n / k;
                    double total = 0;
                    for (int r = 0; r < rows; r++)
                    {
                        var pe = Softmax(e, r * k, k);
                        var pa = Softmax(a, r * k, k);
                        double row = 0;
                        for (int j = 0; j < k; j++)
                            if (pe[j] > 0) row += pe[j] * (Math.Log(pe[j]) - Math.Log(Math.Max(pa[j], 1e-300)));
                        total += row;
                    }
                    return total / rows;
                }
                default:
                    throw new ArgumentException("unknown metric '" + name + "'; known: cosine, sqnr_db, top1, max_abs, kl");
            }
        }

        /// <summary>np.argmax over a row: the first maximum, and a NaN counts as the maximum (first NaN wins).</summary>
        static int ArgMax(double[] x, int start, int k)
        {
            int best = 0;
            for (int j = 0; j < k; j++)
            {
                double v = x[start + j];
                if (double.IsNaN(v)) return j;
                if (v > x[start + best]) best = j;
            }
            return best;
        }

        static double[] Softmax(double[] x, int start, int k)
        {
            double m = double.NegativeInfinity;
            for (int j = 0; j < k; j++)
            {
                double v = x[start + j];
                if (double.IsNaN(v)) { m = double.NaN; break; }
                if (v > m) m = v;
            }
            var p = new double[k];
            double sum = 0;
            for (int j = 0; j < k; j++) { p[j] = Math.Exp(x[start + j] - m); sum += p[j]; }
            for (int j = 0; j < k; j++) p[j] /= sum;
            return p;
        }

        static bool SameShape(int[] x, int[] y)
        {
            if (x.Length != y.Length) return false;
            for (int i = 0; i < x.Length; i++) if (x[i] != y[i]) return false;
            return true;
        }

        public static double[] ToDoubles(NpyArray arr)
        {
            int n = arr.Length;
            var d = new double[n];
            if (arr.Ints != null) for (int i = 0; i < n; i++) d[i] = arr.Ints[i];
            else for (int i = 0; i < n; i++) d[i] = arr.Floats[i];
            return d;
        }

        static string Num(double x) { return x.ToString("R", CultureInfo.InvariantCulture); }
    }
}
