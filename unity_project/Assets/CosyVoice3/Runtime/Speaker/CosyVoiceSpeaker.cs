// CosyVoiceSpeaker: speaks text in a voice pack through an AudioSource while the game keeps running
// (docs/unity_speaker.md). Prepare()/PrepareAsync() load the bundle, import and quantize every graph and warm up;
// Speak() returns a SpeakHandle at once. Each frame Update() advances graph work for frameBudgetMs (one Sentis layer
// at a time, SlicedRunner); the host loops run on a synthesis thread; the audio streams into an AudioClip through its
// PCM reader callback, piece by piece as the synthesizer emits it (the Python --stream chunk trimming), and pauses
// rather than inserting silence when synthesis falls behind real time.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;
using CosyVoice3.Inference;
using CosyVoice3.Speech;
using UnityEngine;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Speaker
{
    [AddComponentMenu("CosyVoice3/CosyVoice Speaker")]
    public sealed class CosyVoiceSpeaker : MonoBehaviour
    {
        [Header("Bundle")]
        [Tooltip("The bundle folder (manifest.json, Data/): relative to StreamingAssets (or, in the Editor, to the project: Packages/<bundle package>), or absolute. Empty: the bundle `unity-install` put under Packages/ (Editor), else the first bundle folder under StreamingAssets (player).")]
        public string bundlePath = "";
        [Tooltip("The bundle's graphs as ModelAssets, each named as its manifest graph: for a player build the baked .sentis models (Tools > CosyVoice3 > Bake Models for Player Build). In the Editor, a bundle under Packages/ or Assets/ needs none: its Models/*.onnx are found by path.")]
        public ModelAsset[] graphs = new ModelAsset[0];
        string bundleFolder = "";   // bundlePath, or what FindBundle chose
        [Tooltip("The voice used when Speak gets none: a .voice folder, relative to StreamingAssets or absolute.")]
        public string defaultVoicePath = "";

        [Header("Inference")]
        [Tooltip("CPU is always allowed. GPUCompute is used only if the bundle's pipeline goldens pass on it (checked once by Prepare); otherwise CPU.")]
        public BackendType backend = BackendType.CPU;
        [Tooltip("Milliseconds of graph scheduling per frame on the main thread.")]
        [Range(1f, 50f)]
        public float frameBudgetMs = 8f;
        public Sampling sampling = Sampling.Ras;
        [Tooltip("RAS seed; piece k of a text samples with seed + k, as packager synth does.")]
        public long seed = 0;
        [Tooltip("Stream: play while the LLM generates (first audio after the first chunk). Off: play when a piece is complete.")]
        public bool streaming = true;

        [Header("Playback")]
        public AudioSource audioSource;
        [Tooltip("Seconds of audio buffered before playback starts or resumes after running dry.")]
        public float prebufferSeconds = 0.5f;
        [Tooltip("Upper bound of one utterance's streaming clip, in seconds.")]
        public float maxUtteranceSeconds = 600f;

        SpeakerCore core;
        Bundle bundle;
        VoicePack defaultVoice;
        readonly List<SpeakHandle> handles = new List<SpeakHandle>();   // in speaking order, until played
        readonly List<SpeakHandle> waiting = new List<SpeakHandle>();   // spoken before Prepare finished
        SpeakHandle playing;
        bool preparing;

        public bool IsPrepared { get { return core != null; } }
        public bool IsPreparing { get { return preparing; } }
        /// <summary>0..1 while PrepareAsync runs.</summary>
        public float PrepareProgress { get; private set; }
        public double PrepareSeconds { get; private set; }
        /// <summary>Why the last Prepare failed (null when it succeeded).</summary>
        public Exception PrepareError { get; private set; }
        /// <summary>The backend in use after Prepare (CPU when GPUCompute failed its goldens).</summary>
        public BackendType ActiveBackend { get; private set; }
        public VoicePack DefaultVoice { get { return defaultVoice; } }
        /// <summary>Main-thread time spent on graph work so far (longest slice, mean, calls).</summary>
        public SliceStats Stats { get { return core == null ? null : core.Runner.Stats; } }

        // --------------------------------------------------------------------------------------------- prepare

        /// <summary>Everything PrepareAsync does, in this frame (blocks the main thread).</summary>
        public void Prepare()
        {
            var it = PrepareSteps();
            while (it.MoveNext()) { }
        }

        /// <summary>Prepare over several frames (one graph import per frame, the warm-up in budgeted slices).</summary>
        public Coroutine PrepareAsync() { return StartCoroutine(PrepareSteps()); }

        /// <summary>
        /// An absolute path as it is; a relative one under StreamingAssets, or, when nothing is there, relative to the
        /// working folder (in the Editor the project folder, so "Packages/com.cosyvoice3.bundle.tiny" finds a bundle
        /// installed by `packager unity-install`).
        /// </summary>
        /// <summary>
        /// The bundle used when bundlePath is empty: in the Editor the first one `python -m packager unity-install`
        /// put under Packages/ (found by its manifest, whatever its package name), otherwise (a player) the first
        /// folder under StreamingAssets holding a manifest.json (where the bake step copies a bundle's manifest and
        /// Data/). "" when there is none.
        /// </summary>
        public static string FindBundle()
        {
#if UNITY_EDITOR
            var installed = Bundle.FindInstalled("Packages");
            if (installed.Count > 0) return installed[0];
#endif
            string root = Application.streamingAssetsPath;
            if (!string.IsNullOrEmpty(root) && Directory.Exists(root))
            {
                var dirs = Directory.GetDirectories(root);
                Array.Sort(dirs, StringComparer.Ordinal);
                foreach (var d in dirs)
                    if (File.Exists(Path.Combine(d, Bundle.ManifestFile))) return Path.GetFileName(d);
            }
            return "";
        }

        public static string Resolve(string path)
        {
            if (string.IsNullOrEmpty(path) || Path.IsPathRooted(path)) return path;
            string streaming = Path.Combine(Application.streamingAssetsPath, path);
            if (Directory.Exists(streaming) || File.Exists(streaming) || !(Directory.Exists(path) || File.Exists(path))) return streaming;
            return Path.GetFullPath(path);
        }

        IEnumerator PrepareSteps()
        {
            if (preparing || core != null) yield break;
            preparing = true;
            PrepareError = null;
            PrepareProgress = 0f;
            var clock = Stopwatch.StartNew();
            SentisGraphBackend sentis = null;
            SpeakerCore made = null;
            IEnumerator warm = null;
            Exception error = null;
            var names = new List<string>();
            try
            {
                string path = bundleFolder = string.IsNullOrEmpty(bundlePath) ? FindBundle() : bundlePath;
                if (string.IsNullOrEmpty(path))
                    throw new BundleException("bundlePath", "no bundle: bundlePath is empty and none is installed under Packages/ or copied under StreamingAssets",
                                              "python -m packager unity-install BUNDLE --project .", "nothing");
                bundle = Bundle.Load(Resolve(path));
                if (!string.IsNullOrEmpty(defaultVoicePath)) defaultVoice = VoicePack.Load(Resolve(defaultVoicePath));
                foreach (var c in bundle.Manifest.Components)
                    if (c.Name != "campplus")   // speech needs llm, flow and hift; voice packs carry the embedding
                        foreach (var g in c.Graphs) names.Add(g.Name);
                ActiveBackend = ChooseBackend();
                sentis = new SentisGraphBackend(bundle, LoadModel, ActiveBackend);
            }
            catch (Exception e) { error = e; }
            for (int i = 0; error == null && i < names.Count; i++)
            {
                try { sentis.Prepare(names[i]); }
                catch (Exception e) { error = e; break; }
                PrepareProgress = 0.8f * (i + 1) / names.Count;
                yield return null;
            }
            if (error == null)
            {
                try
                {
                    made = new SpeakerCore(bundle, sentis);
                    made.OnFailed = j => UnityEngine.Debug.LogError("CosyVoiceSpeaker: \"" + Short(j.Text) + "\" failed: " + j.Error.Message, this);
                    warm = WarmUp(made);
                }
                catch (Exception e) { error = e; }
            }
            while (error == null && warm != null)
            {
                bool more;
                try { more = warm.MoveNext(); }
                catch (Exception e) { error = e; break; }
                if (!more) break;
                PrepareProgress = 0.8f + 0.2f * Math.Min(1f, made.Current == null ? 1f : made.Current.Progress);
                yield return null;
            }
            PrepareSeconds = clock.Elapsed.TotalSeconds;
            preparing = false;
            if (error != null)
            {
                PrepareError = error;
                if (made != null) made.Dispose(); else if (sentis != null) sentis.Dispose();
                UnityEngine.Debug.LogError("CosyVoiceSpeaker: Prepare failed: " + error.Message, this);
                foreach (var h in waiting) h.FailEarly(error);
                waiting.Clear();
                yield break;
            }
            core = made;
            PrepareProgress = 1f;
            UnityEngine.Debug.Log(string.Format("CosyVoiceSpeaker: prepared {0} graphs on {1} in {2:F1} s", names.Count, ActiveBackend, PrepareSeconds));
            foreach (var h in waiting) Start(h);
            waiting.Clear();
        }

        Model LoadModel(GraphEntry g)
        {
            foreach (var a in graphs)
                if (a != null && a.name == g.Name) return ModelLoader.Load(a);
#if UNITY_EDITOR
            // In the Editor a bundle installed in the project (Packages/<package>, Assets/...) needs no drag and drop:
            // its Models/*.onnx are ModelAssets already (the file is sha256-checked against the manifest first).
            if (!Path.IsPathRooted(bundleFolder) && (bundleFolder.StartsWith("Packages/", StringComparison.Ordinal) || bundleFolder.StartsWith("Assets/", StringComparison.Ordinal)))
            {
                bundle.VerifiedPath(g.File, g.Sha256, g.Bytes);
                var asset = UnityEditor.AssetDatabase.LoadAssetAtPath<ModelAsset>(bundleFolder.TrimEnd('/') + "/" + g.File);
                if (asset != null) return ModelLoader.Load(asset);
            }
#endif
            throw new BundleException(bundle.Root, "graph \"" + g.Name + "\" has no ModelAsset in CosyVoiceSpeaker.graphs", g.File,
                                      "assets: " + AssetNames());
        }

        string AssetNames()
        {
            var n = new List<string>();
            foreach (var a in graphs) if (a != null) n.Add(a.name);
            return n.Count == 0 ? "none" : string.Join(", ", n.ToArray());
        }

        /// <summary>CPU, or GPUCompute when every pipeline golden of the bundle passes on it (run once, blocking).</summary>
        BackendType ChooseBackend()
        {
            if (backend == BackendType.CPU) return BackendType.CPU;
            List<PipelineGolden> goldens;
            try { goldens = PipelineGolden.Load(bundle); }
            catch (Exception e)
            {
                UnityEngine.Debug.LogWarning("CosyVoiceSpeaker: cannot check " + backend + " (no pipeline goldens: " + e.Message + "); using CPU");
                return BackendType.CPU;
            }
            var runner = new SentisGraphRunner(bundle, LoadModel, backend);
            try
            {
                var synth = Synthesizer.FromBundle(bundle, runner);
                foreach (var g in goldens)
                    foreach (var v in g.Check(bundle, synth))
                        if (!v.Passed)
                        {
                            UnityEngine.Debug.LogWarning("CosyVoiceSpeaker: " + backend + " misses the bundle's golden " + g.Name + " (" + v + "); using CPU");
                            return BackendType.CPU;
                        }
                return backend;
            }
            finally { runner.Dispose(); }
        }

        /// <summary>One short utterance in the default voice through every graph (skipped without a default voice).</summary>
        IEnumerator WarmUp(SpeakerCore c)
        {
            if (defaultVoice == null) yield break;
            var job = c.Speak("Hello.", defaultVoice, Options());
            while (!job.IsDone || !c.IsIdle)
            {
                c.Update(frameBudgetMs);
                yield return null;
            }
            if (job.Error != null) throw job.Error;
        }

        // ----------------------------------------------------------------------------------------------- speak

        /// <summary>Zero-shot: <paramref name="text"/> in <paramref name="voice"/> (the default voice when null).</summary>
        public SpeakHandle Speak(string text, VoicePack voice = null) { return Queue(text, voice, SynthesisMode.ZeroShot, null); }

        /// <summary>Instruct: the instruction ("Please speak slowly.") steers the style of the voice.</summary>
        public SpeakHandle SpeakInstruct(string text, string instruction, VoicePack voice = null) { return Queue(text, voice, SynthesisMode.Instruct, instruction); }

        /// <summary>Cross-lingual: the voice's timbre, no transcript prompt (text in another language than the reference).</summary>
        public SpeakHandle SpeakCrossLingual(string text, VoicePack voice = null) { return Queue(text, voice, SynthesisMode.CrossLingual, null); }

        /// <summary>Cancels what is speaking and everything queued.</summary>
        public void StopSpeaking()
        {
            foreach (var h in waiting) h.Cancel();
            foreach (var h in handles) h.Cancel();
            if (audioSource != null) audioSource.Stop();
        }

        SpeakHandle Queue(string text, VoicePack voice, SynthesisMode mode, string instruction)
        {
            var h = new SpeakHandle(text, voice ?? defaultVoice, mode, instruction);
            if (core != null) Start(h);
            else if (preparing) waiting.Add(h);
            else if (PrepareError != null) h.FailEarly(PrepareError);
            else
            {
                waiting.Add(h);
                PrepareAsync();
            }
            return h;
        }

        SynthesisOptions Options()
        {
            return new SynthesisOptions { Sampling = sampling, Seed = (ulong)seed, Stream = streaming };
        }

        void Start(SpeakHandle h)
        {
            if (h.IsDone) return;
            h.Begin(core.Speak(h.Text, h.Voice, Options(), h.Mode, h.Instruction), maxUtteranceSeconds);
            handles.Add(h);
        }

        static string Short(string s) { return s == null ? "" : s.Length > 40 ? s.Substring(0, 40) + "..." : s; }

        // ---------------------------------------------------------------------------------------------- frames

        void Awake()
        {
            if (audioSource == null) audioSource = GetComponent<AudioSource>();
            if (audioSource == null) audioSource = gameObject.AddComponent<AudioSource>();
            audioSource.playOnAwake = false;
        }

        void Update()
        {
            if (core == null) return;
            core.Update(frameBudgetMs);
            foreach (var h in handles) h.Poll();
            UpdatePlayback();
        }

        void UpdatePlayback()
        {
            if (playing != null && (playing.Job.Audio.IsDrained || playing.Job.CancelRequested))
            {
                audioSource.Stop();
                handles.Remove(playing);
                playing = null;
            }
            while (playing == null && handles.Count > 0)
            {
                var next = handles[0];
                if (next.Job.IsDone && (next.Job.Audio.Written == 0 || next.Job.CancelRequested)) { handles.RemoveAt(0); continue; }
                playing = next;
                audioSource.clip = next.StreamClip;
            }
            if (playing == null) return;
            var gate = new PlaybackGate((long)(prebufferSeconds * core.SampleRate));
            bool should = gate.ShouldPlay(playing.Job.Audio, audioSource.isPlaying);
            if (should && !audioSource.isPlaying)
            {
                if (playing.Started) audioSource.UnPause();
                else { audioSource.Play(); playing.Started = true; }
            }
            else if (!should && audioSource.isPlaying && !playing.Job.Audio.IsComplete) audioSource.Pause();
        }

        void OnDisable() { Release(); }   // also runs before a domain reload

        void OnDestroy() { Release(); }

        void Release()
        {
            StopSpeaking();
            foreach (var h in handles) h.Poll();
            handles.Clear();
            playing = null;
            if (core != null) core.Dispose();
            core = null;
        }
    }

    /// <summary>One Speak call: poll IsDone / Progress / Error; Clip is the whole utterance once done.</summary>
    public sealed class SpeakHandle
    {
        internal readonly string Text;
        internal readonly VoicePack Voice;
        internal readonly SynthesisMode Mode;
        internal readonly string Instruction;
        internal SpeechJob Job;
        internal AudioClip StreamClip;
        internal bool Started;
        Exception early;
        bool canceled;

        internal SpeakHandle(string text, VoicePack voice, SynthesisMode mode, string instruction)
        {
            Text = text;
            Voice = voice;
            Mode = mode;
            Instruction = instruction;
        }

        internal void Begin(SpeechJob job, float maxSeconds)
        {
            Job = job;
            if (canceled) job.Cancel();
            if (job.IsDone) return;
            int rate = job.Audio.SampleRate;
            var audio = job.Audio;
            StreamClip = AudioClip.Create("CosyVoice3 stream", Math.Max(1, (int)(maxSeconds * rate)), 1, rate, true,
                                          data => audio.Read(data, 0, data.Length));
        }

        internal void FailEarly(Exception e) { early = e; }

        /// <summary>Main thread: makes the finished clip once the job is done.</summary>
        internal void Poll()
        {
            if (Job == null || Clip != null || !Job.IsDone || Job.State != SpeechState.Done) return;
            var samples = Job.Audio.ToArray();
            if (samples.Length == 0) return;
            Clip = AudioClip.Create("CosyVoice3 speech", samples.Length, 1, Job.Audio.SampleRate, false);
            Clip.SetData(samples, 0);
        }

        public bool IsDone { get { return early != null || (Job != null ? Job.IsDone : canceled); } }
        public bool IsCanceled { get { return canceled || (Job != null && Job.State == SpeechState.Canceled); } }
        public float Progress { get { return IsDone ? 1f : Job == null ? 0f : Job.Progress; } }
        /// <summary>What went wrong (bad text, another model's voice, a missing graph, a failed Prepare); null otherwise.</summary>
        public Exception Error { get { return early ?? (Job == null ? null : Job.Error); } }
        /// <summary>The whole utterance (mono, the bundle's sample rate), once IsDone without error; null before.</summary>
        public AudioClip Clip { get; private set; }
        /// <summary>Seconds from the start of synthesis to the first audio; -1 before.</summary>
        public double FirstAudioSeconds { get { return Job == null || Job.FirstAudioMs < 0 ? -1 : Job.FirstAudioMs / 1000.0; } }

        /// <summary>Stops synthesis and playback of this utterance.</summary>
        public void Cancel()
        {
            canceled = true;
            if (Job != null) Job.Cancel();
        }
    }
}
