// Mono tests of the speaker core (Runtime/Speech: SlicedRunner, AudioStream, PlaybackGate, SpeechJob, SpeakerCore)
// with a fake graph backend that replays the Python side's recorded tts.speak graph calls ($COSY_VOICE_VECTORS,
// tests/csharp/voice_vectors.py) in slices that cost real main-thread time. Each utterance must give Python's samples
// bit for bit, read back through the streaming buffer in audio-callback-sized blocks, with no unit of work started
// in a main-thread slice unless its expected cost still fitted the budget (VoiceSpeakerTests.AssertSlices), the KV
// cache never downloaded, and errors and cancel ending on the job. Results go to $COSY_VOICE_RESULTS as kind "speaker" (tests/csharp/test_voice.py
// checks them again).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Threading;
using CosyVoice3.Core;
using CosyVoice3.Host;
using CosyVoice3.Speech;
using NUnit.Framework;

namespace CosyVoice3.Tests
{
    /// <summary>
    /// Replays recorded graph calls like VoiceReplayRunner (inputs bit-equal to Python's), as an IGraphBackend: each
    /// call takes <see cref="Layers"/> steps of <see cref="StepMs"/> of busy main-thread work, kept outputs stay
    /// "on the device" (the arrays are held here, never handed out), and uploads/downloads are counted.
    /// </summary>
    sealed class ReplayBackend : IGraphBackend
    {
        static readonly string LlmStep = Constants.String(Constants.Node(VoiceVectors.TheBundle.Component("llm").Constants, "graphs"), "step");
        readonly List<JsonValue> calls = new List<JsonValue>();
        public int Next;
        public double StepMs = 0.5;
        public int Layers = 6;
        public int HostInputs, DeviceInputs, HostOutputs, DeviceOutputs, Released, StepCalls, HostCacheInputs;
        public bool Disposed;
        public string FailGraph;   // Begin of this graph throws (a graph missing from the assets)
        public readonly HashSet<string> MainThreadOnly = new HashSet<string>();
        public int MainThreadId = -1;

        // The slice checker's evidence (VoiceSpeakerTests.AssertSlices). Each unit of work (Begin, Step, Outputs: one
        // per SlicedRunner unit, keyed as the runner keys its cost estimates, "graph/begin|step|outputs") is timed here
        // from entry to exit and attributed to the frame the test opened with NewFrame() before SpeakerCore.Update (one
        // Pump per Update: one slice per frame; Play does this). For every unit but a frame's first: the time of the
        // frame's earlier units plus what the same unit took the last time it ran, a lower bound of the runner's own
        // start + expected cost for it, which the runner only lets start if it is within the budget.
        readonly Dictionary<string, double> lastUnitMs = new Dictionary<string, double>(StringComparer.Ordinal);
        int frameUnits;
        double frameBusyMs;
        public int FramesWithUnits, MaxUnitsInFrame;
        public double MaxAdmittedEndMs;

        public void NewFrame()
        {
            if (frameUnits > 0)
            {
                FramesWithUnits++;
                MaxUnitsInFrame = Math.Max(MaxUnitsInFrame, frameUnits);
            }
            frameUnits = 0;
            frameBusyMs = 0;
        }

        long UnitStart(string unit)
        {
            if (frameUnits > 0)
            {
                double last;
                lastUnitMs.TryGetValue(unit, out last);
                MaxAdmittedEndMs = Math.Max(MaxAdmittedEndMs, frameBusyMs + last);
            }
            return Stopwatch.GetTimestamp();
        }

        void UnitDone(string unit, long startTimestamp)
        {
            double ms = (Stopwatch.GetTimestamp() - startTimestamp) * 1000.0 / Stopwatch.Frequency;
            frameUnits++;
            frameBusyMs += ms;
            lastUnitMs[unit] = ms;
        }

        /// <summary>Replay these recordings from the start (after a cancel, the next utterance's).</summary>
        public void Replace(string callsFile)
        {
            calls.Clear();
            Next = 0;
            Add(callsFile);
        }

