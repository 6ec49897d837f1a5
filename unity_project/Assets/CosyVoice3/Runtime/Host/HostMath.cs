// float32 arithmetic of the host loops, written so that every operation rounds to float32 exactly as numpy does.
// Why the explicit (float) casts: C# allows float expressions to be evaluated in higher precision; a cast forces the
// rounding. Computing one +, -, *, / in double and rounding to float gives the correctly rounded float32 result
// (double has more than 2 * 24 + 2 bits), so each cast below equals numpy's float32 operation bit for bit.
// Sums mirror numpy's pairwise summation (8 accumulators, blocks of 128) so reductions are bit-identical too.
// exp/log are the one exception: numpy's float32 exp/log use SIMD polynomial kernels (up to ~2.5 ulp on AVX2/
// AVX-512, not correctly rounded) that C# cannot call; here they are correctly rounded (via double). Only log-softmax
// and softmax use them, so log-probabilities can differ from numpy's by a few ulp (tests/csharp/test_host.py
// measures it); token choices are equal unless a draw falls within those ulps of a boundary.
using System;

namespace CosyVoice3.Host
{
    public static class HostMath
    {
        public static float Exp(float x) { return (float)Math.Exp(x); }
        public static float Log(float x) { return (float)Math.Log(x); }

        /// <summary>numpy's float32 pairwise sum (add.reduce over a contiguous axis) of a[start, start + n).</summary>
        public static float PairwiseSum(float[] a, int start, int n)
        {
            if (n < 8)
            {
                float res = 0f;
                for (int i = 0; i < n; i++) res = (float)(res + a[start + i]);
                return res;
            }
            if (n <= 128)
            {
                var r = new float[8];
                for (int j = 0; j < 8; j++) r[j] = a[start + j];
                int i = 8;
                for (; i < n - (n % 8); i += 8)
                    for (int j = 0; j < 8; j++) r[j] = (float)(r[j] + a[start + i + j]);
                float res = (float)((float)((float)(r[0] + r[1]) + (float)(r[2] + r[3])) + (float)((float)(r[4] + r[5]) + (float)(r[6] + r[7])));
                for (; i < n; i++) res = (float)(res + a[start + i]);
                return res;
            }
            int n2 = n / 2;
            n2 -= n2 % 8;
            return (float)(PairwiseSum(a, start, n2) + PairwiseSum(a, start + n2, n - n2));
        }

        public static float Max(float[] x)
        {
            // np.max propagates NaN; logits never hold NaN in a working graph, but keep the semantics.
            float m = float.NegativeInfinity;
            foreach (float v in x)
            {
                if (float.IsNaN(v)) return float.NaN;
                if (v > m) m = v;
            }
            return m;
        }

        /// <summary>llm_generate.log_softmax: (x - max) - log(sum(exp(x - max))), float32.</summary>
        public static float[] LogSoftmax(float[] x)
        {
            float m = Max(x);
            var d = new float[x.Length];
            var e = new float[x.Length];
            for (int i = 0; i < x.Length; i++) { d[i] = (float)(x[i] - m); e[i] = Exp(d[i]); }
            float ls = Log(PairwiseSum(e, 0, e.Length));
            for (int i = 0; i < x.Length; i++) d[i] = (float)(d[i] - ls);
            return d;
        }

        /// <summary>llm_generate._softmax: e = exp(x - max), e / sum(e), float32 (exp(-inf) = 0 for masked ids).</summary>
        public static float[] Softmax(float[] x)
        {
            float m = Max(x);
            var e = new float[x.Length];
            for (int i = 0; i < x.Length; i++) e[i] = Exp((float)(x[i] - m));
            float s = PairwiseSum(e, 0, e.Length);
            for (int i = 0; i < x.Length; i++) e[i] = (float)(e[i] / s);
            return e;
        }

        /// <summary>np.argmax: the first index of the maximum (NaN counts as the maximum, as in numpy).</summary>
        public static int ArgMax(float[] x)
        {
            int best = 0;
            for (int i = 0; i < x.Length; i++)
            {
                if (float.IsNaN(x[i])) return i;
                if (x[i] > x[best]) best = i;
            }
            return best;
        }
    }
}
