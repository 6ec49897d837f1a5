// The flow's host loop, a 1:1 mirror of packager/runtime/euler_cfg.py (upstream_ref README "F. Flow" steps 4-7;
// docs/flow.md): frontend call, CFG batch assembly (row 0 conditional, row 1 unconditional with mu = spks = cond = 0),
// n Euler steps on the cosine time grid with t accumulated in float32, prompt slicing. Every arithmetic step is one
// float32 operation in numpy's order, so x after each step is bit-identical to the Python loop's.
//   x0 = flow_noise[:, :, :T]
//   t = t_span[0]; dt = t_span[1] - t_span[0]
//   step i = 1..n: v = (1 + w) * out[0] - w * out[1]; x = x + dt * v; t = t + dt; if i < n: dt = t_span[i + 1] - t
using System;
using System.Collections.Generic;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    public sealed class EulerCfg
    {
        readonly IGraphRunner runner;
        readonly NpyArray noise;   // flow_noise [1, mel_bins, noise_frames]
        public readonly string FrontendGraph, EstimatorGraph;
        public readonly int Ratio, Lookahead, MelBins, SpkEmbedDim, VocabSize, ChunkFramesStreaming, Steps;
        public readonly float CfgRate;
        public readonly float[] TSpan;

        /// <summary>Called after each Euler step with (step 1..n, t after the step, x [1, 80, T] after the step).</summary>
        public Action<int, float, float[]> OnStep;

        public EulerCfg(IGraphRunner runner, JsonValue constants, NpyArray flowNoise)
        {
            this.runner = runner;
            var graphs = Constants.Node(constants, "graphs");
            FrontendGraph = Constants.String(graphs, "frontend");
            EstimatorGraph = Constants.String(graphs, "estimator");
            Ratio = Constants.Int(constants, "token_mel_ratio");
            Lookahead = Constants.Int(constants, "pre_lookahead_len");
            MelBins = Constants.Int(constants, "mel_bins");
            SpkEmbedDim = Constants.Int(constants, "spk_embed_dim");
            VocabSize = Constants.Int(constants, "vocab_size");
            ChunkFramesStreaming = Constants.Int(constants, "chunk_frames_streaming");
            Steps = Constants.Int(constants, "n_timesteps");
            CfgRate = (float)Constants.Number(constants, "cfg_rate");
            var ts = Constants.Numbers(constants, "t_span");
            TSpan = new float[ts.Length];
            for (int i = 0; i < ts.Length; i++) TSpan[i] = (float)ts[i];
            if (TSpan.Length != Steps + 1) throw new BundleException(constants.Path, "t_span must have n_timesteps + 1 values", (Steps + 1).ToString(), TSpan.Length.ToString());
            Tensors.CheckShape("flow_noise", flowNoise, 1, MelBins, -1);
            noise = flowNoise;
        }

        /// <summary>The estimator's chunk_frames input: the static chunk (streaming) or n_frames (full attention).</summary>
        public float ChunkFrames(int nFrames, bool streaming) { return streaming ? ChunkFramesStreaming : nFrames; }

        /// <summary>The estimator's batch-2 inputs (euler_cfg.cfg_batch); all arrays [2, ...], row 1 has mu = spks = cond = 0.</summary>
        public Dictionary<string, NpyArray> CfgBatch(float[] x, float[] mu, float[] spks, float[] cond, int frames, float t, float chunk)
        {
            int n = MelBins * frames;
            var mask = new float[2 * frames];
            for (int i = 0; i < mask.Length; i++) mask[i] = 1f;
            return new Dictionary<string, NpyArray>
            {
                { "x", Tensors.Floats(Rows(x, x, n), 2, MelBins, frames) },
                { "mask", Tensors.Floats(mask, 2, 1, frames) },
                { "mu", Tensors.Floats(Rows(mu, null, n), 2, MelBins, frames) },
                { "t", Tensors.Floats(new[] { t, t }, 2) },
                { "spks", Tensors.Floats(Rows(spks, null, MelBins), 2, MelBins) },
                { "cond", Tensors.Floats(Rows(cond, null, n), 2, MelBins, frames) },
                { "chunk_frames", Tensors.Floats(new[] { chunk }, 1) },
            };
        }

        static float[] Rows(float[] a, float[] b, int n)
        {
            var r = new float[2 * n];
            Array.Copy(a, 0, r, 0, n);
            if (b != null) Array.Copy(b, 0, r, n, n);
            return r;
        }

        /// <summary>README F.6: n Euler steps of v = (1 + w) v_cond - w v_uncond from x0 = noise[:, :, :T]. Returns x [1, 80, T].</summary>
        public float[] Solve(float[] mu, float[] spks, float[] cond, int frames, bool streaming)
        {
            int noiseFrames = noise.Shape[2];
            if (noiseFrames < frames)
                throw new HostInputException("flow_noise", "utterance longer than the fixed noise table", "at most " + noiseFrames + " mel frames", frames.ToString());
            int n = MelBins * frames;
            var x = new float[n];
            for (int c = 0; c < MelBins; c++) Array.Copy(noise.Floats, c * noiseFrames, x, c * frames, frames);
            float chunk = ChunkFrames(frames, streaming);
            float w = CfgRate, a = (float)(1f + w);
            float t = TSpan[0], dt = (float)(TSpan[1] - TSpan[0]);
            for (int step = 1; step <= Steps; step++)
            {
                var outs = runner.Run(EstimatorGraph, CfgBatch(x, mu, spks, cond, frames, t, chunk));
                var o = Tensors.Output(outs, EstimatorGraph, "estimator_out").Floats;   // [2, 80, T]
                if (o.Length != 2 * n) throw new InvalidOperationException(EstimatorGraph + " returned " + o.Length + " values, expected " + (2 * n));
                var next = new float[n];
                for (int i = 0; i < n; i++)
                {
                    float v = (float)((float)(a * o[i]) - (float)(w * o[n + i]));
                    next[i] = (float)(x[i] + (float)(dt * v));
                }
                x = next;
                t = (float)(t + dt);
                if (step < Steps) dt = (float)(TSpan[step + 1] - t);
                if (OnStep != null) OnStep(step, t, x);
            }
            return x;
        }

        /// <summary>
        /// flow.inference over the graphs (euler_cfg.synthesize). token [K] and promptToken [P] ids; promptFeat
        /// [1, P*R, 80] (time-major, as upstream takes it); embedding [SpkEmbedDim]. Returns mel [1, 80, K*R] (finalize) or
        /// [1, 80, (K - Lk)*R] (finalize = false: the look-ahead tokens' frames are dropped).
        /// </summary>
        public NpyArray Synthesize(int[] token, int[] promptToken, NpyArray promptFeat, float[] embedding, bool streaming = false, bool finalize = true)
        {
            int pFrames = promptToken.Length * Ratio;
            Tensors.CheckShape("prompt_feat", promptFeat, 1, pFrames, MelBins);
            if (promptFeat.Floats == null) throw new HostInputException("prompt_feat", "wrong dtype", "float32", "int32");
            if (embedding == null || embedding.Length != SpkEmbedDim)
                throw new HostInputException("embedding", "wrong shape", "[1, " + SpkEmbedDim + "]", embedding == null ? "nothing" : "[1, " + embedding.Length + "]");
            var tokens = new int[promptToken.Length + token.Length];
            Array.Copy(promptToken, tokens, promptToken.Length);
            Array.Copy(token, 0, tokens, promptToken.Length, token.Length);
            Tensors.CheckIds("token", tokens, 0, VocabSize);
            if (!finalize && token.Length <= Lookahead)
                throw new HostInputException("token", "finalize=False needs more tokens than the look-ahead", "> " + Lookahead + " tokens", token.Length.ToString());

            var front = runner.Run(FrontendGraph, new Dictionary<string, NpyArray>
            {
                { "speech_tokens", Tensors.Ints(tokens, 1, tokens.Length) },
                { "embedding", Tensors.Floats((float[])embedding.Clone(), 1, SpkEmbedDim) },
            });
            var muFull = Tensors.Output(front, FrontendGraph, "mu");   // [1, 80, R*N]
            var spks = Tensors.Output(front, FrontendGraph, "spks").Floats;   // [1, 80]
            int fullFrames = muFull.Shape[2];
            int frames = finalize ? fullFrames : (tokens.Length - Lookahead) * Ratio;
            var mu = new float[MelBins * frames];
            for (int c = 0; c < MelBins; c++) Array.Copy(muFull.Floats, c * fullFrames, mu, c * frames, frames);
            var cond = new float[MelBins * frames];
            for (int t = 0; t < pFrames && t < frames; t++)
                for (int c = 0; c < MelBins; c++) cond[c * frames + t] = promptFeat.Floats[t * MelBins + c];
            var x = Solve(mu, spks, cond, frames, streaming);
            int outFrames = frames - pFrames;
            var mel = new float[MelBins * outFrames];
            for (int c = 0; c < MelBins; c++) Array.Copy(x, c * frames + pFrames, mel, c * outFrames, outFrames);
            return Tensors.Floats(mel, 1, MelBins, outFrames);
        }
    }
}