        public void Add(string callsFile)
        {
            var added = Json.Parse(File.ReadAllText(Path.Combine(VoiceVectors.Dir, callsFile)), callsFile).Items;
            // read every recorded array now: the main-thread slices time the runner, not this fixture's file reads
            foreach (var c in added)
                foreach (var side in new[] { "inputs", "outputs" })
                    foreach (var kv in c.Get(side).Members) VoiceVectors.Array(kv.Value.StringValue);
            calls.AddRange(added);
        }

        public int Count { get { return calls.Count; } }

        sealed class Call : IGraphCall
        {
            public ReplayBackend B;
            public string Graph;
            public Dictionary<string, NpyArray> Inputs;
            public ICollection<string> Keep;
            public string StepUnit, OutputsUnit;
            public int Done;

            public bool Step()
            {
                long t0 = B.UnitStart(StepUnit);
                try
                {
                    B.CheckThread();
                    var sw = Stopwatch.StartNew();
                    while (sw.Elapsed.TotalMilliseconds < B.StepMs) { }
                    return ++Done >= B.Layers;
                }
                finally { B.UnitDone(StepUnit, t0); }
            }

            public Dictionary<string, NpyArray> Outputs()
            {
                long t0 = B.UnitStart(OutputsUnit);
                try
                {
                    B.CheckThread();
                    return B.Replay(Graph, Inputs, Keep);
                }
                finally { B.UnitDone(OutputsUnit, t0); }
            }

            public void Dispose() { }
        }

        void CheckThread()
        {
            if (MainThreadId >= 0 && Thread.CurrentThread.ManagedThreadId != MainThreadId)
                throw new AssertionException("a graph was advanced off the main thread");
        }

        public IGraphCall Begin(string graph, Dictionary<string, NpyArray> inputs, ICollection<string> keepOnDevice)
        {
            string unit = graph + "/begin";
            long t0 = UnitStart(unit);
            try { return BeginCall(graph, inputs, keepOnDevice); }
            finally { UnitDone(unit, t0); }
        }

        IGraphCall BeginCall(string graph, Dictionary<string, NpyArray> inputs, ICollection<string> keepOnDevice)
        {
            CheckThread();
            if (graph == FailGraph) throw new BundleException("fake bundle", "no ModelAsset for graph \"" + graph + "\"", graph + ".onnx", "nothing");
            var resolved = new Dictionary<string, NpyArray>();
            if (graph == LlmStep) StepCalls++;
            foreach (var kv in inputs)
            {
                if (kv.Key.StartsWith("past_", StringComparison.Ordinal) && kv.Value.Device == null) HostCacheInputs++;
                if (kv.Value.Device != null) { DeviceInputs++; resolved[kv.Key] = (NpyArray)kv.Value.Device; }
                else { HostInputs++; resolved[kv.Key] = kv.Value; }
            }
            return new Call { B = this, Graph = graph, Inputs = resolved, Keep = keepOnDevice,
                              StepUnit = graph + "/step", OutputsUnit = graph + "/outputs" };
        }

        Dictionary<string, NpyArray> Replay(string graph, Dictionary<string, NpyArray> inputs, ICollection<string> keep)
        {
            string where = "call " + Next + " (" + graph + ")";
            if (Next >= calls.Count) throw new AssertionException(where + ": Python made only " + calls.Count + " calls");
            var c = calls[Next];
            Assert.AreEqual(c.Get("graph").StringValue, graph, where + ": graph differs from Python's call");
            foreach (var kv in c.Get("inputs").Members)
            {
                NpyArray got;
                Assert.IsTrue(inputs.TryGetValue(kv.Key, out got), where + ": missing input " + kv.Key);
                // compared bit for bit in VerifyInputs(), off the main-thread clock (a copy: cheap, and safe if the
                // host reused the array); the slices then time the runner, not this fixture's comparisons
                var copy = got.IsInt ? NpyArray.FromInts((int[])got.Shape.Clone(), (int[])got.Ints.Clone())
                                     : NpyArray.FromFloats((int[])got.Shape.Clone(), (float[])got.Floats.Clone());
                pendingChecks.Add(new KeyValuePair<string, NpyArray[]>(where + " input " + kv.Key,
                    new[] { VoiceVectors.Array(kv.Value.StringValue), copy }));
            }
            var outs = new Dictionary<string, NpyArray>();
            foreach (var kv in c.Get("outputs").Members)
            {
                var a = VoiceVectors.Array(kv.Value.StringValue);
                var copy = a.IsInt ? NpyArray.FromInts((int[])a.Shape.Clone(), (int[])a.Ints.Clone())
                                   : NpyArray.FromFloats((int[])a.Shape.Clone(), (float[])a.Floats.Clone());
                if (keep.Contains(kv.Key))
                {
                    DeviceOutputs++;
                    outs[kv.Key] = new NpyArray { DType = copy.DType, Shape = (int[])copy.Shape.Clone(), Device = copy };
                }
                else
                {
                    HostOutputs++;
                    outs[kv.Key] = copy;
                }
            }
            Next++;
            return outs;
        }

