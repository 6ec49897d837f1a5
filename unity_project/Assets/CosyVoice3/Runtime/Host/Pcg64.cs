// numpy's default_rng(seed) in C#: SeedSequence(seed) -> PCG64 -> Generator.random() (docs/llm.md, "Seeded RAS
// sampler"). The RAS sampler of packager/runtime/llm_generate.py draws one random() double per draw, so this mirror must
// produce numpy's exact stream; tests/csharp/test_host.py compares the first doubles for several seeds bit for bit.
//   SeedSequence: the seed's 32-bit words (little-endian), hashed into a 4-word pool (hashmix/mix with numpy's
//                 constants), then generate_state(4, uint64) -> words (seed_hi, seed_lo, inc_hi, inc_lo).
//   PCG64:        128-bit LCG state' = state * M + inc (inc odd), output XSL-RR: rotr64(hi ^ lo, hi >> 58);
//                 seeding: state = 0; inc = (initseq << 1) | 1; step; state += initstate; step.
//   random():     (next_uint64 >> 11) * 2^-53.
// The 128-bit arithmetic is two ulongs (C# 7.2 has no UInt128).
using System;

namespace CosyVoice3.Host
{
    public static class SeedSequence
    {
        const uint InitA = 0x43b0d7e5, MultA = 0x931e8875, InitB = 0x8b51f9dd, MultB = 0x58f38ded;
        const uint MixMultL = 0xca01f9dd, MixMultR = 0x4973f715;
        const int XShift = 16, PoolSize = 4;

        /// <summary>numpy's _coerce_to_uint32_array for a non-negative int: 32-bit words, least significant first; 0 -> [0].</summary>
        public static uint[] EntropyWords(ulong seed)
        {
            if (seed == 0) return new uint[] { 0 };
            return seed >> 32 == 0 ? new[] { (uint)seed } : new[] { (uint)seed, (uint)(seed >> 32) };
        }

        static uint HashMix(uint value, ref uint hashConst)
        {
            value ^= hashConst;
            unchecked { hashConst *= MultA; value *= hashConst; }
            value ^= value >> XShift;
            return value;
        }

        static uint Mix(uint x, uint y)
        {
            uint r = unchecked(MixMultL * x - MixMultR * y);
            return r ^ (r >> XShift);
        }

        /// <summary>The mixed entropy pool (SeedSequence.pool).</summary>
        public static uint[] Pool(uint[] entropy)
        {
            var pool = new uint[PoolSize];
            uint h = InitA;
            for (int i = 0; i < PoolSize; i++) pool[i] = HashMix(i < entropy.Length ? entropy[i] : 0u, ref h);
            for (int src = 0; src < PoolSize; src++)
                for (int dst = 0; dst < PoolSize; dst++)
                    if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src], ref h));
            for (int src = PoolSize; src < entropy.Length; src++)
                for (int dst = 0; dst < PoolSize; dst++) pool[dst] = Mix(pool[dst], HashMix(entropy[src], ref h));
            return pool;
        }

        /// <summary>SeedSequence.generate_state(n, uint64): 2n 32-bit words cycled from the pool, paired little-endian.</summary>
        public static ulong[] GenerateState64(uint[] pool, int n)
        {
            var words = new uint[2 * n];
            uint h = InitB;
            for (int i = 0; i < words.Length; i++)
            {
                uint v = pool[i % pool.Length] ^ h;
                unchecked { h *= MultB; v *= h; }
                words[i] = v ^ (v >> XShift);
            }
            var r = new ulong[n];
            for (int i = 0; i < n; i++) r[i] = words[2 * i] | ((ulong)words[2 * i + 1] << 32);
            return r;
        }
    }

    /// <summary>numpy.random.Generator(PCG64(seed)) for the members the host uses: NextUInt64() and Random().</summary>
    public sealed class Pcg64
    {
        // PCG_DEFAULT_MULTIPLIER_128
        const ulong MulHi = 2549297995355413924UL, MulLo = 4865540595714422341UL;
        ulong stateHi, stateLo, incHi, incLo;

        /// <summary>default_rng(seed) for a non-negative integer seed.</summary>
        public Pcg64(ulong seed)
        {
            var v = SeedSequence.GenerateState64(SeedSequence.Pool(SeedSequence.EntropyWords(seed)), 4);
            // pcg64_set_seed: initstate = (v[0] << 64) | v[1], initseq = (v[2] << 64) | v[3]
            incHi = (v[2] << 1) | (v[3] >> 63);
            incLo = (v[3] << 1) | 1UL;
            stateHi = 0; stateLo = 0;
            Step();
            ulong lo = unchecked(stateLo + v[1]);
            stateHi = unchecked(stateHi + v[0] + (lo < stateLo ? 1UL : 0UL));
            stateLo = lo;
            Step();
        }

        /// <summary>The 128-bit state and increment as (hi, lo) words (numpy's bit_generator.state, for tests).</summary>
        public ulong[] StateWords { get { return new[] { stateHi, stateLo, incHi, incLo }; } }

        void Step()
        {
            // state = state * M + inc  (mod 2^128)
            ulong pHi, pLo;
            Mul64(stateLo, MulLo, out pHi, out pLo);
            unchecked
            {
                pHi += stateLo * MulHi + stateHi * MulLo;
                ulong lo = pLo + incLo;
                pHi += incHi + (lo < pLo ? 1UL : 0UL);
                stateHi = pHi;
                stateLo = lo;
            }
        }

        /// <summary>Full 64x64 -> 128-bit product.</summary>
        static void Mul64(ulong a, ulong b, out ulong hi, out ulong lo)
        {
            ulong aL = a & 0xffffffffUL, aH = a >> 32, bL = b & 0xffffffffUL, bH = b >> 32;
            unchecked
            {
                ulong ll = aL * bL, lh = aL * bH, hl = aH * bL, hh = aH * bH;
                ulong mid = (ll >> 32) + (lh & 0xffffffffUL) + (hl & 0xffffffffUL);
                lo = (mid << 32) | (ll & 0xffffffffUL);
                hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
            }
        }

        public ulong NextUInt64()
        {
            Step();
            ulong x = stateHi ^ stateLo;
            int rot = (int)(stateHi >> 58);
            return (x >> rot) | (x << ((64 - rot) & 63));
        }

        /// <summary>Generator.random(): a double in [0, 1) with 53 random bits.</summary>
        public double Random() { return (NextUInt64() >> 11) * (1.0 / 9007199254740992.0); }
    }
}
