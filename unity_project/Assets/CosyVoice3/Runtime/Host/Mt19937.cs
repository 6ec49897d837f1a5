// MT19937 continuation of HiFT's sine-noise stream past the shipped table (docs/hift.md; packager/host/hift_noise.py
// continue_noise). torch's CPU rand() and numpy's legacy MT19937 share the generator: the bundle ships its state right
// after the table as int32 [625] = 624 key words (uint32 bit patterns) + the position in the key. Each noise value is
// (u & 0xFFFFFF) / 2^24 of one 32-bit draw u (exact in float32).
using System;

namespace CosyVoice3.Host
{
    public sealed class Mt19937
    {
        public const int N = 624;
        const int M = 397;
        const uint MatrixA = 0x9908b0df, Upper = 0x80000000, Lower = 0x7fffffff;
        readonly uint[] key = new uint[N];
        int pos;

        /// <summary>From the shipped state: <paramref name="state"/> = 624 key words + position (0..624).</summary>
        public Mt19937(int[] state)
        {
            if (state == null || state.Length != N + 1)
                throw new HostInputException("mt19937_state", "bad MT19937 state", "int32 [625]", state == null ? "nothing" : "[" + state.Length + "]");
            if (state[N] < 0 || state[N] > N)
                throw new HostInputException("mt19937_state", "bad MT19937 position", "0..624", state[N].ToString());
            for (int i = 0; i < N; i++) key[i] = unchecked((uint)state[i]);
            pos = state[N];
        }

        /// <summary>The state in the shipped layout (624 words + position).</summary>
        public int[] State()
        {
            var s = new int[N + 1];
            for (int i = 0; i < N; i++) s[i] = unchecked((int)key[i]);
            s[N] = pos;
            return s;
        }

        void Regenerate()
        {
            int i;
            uint y;
            for (i = 0; i < N - M; i++)
            {
                y = (key[i] & Upper) | (key[i + 1] & Lower);
                key[i] = key[i + M] ^ (y >> 1) ^ ((y & 1u) != 0 ? MatrixA : 0u);
            }
            for (; i < N - 1; i++)
            {
                y = (key[i] & Upper) | (key[i + 1] & Lower);
                key[i] = key[i + (M - N)] ^ (y >> 1) ^ ((y & 1u) != 0 ? MatrixA : 0u);
            }
            y = (key[N - 1] & Upper) | (key[0] & Lower);
            key[N - 1] = key[M - 1] ^ (y >> 1) ^ ((y & 1u) != 0 ? MatrixA : 0u);
            pos = 0;
        }

        public uint NextUInt32()
        {
            if (pos >= N) Regenerate();
            uint y = key[pos++];
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c5680u;
            y ^= (y << 15) & 0xefc60000u;
            y ^= y >> 18;
            return y;
        }

        /// <summary>torch CPU rand() of one float32 element: (u &amp; 0xFFFFFF) / 2^24.</summary>
        public float NextTorchFloat() { return (NextUInt32() & 0xFFFFFFu) * (1.0f / 16777216.0f); }
    }
}