        public void Release(NpyArray deviceArray)
        {
            CheckThread();
            Assert.IsNotNull(deviceArray.Device, "Release of a host array");
            Released++;
        }

        readonly List<KeyValuePair<string, NpyArray[]>> pendingChecks = new List<KeyValuePair<string, NpyArray[]>>();

        /// <summary>Every graph input so far equals Python's recording bit for bit (then forgets them).</summary>
        public void VerifyInputs()
        {
            var checks = pendingChecks.ToArray();
            pendingChecks.Clear();
            foreach (var c in checks) HostVectors.AssertBitEqual(c.Value[0], c.Value[1], c.Key);
        }

        public void Dispose()
        {
            Disposed = true;
            VerifyInputs();
        }
    }

    public class VoiceSpeakerTests
    {
        /// <summary>The AudioStream unit tests need no bundle: any rate will do (the speaker passes the synthesizer's).</summary>
        const int StreamRate = 24000;

        const double Budget = 8.0;   // CosyVoiceSpeaker's default frame budget (ms)
        const int AudioBlock = 1024; // samples per PCM reader callback

        static JsonValue Run(string name)
        {
            foreach (var v in VoiceVectors.Index.Get("speak").Items) if (v.Get("name").StringValue == name) return v;
            throw new AssertionException("no recorded speak run " + name);
        }

        static SynthesisOptions OptionsOf(JsonValue v)
        {
            var s = v.Get("settings");
            return new SynthesisOptions
            {
                Sampling = s.Get("sampling").StringValue == "ras" ? Sampling.Ras : Sampling.Greedy,
                Seed = ulong.Parse(s.Get("seed").StringValue, CultureInfo.InvariantCulture), Stream = s.Get("stream").BoolValue,
                UpstreamQuirks = s.Get("upstream_quirks").BoolValue,
            };
        }

        static SynthesisMode ModeOf(JsonValue v) { return VoiceVectors.ModeOf(v.Get("mode").StringValue); }
        static string Instruction(JsonValue v) { var i = v.Get("instruction"); return i == null || i.Kind != JsonKind.String ? null : i.StringValue; }

        /// <summary>
        /// The scheduler's decision invariant, which holds however loaded the machine is: after a slice's first unit of
        /// work (a set-up, a layer or an output fetch), a unit starts only if the time the slice has spent plus the
        /// unit's expected cost fits the budget, the expected cost being at least what that unit of that graph took
        /// the last time (the estimate rises at once). So only a slice's last unit can cross the budget, and then only
        /// by its misestimate. Checked from the backend's own timing of each unit (ReplayBackend.UnitStart): the
        /// frame's earlier units ran inside the runner's clock span, each inside its runner-timed interval, and the
        /// runner's estimate is at least the backend-timed last cost, so "earlier units + last cost <= budget" (+1 us
        /// for clock granularity) follows from the rule whatever preemption or GC pauses do. They only lengthen the
        /// runner's clock, never this sum beyond it, so no wall-clock slack is involved. (The earlier check "longest
        /// slice without a GC <= budget + longest unit + 1 ms" was not: time between units, in Pump's bookkeeping or in
        /// its short wait for the next call, is in no unit, and a preempted main thread made it 30.15 ms against 29.81.)
        /// The wall-clock figure on a quiet machine (longest slice <= budget + 2 ms) is a benchmark's, not this unit
        /// test's: benchmarks/bench_speaker_slices.py.
        /// </summary>
        static void AssertSlices(SliceStats stats, ReplayBackend backend, string name)
        {
            backend.NewFrame();   // close the last frame
            Assert.AreEqual(stats.Slices, backend.FramesWithUnits, name + ": one slice per frame with work (" + stats + ")");
            Assert.LessOrEqual(backend.MaxAdmittedEndMs, Budget + 1e-3, name + ": a unit started whose last cost no longer fitted the slice's budget (" + stats + ")");
            Assert.Greater(stats.Slices, 1, name + ": the work was spread over several frames (" + stats + ")");
        }

