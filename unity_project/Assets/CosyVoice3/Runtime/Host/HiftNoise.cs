// HiFT's sine-noise input for a call on T mel frames (docs/hift.md; packager/runtime/hift_noise.py noise_for_frames):
// rows [0, 480 T) of the noise stream, always from row 0. Rows below the shipped table's cap come from the table;
// rows past it continue the MT19937 stream from the shipped state (value = (u & 0xFFFFFF) / 2^24, row-major
// [row, channel]). The continuation is computed once and kept, so streaming calls on a growing mel only draw the rows
// that are new.
using System;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    public sealed class HiftNoise
    {
        readonly int channels, cap;
        readonly Mt19937 mt;
        float[] rows;       // table rows followed by every continued row drawn so far, [rowsFilled, channels]
        int rowsFilled;

        /// <summary><paramref name="table"/>: float32 [1, cap, channels]; <paramref name="stateAfter"/>: int32 [625].</summary>
        public HiftNoise(NpyArray table, NpyArray stateAfter)
        {
            Tensors.CheckShape("hift_sine_noise", table, 1, -1, -1);
            Tensors.CheckShape("hift_sine_noise_mt_state", stateAfter, Mt19937.N + 1);
            if (table.Floats == null || stateAfter.Ints == null)
                throw new HostInputException("hift_sine_noise", "wrong dtype", "float32 table and int32 state", null);
            cap = table.Shape[1];
            channels = table.Shape[2];
            rows = table.Floats;
            rowsFilled = cap;
            mt = new Mt19937(stateAfter.Ints);
        }

        public int Channels { get { return channels; } }
        public int CapSamples { get { return cap; } }

        /// <summary>The graph's noise input for <paramref name="frames"/> mel frames: float32 [1, frames * samplesPerFrame, channels].</summary>
        public NpyArray ForFrames(int frames, int samplesPerFrame)
        {
            int n = checked(frames * samplesPerFrame);
            Extend(n);
            var data = new float[checked(n * channels)];
            Array.Copy(rows, data, data.Length);
            return Tensors.Floats(data, 1, n, channels);
        }

        void Extend(int n)
        {
            if (n <= rowsFilled) return;
            if (rows.Length < n * channels)
            {
                var grown = new float[Math.Max(n, 2 * rowsFilled) * channels];
                Array.Copy(rows, grown, rowsFilled * channels);
                rows = grown;
            }
            for (int i = rowsFilled * channels; i < n * channels; i++) rows[i] = mt.NextTorchFloat();
            rowsFilled = n;
        }
    }
}
