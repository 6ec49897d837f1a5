// One utterance: the text pieces (built and checked up front, so bad text or a foreign voice fail at once), then
// Synthesizer.Speak on a synthesis thread against a SlicedRunner, its audio into an AudioStream. The state a
// caller polls (IsDone, Progress, Error, Canceled) is set by that thread. Unity-independent (tested under mono);
// CosyVoiceSpeaker wraps it in a SpeakHandle with AudioClips.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using CosyVoice3.Host;

namespace CosyVoice3.Speech
{
    public enum SpeechState { Queued, Running, Done, Failed, Canceled }

    public sealed class SpeechJob
    {
        readonly Synthesizer synth;
        readonly SlicedRunner runner;
        readonly List<TextCase> cases;
        readonly SynthesisOptions options;
        readonly int[] expectedTokens;
        readonly object gate = new object();
        Thread thread;
        volatile SpeechState state;
        volatile bool cancelRequested;
        int piece, tokens;
        readonly Stopwatch clock = new Stopwatch();
        double firstAudioMs = -1;

        public readonly AudioStream Audio;
        public readonly string Text;
        public Exception Error { get; private set; }
        public SpeechResult Result { get; private set; }

        /// <summary>A job that failed before it could start (bad text, foreign voice, no bundle): Done at once.</summary>
        public static SpeechJob Failed(string text, Exception error, int sampleRate)
        {
            var j = new SpeechJob(text, sampleRate);
            j.Error = error;
            j.state = SpeechState.Failed;
            j.Audio.Complete();
            return j;
        }

        SpeechJob(string text, int sampleRate)
        {
            Text = text;
            Audio = new AudioStream(sampleRate);
        }

        /// <param name="cases">Synthesizer.BuildCases of the text (its errors are the caller's to report).</param>
        public SpeechJob(Synthesizer synth, SlicedRunner runner, string text, List<TextCase> cases, SynthesisOptions options)
            : this(text, synth.SampleRate)
        {
            this.synth = synth;
            this.runner = runner;
            this.cases = cases;
            this.options = options ?? new SynthesisOptions();
            expectedTokens = new int[cases.Count];
            for (int k = 0; k < cases.Count; k++) expectedTokens[k] = synth.Llm.ExpectedTokens(cases[k].Case.Text.Length);
            state = SpeechState.Queued;
        }

        public SpeechState State { get { return state; } }
        public bool IsDone { get { var s = state; return s == SpeechState.Done || s == SpeechState.Failed || s == SpeechState.Canceled; } }
        public int Pieces { get { return cases == null ? 0 : cases.Count; } }
        /// <summary>Milliseconds from Start() to the first audio sample written; -1 before.</summary>
        public double FirstAudioMs { get { lock (gate) return firstAudioMs; } }

        /// <summary>
        /// 0..1, monotone; 1 exactly when done. Within a piece the LLM's tokens are counted against an estimate
        /// (LlmGenerator.ExpectedTokens), capped at 0.95 of the piece until the piece's audio is complete.
        /// </summary>
        public float Progress
        {
            get
            {
                if (IsDone) return 1f;
                if (cases == null || cases.Count == 0) return 0f;
                lock (gate)
                {
                    double inPiece = Math.Min(0.95, tokens / (double)Math.Max(1, expectedTokens[Math.Min(piece, expectedTokens.Length - 1)]));
                    return (float)Math.Min(1.0, (piece + inPiece) / cases.Count);
                }
            }
        }

        /// <summary>Starts the synthesis thread (once).</summary>
        public void Start()
        {
            if (state != SpeechState.Queued) return;
            state = SpeechState.Running;
            clock.Start();
            if (cancelRequested) { Finish(SpeechState.Canceled, null); return; }
            var o = new SynthesisOptions
            {
                Sampling = options.Sampling, Seed = options.Seed, Stream = options.Stream, UpstreamQuirks = options.UpstreamQuirks,
                OnAudio = samples =>
                {
                    lock (gate) if (firstAudioMs < 0) firstAudioMs = clock.Elapsed.TotalMilliseconds;
                    Audio.Write(samples);
                    if (options.OnAudio != null) options.OnAudio(samples);
                },
                OnToken = t => { lock (gate) tokens++; if (options.OnToken != null) options.OnToken(t); },
                OnPiece = k => { lock (gate) { piece = k; tokens = 0; } if (options.OnPiece != null) options.OnPiece(k); },
            };
            thread = new Thread(() => Body(o)) { IsBackground = true, Name = "CosyVoice3 synthesis" };
            thread.Start();
        }

        void Body(SynthesisOptions o)
        {
            try
            {
                var r = synth.Speak(cases, o);
                Result = r;
                Finish(cancelRequested ? SpeechState.Canceled : SpeechState.Done, null);
            }
            catch (OperationCanceledException)
            {
                Finish(SpeechState.Canceled, null);
            }
            catch (Exception e)
            {
                Finish(cancelRequested ? SpeechState.Canceled : SpeechState.Failed, cancelRequested ? null : e);
            }
        }

        void Finish(SpeechState s, Exception e)
        {
            Error = e;
            Audio.Complete();
            state = s;
        }

        /// <summary>Any thread: stop as soon as the graph call in progress is dropped; no more audio is written.</summary>
        public void Cancel()
        {
            cancelRequested = true;
            if (state == SpeechState.Queued) { Finish(SpeechState.Canceled, null); return; }
            if (runner != null && state == SpeechState.Running) runner.Cancel();
        }

        public bool CancelRequested { get { return cancelRequested; } }

        /// <summary>Blocks until the synthesis thread has ended (after Done / Failed / Canceled).</summary>
        public void Join(int timeoutMs = Timeout.Infinite)
        {
            var t = thread;
            if (t != null) t.Join(timeoutMs);
        }
    }
}