        /// <summary>Drives a job to its end like Unity would: Update(budget) per frame, the audio callback reading
        /// fixed blocks from the stream. Returns every sample the "audio thread" read (the last block's padding cut).</summary>
        static float[] Play(SpeakerCore core, SpeechJob job, ReplayBackend backend, int maxFrames = 200000)
        {
            var heard = new List<float>();
            var block = new float[AudioBlock];
            for (int frame = 0; frame < maxFrames; frame++)
            {
                backend.NewFrame();
                core.Update(Budget);
                while (job.Audio.Buffered >= AudioBlock || (job.Audio.IsComplete && job.Audio.Buffered > 0))
                {
                    int n = job.Audio.Read(block, 0, AudioBlock);
                    for (int i = 0; i < n; i++) heard.Add(block[i]);
                }
                if (job.IsDone && core.IsIdle && job.Audio.IsDrained) return heard.ToArray();
            }
            throw new AssertionException("the utterance did not end within " + maxFrames + " frames (state " + job.State + ")");
        }

        static ReplayBackend Backend(params string[] runs)
        {
            var b = new ReplayBackend { MainThreadId = Thread.CurrentThread.ManagedThreadId };
            foreach (var r in runs) b.Add(Run(r).Get("calls").StringValue);
            return b;
        }

        [Test]
        public void StreamingUtteranceIsPythonsStreamSampleExact()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            foreach (var name in new[] { "speak_cross_lingual_greedy_stream", "speak_zero_shot_greedy", "speak_instruct_two_pieces_ras" })
            {
                var v = Run(name);
                var backend = Backend(name);
                var core = new SpeakerCore(VoiceVectors.TheBundle, backend);
                var chunks = new List<int>();
                var options = OptionsOf(v);
                options.OnAudio = a => chunks.Add(a.Length);
                var job = core.Speak(v.Get("text").StringValue, VoiceVectors.TheVoice, options, ModeOf(v), Instruction(v));
                Assert.IsNull(job.Error, name + ": " + job.Error);
                float[] heard = Play(core, job, backend);
                backend.VerifyInputs();
                var stats = core.Runner.Stats;
                Assert.AreEqual(SpeechState.Done, job.State, name + ": " + job.Error);
                Assert.AreEqual(backend.Count, backend.Next, name + ": every recorded graph call was made");
                HostVectors.AssertBitEqual(VoiceVectors.Array(v.Get("speech").StringValue), Tensors.Floats(heard, 1, heard.Length), name + ": samples heard");
                Assert.AreEqual(HostVectors.IntsJson(HostVectors.Ints(v.Get("chunks"))), HostVectors.IntsJson(chunks), name + ": chunk sizes");
                Assert.AreEqual(backend.DeviceOutputs, backend.Released, name + ": every device array freed");
                Assert.AreEqual(0, core.Runner.LiveDeviceArrays, name + ": device arrays left");
                Assert.AreEqual(1f, job.Progress, name + ": progress at the end");
                AssertSlices(stats, backend, name);
                VoiceVectors.Write("speaker", name, "ok", "true", "samples", heard.Length.ToString(CultureInfo.InvariantCulture),
                                   "chunks", HostVectors.IntsJson(chunks), "calls", backend.Next.ToString(CultureInfo.InvariantCulture),
                                   "max_slice_ms", stats.MaxSliceMs.ToString("R", CultureInfo.InvariantCulture),
                                   "max_slice_ms_without_gc", stats.MaxSliceMsWithoutGc.ToString("R", CultureInfo.InvariantCulture),
                                   "slices_with_gc", stats.SlicesWithGc.ToString(CultureInfo.InvariantCulture),
                                   "max_unit_ms", stats.MaxUnitMs.ToString("R", CultureInfo.InvariantCulture),
                                   "max_admitted_end_ms", backend.MaxAdmittedEndMs.ToString("R", CultureInfo.InvariantCulture),
                                   "max_units_in_slice", backend.MaxUnitsInFrame.ToString(CultureInfo.InvariantCulture),
                                   "mean_slice_ms", stats.MeanSliceMs.ToString("R", CultureInfo.InvariantCulture),
                                   "slices", stats.Slices.ToString(CultureInfo.InvariantCulture),
                                   "first_audio_ms", job.FirstAudioMs.ToString("R", CultureInfo.InvariantCulture),
                                   "device_inputs", backend.DeviceInputs.ToString(CultureInfo.InvariantCulture),
                                   "device_outputs", backend.DeviceOutputs.ToString(CultureInfo.InvariantCulture),
                                   "budget_ms", Budget.ToString("R", CultureInfo.InvariantCulture),
                                   "step_ms", backend.StepMs.ToString("R", CultureInfo.InvariantCulture));
                core.Dispose();
                Assert.IsTrue(backend.Disposed, name + ": backend disposed");
            }
        }

