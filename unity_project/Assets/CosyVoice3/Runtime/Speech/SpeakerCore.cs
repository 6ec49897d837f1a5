// What CosyVoiceSpeaker does, without Unity: a Synthesizer over a SlicedRunner over a graph backend, a FIFO of
// utterances (one synthesizes at a time), and Update(budgetMs) for the main thread. Every failure of an utterance
// ends on its job (Error, one message); the core stays usable for the next one. Tested under mono with a fake
// backend that replays the Python side's recorded graph outputs (tests/csharp/cs/SpeakerTests.cs).
using System;
using System.Collections.Generic;
using CosyVoice3.Core;
using CosyVoice3.Host;

namespace CosyVoice3.Speech
{
    public sealed class SpeakerCore : IDisposable
    {
        /// <summary>The llm step graph's KV cache (graph name from the llm constants "graphs"): carried from one
        /// decode step to the next on the backend's device.</summary>
        public static Dictionary<string, string[]> KeepOnDevice(Bundle bundle)
        {
            var step = Constants.String(Constants.Node(bundle.Component("llm").Constants, "graphs"), "step");
            return new Dictionary<string, string[]> { { step, LlmGenerator.CacheOutputs } };
        }

        public readonly Synthesizer Synth;
        public readonly SlicedRunner Runner;
        readonly IGraphBackend backend;
        readonly Queue<SpeechJob> queue = new Queue<SpeechJob>();
        SpeechJob running;
        bool disposed;

        /// <summary>Reported once per failed utterance (CosyVoiceSpeaker: Debug.LogError).</summary>
        public Action<SpeechJob> OnFailed;

        public SpeakerCore(Bundle bundle, IGraphBackend backend)
        {
            if (bundle == null) throw new ArgumentNullException("bundle");
            if (backend == null) throw new ArgumentNullException("backend");
            this.backend = backend;
            Runner = new SlicedRunner(backend, KeepOnDevice(bundle));
            Synth = Synthesizer.FromBundle(bundle, Runner);
        }

        public int SampleRate { get { return Synth.SampleRate; } }
        public SpeechJob Current { get { return running; } }
        public int Queued { get { return queue.Count; } }

        /// <summary>
        /// Queues <paramref name="text"/> in <paramref name="voice"/> (zero-shot, instruct with an instruction, or
        /// cross-lingual). Text, voice and instruction are checked now: a mistake gives a job that is already Failed.
        /// </summary>
        public SpeechJob Speak(string text, VoicePack voice, SynthesisOptions options,
                               SynthesisMode mode = SynthesisMode.ZeroShot, string instruction = null)
        {
            SpeechJob job;
            try
            {
                if (disposed) throw new ObjectDisposedException("CosyVoice3 speaker");
                if (voice == null) throw new HostInputException("voice", "no voice pack", "a VoicePack (or a default voice on the speaker)", "nothing");
                var cases = Synth.BuildCases(text, voice, mode, instruction);
                job = new SpeechJob(Synth, Runner, text, cases, options);
                queue.Enqueue(job);
            }
            catch (Exception e)
            {
                job = SpeechJob.Failed(text, e, Synth.SampleRate);
                Report(job);
            }
            return job;
        }

        /// <summary>Main thread, once per frame: graph work for about <paramref name="budgetMs"/>; starts the next
        /// queued utterance when the previous one has ended.</summary>
        public void Update(double budgetMs)
        {
            if (disposed) return;
            if (running != null && running.IsDone) EndRunning();
            while (running == null && queue.Count > 0)
            {
                var next = queue.Dequeue();
                if (next.IsDone) continue;   // canceled while queued
                Runner.Reset();
                running = next;
                running.Start();
            }
            if (running != null) Runner.Pump(budgetMs);
            if (running != null && running.IsDone) EndRunning();
        }

        void EndRunning()
        {
            running.Join();
            Runner.Reset();
            Runner.ReleaseDeviceArrays();
            if (running.State == SpeechState.Failed) Report(running);
            running = null;
        }

        void Report(SpeechJob job)
        {
            if (OnFailed != null) OnFailed(job);
        }

        /// <summary>Cancels the running utterance and every queued one.</summary>
        public void StopAll()
        {
            foreach (var j in queue) j.Cancel();
            queue.Clear();
            if (running != null) running.Cancel();
        }

        public bool IsIdle { get { return running == null && queue.Count == 0; } }

        /// <summary>Cancels everything, waits for the synthesis thread, frees device arrays and the backend.</summary>
        public void Dispose()
        {
            if (disposed) return;
            StopAll();
            if (running != null)
            {
                running.Join(10000);
                running = null;
            }
            Runner.Reset();
            Runner.ReleaseDeviceArrays();
            backend.Dispose();
            disposed = true;
        }
    }
}
