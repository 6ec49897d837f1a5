// Time-sliced graph execution for a game loop (docs/unity_speaker.md "Frame budget").
// The host loops (Synthesizer, LlmGenerator, EulerCfg) stay the synchronous code that is bit-identical to the Python
// spec; they run on a synthesis thread against SlicedRunner, whose Run() hands each graph call to the main thread and
// waits. The main thread advances the calls in Pump(budgetMs): one slice of a graph at a time (for Sentis one layer,
// Worker.ScheduleIterable), until the budget is spent. Graph backends (Sentis) are only ever touched by the thread
// that calls Pump. Outputs named in keepOnDevice (the KV cache) stay on the backend's device between calls.
// Unity-independent on purpose: the same code runs in Unity and under mono (tests/csharp/cs/SpeakerTests.cs).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading;
using CosyVoice3.Core;
using CosyVoice3.Host;

namespace CosyVoice3.Speech
{
    /// <summary>Runs graphs in slices on the thread that calls Pump (a Sentis worker on Unity's main thread).</summary>
    public interface IGraphBackend : IDisposable
    {
        /// <summary>
        /// Sets up one call. An input may be a device array this backend returned earlier (NpyArray.Device != null).
        /// Outputs named in <paramref name="keepOnDevice"/> come back as device arrays (shape only, data on the device).
        /// </summary>
        IGraphCall Begin(string graph, Dictionary<string, NpyArray> inputs, ICollection<string> keepOnDevice);

        /// <summary>Frees a device array once nothing will pass it to a graph again.</summary>
        void Release(NpyArray deviceArray);
    }

    /// <summary>One graph call in progress.</summary>
    public interface IGraphCall : IDisposable
    {
        /// <summary>Does one slice of the call (one layer); true once the whole graph has been scheduled.</summary>
        bool Step();

        /// <summary>After Step() returned true: the outputs by manifest name (host arrays, or device arrays for kept outputs).</summary>
        Dictionary<string, NpyArray> Outputs();
    }

    /// <summary>What the main thread spent: each Pump() call is one slice.</summary>
    public sealed class SliceStats
    {
        public int Slices, Steps, Calls;
        /// <summary>Longest slice; longest single unit of work (set-up, layer or output fetch); all slices together.</summary>
        public double MaxSliceMs, MaxUnitMs, TotalMs;
        /// <summary>Which unit was the longest ("graph/begin", "graph/step", "graph/outputs").</summary>
        public string MaxUnit = "";
        /// <summary>Slices during which the garbage collector ran (it stops every thread, this one included), and the
        /// longest slice without a collection.</summary>
        public int SlicesWithGc;
        public double MaxSliceMsWithoutGc;
        public double MeanSliceMs { get { return Slices == 0 ? 0 : TotalMs / Slices; } }

        public override string ToString()
        {
            return string.Format(System.Globalization.CultureInfo.InvariantCulture,
                "{0} graph calls, {1} steps in {2} slices; longest slice {3:F2} ms ({4:F2} ms without a GC; {5} slices with a GC), mean {6:F2} ms, longest unit {7:F2} ms ({8}), {9:F0} ms in all",
                Calls, Steps, Slices, MaxSliceMs, MaxSliceMsWithoutGc, SlicesWithGc, MeanSliceMs, MaxUnitMs, MaxUnit, TotalMs);
        }
    }

    /// <summary>
    /// The IGraphRunner the synthesis thread uses. Run() blocks that thread until Pump() on the main thread has
    /// finished the call. Cancel() makes the waiting Run() (and every later one) throw OperationCanceledException.
    /// </summary>
    public sealed class SlicedRunner : IGraphRunner
    {
        /// <summary>How long Pump waits for the synthesis thread's next call before giving the frame back (ms).</summary>
        public double WaitForNextCallMs = 1.0;

        readonly IGraphBackend backend;
        readonly Dictionary<string, HashSet<string>> keep = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        readonly object gate = new object();
        readonly HashSet<NpyArray> live = new HashSet<NpyArray>();   // device arrays handed out, not yet consumed
        readonly Stopwatch clock = new Stopwatch();
        readonly Dictionary<string, double> costs = new Dictionary<string, double>(StringComparer.Ordinal);   // unit -> ms lately
        Request pending, current;
        bool canceled;

        public readonly SliceStats Stats = new SliceStats();

        sealed class Request
        {
            public string Graph;
            public Dictionary<string, NpyArray> Inputs;
            public IGraphCall Call;
            public Dictionary<string, NpyArray> Outputs;
            public Exception Error;
            public bool Scheduled, Done;
        }

        /// <param name="keepOnDevice">graph -> outputs that are only ever passed back as the next call's inputs
        /// (llm_step's present_key/present_value); each such array is consumed by the one call it is passed to.</param>
        public SlicedRunner(IGraphBackend backend, IDictionary<string, string[]> keepOnDevice = null)
        {
            if (backend == null) throw new ArgumentNullException("backend");
            this.backend = backend;
            if (keepOnDevice != null)
                foreach (var kv in keepOnDevice) keep[kv.Key] = new HashSet<string>(kv.Value, StringComparer.Ordinal);
        }

        /// <summary>True while a call waits for the main thread (or is being advanced by it).</summary>
        public bool Busy { get { lock (gate) return pending != null || current != null; } }

        // ------------------------------------------------------------------------------------ synthesis thread