        [Test]
        public void SpeakGoldenIsWhatTheSpeakerSays()
        {
            // the EditMode SpeakerGoldenTests path (SpeakGolden + SpeakerCore), with the replaying backend for Sentis
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var sg = VoiceVectors.Index.Get("speak_golden");
            string dir = Path.Combine(VoiceVectors.Dir, sg.Get("dir").StringValue);
            CollectionAssert.AreEqual(new[] { sg.Get("name").StringValue }, SpeakGolden.Names(dir));
            var golden = SpeakGolden.Load(dir, sg.Get("name").StringValue);
            var voice = VoicePack.Load(golden.VoicePath);
            var backend = new ReplayBackend { MainThreadId = Thread.CurrentThread.ManagedThreadId };
            backend.Add(sg.Get("calls").StringValue);
            var core = new SpeakerCore(VoiceVectors.TheBundle, backend);
            var chunks = new List<int>();
            var options = golden.Settings;
            options.OnAudio = a => chunks.Add(a.Length);
            var job = core.Speak(golden.Text, voice, options, golden.Mode);
            float[] heard = Play(core, job, backend);
            backend.VerifyInputs();
            Assert.AreEqual(SpeechState.Done, job.State, "" + job.Error);
            Assert.AreEqual(backend.Count, backend.Next, "every recorded graph call was made");
            foreach (var v in golden.Check(VoiceVectors.TheBundle, heard, job.Result)) Assert.IsTrue(v.Passed, v.Output + ": " + v.Summary());
            HostVectors.AssertBitEqual(golden.Speech, Tensors.Floats(heard, 1, heard.Length), "speak golden samples");
            Assert.AreEqual(HostVectors.IntsJson(golden.Chunks), HostVectors.IntsJson(chunks), "chunk sizes");
            CollectionAssert.AreEqual(golden.Pieces, job.Result.Pieces, "text pieces");
            var stats = core.Runner.Stats;
            AssertSlices(stats, backend, "speak golden");
            VoiceVectors.Write("speaker", "speak_golden", "ok", "true", "samples", heard.Length.ToString(CultureInfo.InvariantCulture),
                               "chunks", HostVectors.IntsJson(chunks),
                               "max_slice_ms", stats.MaxSliceMs.ToString("R", CultureInfo.InvariantCulture),
                               "max_slice_ms_without_gc", stats.MaxSliceMsWithoutGc.ToString("R", CultureInfo.InvariantCulture),
                               "slices_with_gc", stats.SlicesWithGc.ToString(CultureInfo.InvariantCulture),
                               "max_unit_ms", stats.MaxUnitMs.ToString("R", CultureInfo.InvariantCulture),
                               "max_admitted_end_ms", backend.MaxAdmittedEndMs.ToString("R", CultureInfo.InvariantCulture),
                               "max_units_in_slice", backend.MaxUnitsInFrame.ToString(CultureInfo.InvariantCulture),
                               "slices", stats.Slices.ToString(CultureInfo.InvariantCulture),
                               "budget_ms", Budget.ToString("R", CultureInfo.InvariantCulture),
                               "first_audio_ms", job.FirstAudioMs.ToString("R", CultureInfo.InvariantCulture));
            core.Dispose();

            // a changed array is refused, naming the file
            string copy = Path.Combine(Path.GetTempPath(), "cosy-speak-golden-" + Guid.NewGuid().ToString("N"));
            try
            {
                string src = Path.Combine(dir, SpeakGolden.GoldenDir.Replace('/', Path.DirectorySeparatorChar), golden.Name);
                string dst = Path.Combine(copy, SpeakGolden.GoldenDir.Replace('/', Path.DirectorySeparatorChar), golden.Name);
                Directory.CreateDirectory(dst);
                foreach (var f in Directory.GetFiles(src)) File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
                var bytes = File.ReadAllBytes(Path.Combine(dst, "speech.npy"));
                bytes[bytes.Length - 1] ^= 1;
                File.WriteAllBytes(Path.Combine(dst, "speech.npy"), bytes);
                try { SpeakGolden.Load(copy, golden.Name); Assert.Fail("a changed speech.npy was accepted"); }
                catch (BundleException e) { Assert.IsTrue(e.Message.Contains("speech.npy") && e.Message.Contains("sha256"), e.Message); }
                try { SpeakGolden.Load(copy, "../x"); Assert.Fail("a path as a name was accepted"); }
                catch (BundleException e) { Assert.IsTrue(e.Message.Contains("plain"), e.Message); }
            }
            finally { if (Directory.Exists(copy)) Directory.Delete(copy, true); }
        }

