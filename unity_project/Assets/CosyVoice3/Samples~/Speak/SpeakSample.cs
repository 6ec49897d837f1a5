// The "Speak" sample (docs/unity_speaker.md): type a line, pick a voice, press Speak. The scene holds one GameObject
// with this script; it adds a CosyVoiceSpeaker (and an AudioSource) next to itself, lists the voice packs it finds,
// prepares the bundle over a few frames and speaks with streaming playback while the UI stays responsive.
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;
using CosyVoice3.Speaker;
using UnityEngine;

namespace CosyVoice3.Samples
{
    [AddComponentMenu("CosyVoice3/Samples/Speak Sample")]
    public sealed class SpeakSample : MonoBehaviour
    {
        [Tooltip("The bundle folder: relative to StreamingAssets, or in the Editor to the project (Packages/<bundle package>). Empty: the bundle `unity-install` put under Packages/ (Editor), else the first bundle folder under StreamingAssets (player).")]
        public string bundlePath = "";
        [Tooltip("Voice packs (.voice folders, made by `python -m packager voice`), relative like bundlePath. Empty: every .voice under the bundle's Voices~ folder and under StreamingAssets.")]
        public string[] voicePaths = new string[0];
        public string text = "Hello! This voice was made from a few seconds of speech.";

        CosyVoiceSpeaker speaker;
        readonly List<string> voiceFiles = new List<string>();
        readonly List<string> voiceNames = new List<string>();
        readonly Dictionary<string, VoicePack> loaded = new Dictionary<string, VoicePack>();
        int selected;
        int mode;   // 0 zero-shot, 1 instruct, 2 cross-lingual
        string instruction = "Please speak slowly.";
        SpeakHandle handle;
        string message = "";

        void Awake()
        {
            speaker = GetComponent<CosyVoiceSpeaker>();
            if (speaker == null)
            {
                speaker = gameObject.AddComponent<CosyVoiceSpeaker>();
                speaker.bundlePath = bundlePath;   // empty: CosyVoiceSpeaker.FindBundle()
            }
            FindVoices();
        }

        void Start()
        {
            speaker.PrepareAsync();   // graphs import one per frame; Speak before it finishes just waits for it
        }

        void FindVoices()
        {
            var paths = new List<string>(voicePaths);
            if (paths.Count == 0)
            {
                string bundleRoot = CosyVoiceSpeaker.Resolve(string.IsNullOrEmpty(speaker.bundlePath) ? CosyVoiceSpeaker.FindBundle() : speaker.bundlePath);
                foreach (var root in new[] { Path.Combine(bundleRoot, "Voices~"), Application.streamingAssetsPath })
                {
                    if (string.IsNullOrEmpty(root) || !Directory.Exists(root)) continue;
                    var found = Directory.GetDirectories(root, "*.voice", SearchOption.AllDirectories);
                    Array.Sort(found, StringComparer.Ordinal);
                    paths.AddRange(found);
                }
            }
            foreach (var p in paths)
            {
                voiceFiles.Add(CosyVoiceSpeaker.Resolve(p));
                voiceNames.Add(Path.GetFileName(p.TrimEnd('/', '\\')));
            }
            if (voiceFiles.Count == 0)
                message = "No voice packs found. Make one: python -m packager voice BUNDLE --wav me.wav --transcript \"...\" --out me.voice, "
                        + "then put it under StreamingAssets (or install it with unity-install --voice).";
        }

        VoicePack Voice()
        {
            if (voiceFiles.Count == 0) return null;
            string path = voiceFiles[selected];
            VoicePack v;
            if (!loaded.TryGetValue(path, out v)) loaded[path] = v = VoicePack.Load(path);
            return v;
        }

        void Speak()
        {
            VoicePack voice;
            try { voice = Voice(); }
            catch (Exception e) { message = e.Message; return; }   // a broken or foreign pack: say which file and why
            if (handle != null && !handle.IsDone) speaker.StopSpeaking();
            if (mode == 1) handle = speaker.SpeakInstruct(text, instruction, voice);
            else if (mode == 2) handle = speaker.SpeakCrossLingual(text, voice);
            else handle = speaker.Speak(text, voice);
            message = "";
        }

        void OnGUI()
        {
            GUILayout.BeginArea(new Rect(20, 20, Math.Min(720, Screen.width - 40), Screen.height - 40));
            GUILayout.Label("CosyVoice3 for Unity: text to speech in a voice pack");
            if (speaker.IsPreparing) GUILayout.Label(string.Format("Preparing the bundle... {0:P0}", speaker.PrepareProgress));
            else if (speaker.PrepareError != null) GUILayout.Label("Prepare failed: " + speaker.PrepareError.Message);
            else if (speaker.IsPrepared) GUILayout.Label(string.Format("Ready ({0}, prepared in {1:F1} s)", speaker.ActiveBackend, speaker.PrepareSeconds));

            GUILayout.Label("Text");
            text = GUILayout.TextField(text, GUILayout.Height(60));
            if (voiceNames.Count > 0)
            {
                GUILayout.Label("Voice");
                selected = GUILayout.SelectionGrid(selected, voiceNames.ToArray(), 3);
            }
            mode = GUILayout.SelectionGrid(mode, new[] { "Zero-shot", "Instruct", "Cross-lingual" }, 3);
            if (mode == 1) instruction = GUILayout.TextField(instruction);

            if (GUILayout.Button("Speak", GUILayout.Height(40))) Speak();
            if (handle != null && !handle.IsDone && GUILayout.Button("Stop")) handle.Cancel();

            if (handle != null)
            {
                if (handle.Error != null) GUILayout.Label("Error: " + handle.Error.Message);
                else if (handle.IsCanceled) GUILayout.Label("Stopped.");
                else if (!handle.IsDone) GUILayout.Label(string.Format("Speaking... {0:P0}", handle.Progress));
                else GUILayout.Label(string.Format("Done: {0:F1} s of audio", handle.Clip == null ? 0 : handle.Clip.samples / (double)handle.Clip.frequency));
                if (handle.FirstAudioSeconds >= 0) GUILayout.Label(string.Format("First audio after {0:F2} s", handle.FirstAudioSeconds));
            }
            var stats = speaker.Stats;
            if (stats != null && stats.Slices > 0)
                GUILayout.Label(string.Format("Main thread per frame: longest {0:F1} ms, mean {1:F1} ms (budget {2:F0} ms)", stats.MaxSliceMs, stats.MeanSliceMs, speaker.frameBudgetMs));
            if (message.Length > 0) GUILayout.Label(message);
            GUILayout.EndArea();
        }
    }
}