        public Dictionary<string, NpyArray> Run(string graph, Dictionary<string, NpyArray> inputs)
        {
            var r = new Request { Graph = graph, Inputs = inputs };
            lock (gate)
            {
                if (canceled) throw new OperationCanceledException("speech canceled");
                if (pending != null || current != null)
                    throw new InvalidOperationException("SlicedRunner serves one synthesis thread at a time");
                pending = r;
                Monitor.PulseAll(gate);
                while (!r.Done && !canceled) Monitor.Wait(gate);
                if (!r.Done) throw new OperationCanceledException("speech canceled");
            }
            if (r.Error != null) ExceptionDispatchInfo.Capture(r.Error).Throw();
            return r.Outputs;
        }

        /// <summary>Any thread: the waiting call and every later one fail with OperationCanceledException; the main
        /// thread drops the call in progress at its next Pump().</summary>
        public void Cancel()
        {
            lock (gate)
            {
                canceled = true;
                Monitor.PulseAll(gate);
            }
        }

        /// <summary>Ready for the next utterance (after the synthesis thread of the canceled one has ended).</summary>
        public void Reset()
        {
            lock (gate)
            {
                DropCurrent();
                canceled = false;
            }
        }

        // ----------------------------------------------------------------------------------------- main thread

        /// <summary>
        /// Main thread: advance graph calls for at most about <paramref name="budgetMs"/>. Work comes in units (set up
        /// a call, one layer, fetch the outputs); a unit starts only if its expected cost (what the same unit of the same
        /// graph cost lately) still fits the budget, and the first unit of a slice always runs, so a slice exceeds the
        /// budget only by the misestimate of one unit. Returns true when a call is still pending.
        /// </summary>
        public bool Pump(double budgetMs)
        {
            clock.Restart();
            int gcBefore = GC.CollectionCount(0);
            bool worked = false;
            try
            {
                while (true)
                {
                    Request r;
                    lock (gate)
                    {
                        if (canceled) { DropCurrent(); return false; }
                        if (current == null && pending == null)
                        {
                            double left = Math.Min(WaitForNextCallMs, budgetMs - clock.Elapsed.TotalMilliseconds);
                            if (left > 0) Monitor.Wait(gate, TimeSpan.FromMilliseconds(left));
                            if (canceled) { DropCurrent(); return false; }
                        }
                        if (current == null && pending != null) { current = pending; pending = null; }
                        r = current;
                    }
                    if (r == null) return false;
                    string unit = UnitOf(r);
                    double expected;
                    costs.TryGetValue(unit, out expected);
                    double start = clock.Elapsed.TotalMilliseconds;
                    if (worked && start + expected > budgetMs) return true;
                    worked = true;
                    bool finished = Advance(r);
                    double took = clock.Elapsed.TotalMilliseconds - start;
                    costs[unit] = Math.Max(took, 0.75 * expected);   // quick to rise, slow to forget a costly unit
                    if (took > Stats.MaxUnitMs) { Stats.MaxUnitMs = took; Stats.MaxUnit = unit; }
                    if (finished)
                    {
                        lock (gate)
                        {
                            current = null;
                            r.Done = true;
                            Monitor.PulseAll(gate);
                        }
                    }
                    if (clock.Elapsed.TotalMilliseconds >= budgetMs) return true;
                }
            }
            finally
            {
                if (worked)
                {
                    double ms = clock.Elapsed.TotalMilliseconds;
                    Stats.Slices++;
                    Stats.TotalMs += ms;
                    if (ms > Stats.MaxSliceMs) Stats.MaxSliceMs = ms;
                    if (GC.CollectionCount(0) != gcBefore) Stats.SlicesWithGc++;
                    else if (ms > Stats.MaxSliceMsWithoutGc) Stats.MaxSliceMsWithoutGc = ms;
                }
            }
        }

        static string UnitOf(Request r)
        {
            return r.Graph + (r.Call == null ? "/begin" : r.Scheduled ? "/outputs" : "/step");
        }

        /// <summary>One unit of <paramref name="r"/>; true when the call is finished (outputs or error set).</summary>
        bool Advance(Request r)
        {
            try
            {
                if (r.Call == null)
                {
                    HashSet<string> k;
                    keep.TryGetValue(r.Graph, out k);
                    r.Call = backend.Begin(r.Graph, r.Inputs, k ?? (ICollection<string>)new string[0]);
                    Stats.Calls++;
                    return false;
                }
                if (!r.Scheduled)
                {
                    Stats.Steps++;
                    r.Scheduled = r.Call.Step();
                    return false;
                }
                r.Outputs = r.Call.Outputs();
                foreach (var a in r.Outputs.Values)
                    if (a != null && a.Device != null) live.Add(a);
                foreach (var a in r.Inputs.Values)
                    if (a != null && a.Device != null && live.Remove(a)) backend.Release(a);   // consumed
                r.Call.Dispose();
                r.Call = null;
                return true;
            }
            catch (Exception e)
            {
                r.Error = e;
                if (r.Call != null) { try { r.Call.Dispose(); } catch (Exception) { } r.Call = null; }
                return true;
            }
        }

        void DropCurrent()
        {
            if (current != null && current.Call != null) current.Call.Dispose();
            current = null;
            pending = null;
        }

        /// <summary>Main thread, between utterances or at disposal: frees every device array still alive.</summary>
        public void ReleaseDeviceArrays()
        {
            foreach (var a in live) backend.Release(a);
            live.Clear();
        }

        public int LiveDeviceArrays { get { return live.Count; } }
    }
}