        [Test]
        public void KvCacheStaysOnTheDevice()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var v = Run("speak_zero_shot_greedy");
            var backend = Backend("speak_zero_shot_greedy");
            var core = new SpeakerCore(VoiceVectors.TheBundle, backend);
            var job = core.Speak(v.Get("text").StringValue, VoiceVectors.TheVoice, OptionsOf(v), ModeOf(v));
            Play(core, job, backend);
            int steps = backend.StepCalls, prefills = job.Result.Results.Count;
            Assert.Greater(steps, 2);
            // only each prefill uploads a (empty) cache; every later llm_step takes the previous step's from the device
            Assert.AreEqual(2 * prefills, backend.HostCacheInputs, "cache uploads");
            Assert.AreEqual(2 * (steps - prefills), backend.DeviceInputs, "cache inputs from the device");
            Assert.AreEqual(2 * steps, backend.DeviceOutputs, "cache outputs kept on the device, never downloaded");
            core.Dispose();
        }

        [Test]
        public void CancelMidUtteranceThenSpeakAgain()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var first = Run("speak_instruct_two_pieces_ras");
            var again = Run("speak_zero_shot_greedy");
            var backend = Backend("speak_instruct_two_pieces_ras");
            var core = new SpeakerCore(VoiceVectors.TheBundle, backend);
            var job = core.Speak(first.Get("text").StringValue, VoiceVectors.TheVoice, OptionsOf(first), ModeOf(first), Instruction(first));
            int frames = 0;
            while (backend.Next < backend.Count / 3 && frames++ < 100000) core.Update(Budget);
            Assert.Greater(job.Progress, 0f, "progress while speaking");
            Assert.Less(job.Progress, 1f, "not done yet");
            int callsAtCancel = backend.Next;
            job.Cancel();
            job.Join(5000);
            for (int i = 0; i < 3; i++) core.Update(Budget);
            Assert.AreEqual(SpeechState.Canceled, job.State);
            Assert.IsNull(job.Error, "a cancel is not an error");
            Assert.IsTrue(job.IsDone && job.Audio.IsComplete, "done, audio stream closed");
            Assert.LessOrEqual(backend.Next, callsAtCancel + 1, "at most the call in flight finished after Cancel");
            Assert.AreEqual(0, core.Runner.LiveDeviceArrays, "the canceled utterance's cache is freed");
            Assert.IsTrue(core.IsIdle);
            // the same core speaks the next utterance correctly
            backend.Replace(again.Get("calls").StringValue);
            var job2 = core.Speak(again.Get("text").StringValue, VoiceVectors.TheVoice, OptionsOf(again), ModeOf(again));
            float[] heard = Play(core, job2, backend);
            Assert.AreEqual(SpeechState.Done, job2.State, "" + job2.Error);
            HostVectors.AssertBitEqual(VoiceVectors.Array(again.Get("speech").StringValue), Tensors.Floats(heard, 1, heard.Length), "speech after a cancel");
            VoiceVectors.Write("speaker", "cancel_then_speak", "ok", "true", "calls_at_cancel", callsAtCancel.ToString(CultureInfo.InvariantCulture),
                               "calls_after", (backend.Next).ToString(CultureInfo.InvariantCulture));
            core.Dispose();
        }

        [Test]
        public void ErrorsEndOnTheJobAndTheSpeakerStaysUsable()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var v = Run("speak_zero_shot_greedy");
            var backend = Backend("speak_zero_shot_greedy");
            var core = new SpeakerCore(VoiceVectors.TheBundle, backend);
            var failed = new List<string>();
            core.OnFailed = j => failed.Add(j.Error.Message);

            var punct = core.Speak("?!...", VoiceVectors.TheVoice, OptionsOf(v));
            Assert.AreEqual(SpeechState.Failed, punct.State);
            Assert.IsTrue(punct.Error is HostInputException && punct.Error.Message.Contains("nothing to speak"), punct.Error.Message);
            var empty = core.Speak("   ", VoiceVectors.TheVoice, OptionsOf(v));
            Assert.IsTrue(empty.Error.Message.Contains("empty text"), empty.Error.Message);
            var none = core.Speak("Hello.", null, OptionsOf(v));
            Assert.IsTrue(none.Error.Message.Contains("voice"), none.Error.Message);
            string otherPath = null;
            foreach (var p in VoiceVectors.Index.Get("packs").Items) if (p.Get("name").StringValue == "other_model_id") otherPath = p.Get("path").StringValue;
            var other = core.Speak("Hello.", VoicePack.Load(otherPath), OptionsOf(v));
            Assert.IsTrue(other.Error is BundleException && other.Error.Message.Contains("another model"), other.Error.Message);
            Assert.AreEqual(0, backend.Next, "no graph ran for a refused utterance");
            Assert.AreEqual(4, failed.Count, "one message per failed utterance");
            foreach (var j in new[] { punct, empty, none, other })
            {
                Assert.IsTrue(j.IsDone && j.Audio.IsComplete && j.Audio.Written == 0, "nothing plays");
                Assert.AreEqual(1f, j.Progress);
            }

            backend.FailGraph = "flow_frontend";   // a graph missing from the assets: fails when first needed
            var missing = core.Speak(v.Get("text").StringValue, VoiceVectors.TheVoice, OptionsOf(v));
            for (int i = 0; i < 100000 && !(missing.IsDone && core.IsIdle); i++) core.Update(Budget);
            Assert.AreEqual(SpeechState.Failed, missing.State);
            Assert.IsTrue(missing.Error is BundleException && missing.Error.Message.Contains("flow_frontend"), missing.Error.Message);
            Assert.AreEqual(5, failed.Count);
            Assert.AreEqual(0, core.Runner.LiveDeviceArrays, "cache freed after the failure");

            backend.FailGraph = null;   // usable again
            backend.Replace(v.Get("calls").StringValue);
            var ok = core.Speak(v.Get("text").StringValue, VoiceVectors.TheVoice, OptionsOf(v));
            float[] heard = Play(core, ok, backend);
            HostVectors.AssertBitEqual(VoiceVectors.Array(v.Get("speech").StringValue), Tensors.Floats(heard, 1, heard.Length), "speech after errors");
            VoiceVectors.Write("speaker", "errors", "ok", "true", "messages", VoiceVectors.StrList(failed));
            core.Dispose();
        }

        [Test]
        public void DisposeWhileSpeakingStopsEverything()
        {
            if (string.IsNullOrEmpty(VoiceVectors.Dir)) return;
            var v = Run("speak_instruct_two_pieces_ras");
            var backend = Backend("speak_instruct_two_pieces_ras");
            var core = new SpeakerCore(VoiceVectors.TheBundle, backend);
            var job = core.Speak(v.Get("text").StringValue, VoiceVectors.TheVoice, OptionsOf(v), ModeOf(v), Instruction(v));
            var queued = core.Speak("Hello.", VoiceVectors.TheVoice, OptionsOf(v));
            for (int i = 0; i < 100000 && backend.StepCalls < 3; i++) core.Update(Budget);
            Assert.Greater(core.Runner.LiveDeviceArrays, 0, "mid-utterance: the KV cache is on the device");
            Assert.IsFalse(job.IsDone, "mid-utterance");
            core.Dispose();
            Assert.IsTrue(job.IsDone && queued.IsDone, "both ended");
            Assert.AreEqual(SpeechState.Canceled, job.State);
            Assert.AreEqual(SpeechState.Canceled, queued.State);
            Assert.IsTrue(backend.Disposed);
            Assert.AreEqual(backend.DeviceOutputs, backend.Released, "every device array freed");
            var after = core.Speak("Hello.", VoiceVectors.TheVoice, OptionsOf(v));
            Assert.IsTrue(after.Error is ObjectDisposedException, "a disposed speaker refuses on the job: " + after.Error);
        }

        [Test]
        public void AudioStreamJoinsAreSampleExact()
        {
            var s = new AudioStream(StreamRate);
            var rnd = new Random(7);
            var all = new List<float>();
            var got = new List<float>();
            var buf = new float[333];
            for (int p = 0; p < 50; p++)
            {
                var piece = new float[rnd.Next(0, 900)];
                for (int i = 0; i < piece.Length; i++) { piece[i] = (float)rnd.NextDouble(); all.Add(piece[i]); }
                s.Write(piece);
                if (p % 3 == 0)
                    while (s.Buffered >= buf.Length) { int n = s.Read(buf, 0, buf.Length); for (int i = 0; i < n; i++) got.Add(buf[i]); }
            }
            s.Complete();
            while (!s.IsDrained) { int n = s.Read(buf, 0, buf.Length); for (int i = 0; i < n; i++) got.Add(buf[i]); }
            CollectionAssert.AreEqual(all, got);
            Assert.AreEqual(0, s.UnderrunSamples);
            Assert.AreEqual(all.Count, s.ToArray().Length);
            var dry = new AudioStream(StreamRate);
            dry.Write(new float[] { 1, 2 });
            var b = new float[4];
            Assert.AreEqual(2, dry.Read(b, 0, 4));
            CollectionAssert.AreEqual(new float[] { 1, 2, 0, 0 }, b);
            Assert.AreEqual(2, dry.UnderrunSamples, "silence while synthesis lags is counted");
        }

        [Test]
        public void PlaybackWaitsForThePrebuffer()
        {
            var s = new AudioStream(StreamRate);
            var gate = new PlaybackGate(100);
            Assert.IsFalse(gate.ShouldPlay(s, false));
            s.Write(new float[60]);
            Assert.IsFalse(gate.ShouldPlay(s, false), "below the prebuffer");
            s.Write(new float[60]);
            Assert.IsTrue(gate.ShouldPlay(s, false));
            var b = new float[120];
            s.Read(b, 0, 120);
            Assert.IsFalse(gate.ShouldPlay(s, true), "dry before the end: pause");
            s.Write(new float[10]);
            Assert.IsFalse(gate.ShouldPlay(s, false), "resume only at the prebuffer");
            s.Complete();
            Assert.IsTrue(gate.ShouldPlay(s, false), "complete: play what is left");
            s.Read(b, 0, 10);
            Assert.IsFalse(gate.ShouldPlay(s, true), "drained: stop");
        }
    }
}
