// EditMode test of what CosyVoiceSpeaker runs (docs/unity_speaker.md): for every speak golden of every installed
// bundle (`unity-install --voice NAME.voice` writes them), SpeakerCore speaks the golden's text in its voice with its
// settings over Sentis (SentisGraphBackend, CPU, one layer per step, the KV cache kept on the worker), driven frame by
// frame with the speaker's default 8 ms budget, and the samples read back from the streaming buffer are compared with
// `packager synth`'s under the bundle's pipeline tolerances (speech tokens exact, speech sqnr_db). The same code path
// is proven sample-exact against Python under mono with a replaying backend (tests/csharp/cs/SpeakerTests.cs); this
// test adds the Sentis arithmetic. Not run in Unity yet (no Editor in our CI); it compiles against the stubs.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;
using CosyVoice3.Inference;
using CosyVoice3.Speech;
using NUnit.Framework;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

namespace CosyVoice3.Tests.Editor
{
    public class SpeakerGoldenTests
    {
        const double FrameBudgetMs = 8.0;
        const double TimeoutSeconds = 1800;

        public static IEnumerable<TestCaseData> Cases()
        {
            var cases = new List<TestCaseData>();
            foreach (var dir in BundleGoldenTests.BundleDirs())
                foreach (var name in SpeakGolden.Names(dir))
                    cases.Add(new TestCaseData(dir, name).SetName(Path.GetFileName(dir) + ".speak." + name));
            return cases;
        }

        [Test, TestCaseSource(nameof(Cases))]
        public void SpeakMatchesPackagerSynth(string bundleDir, string name)
        {
            var bundle = Bundle.Load(bundleDir);
            var golden = SpeakGolden.Load(bundleDir, name);
            var voice = VoicePack.Load(golden.VoicePath);
            string where = bundle.Manifest.BundleName + "/speak/" + name;
            var clock = Stopwatch.StartNew();
            using (var core = new SpeakerCore(bundle, new SentisGraphBackend(bundle, PipelineGoldenTests.EditorModels(bundle, bundleDir), BackendType.CPU)))
            {
                var chunks = new List<int>();
                var options = golden.Settings;
                options.OnAudio = a => chunks.Add(a.Length);
                var job = core.Speak(golden.Text, voice, options, golden.Mode);
                int frames = 0;
                while (!(job.IsDone && core.IsIdle))
                {
                    core.Update(FrameBudgetMs);
                    frames++;
                    if (clock.Elapsed.TotalSeconds > TimeoutSeconds) { job.Cancel(); Assert.Fail(where + ": not done after " + TimeoutSeconds + " s"); }
                }
                Assert.AreEqual(SpeechState.Done, job.State, where + ": " + job.Error);
                var heard = new List<float>();
                var block = new float[1024];
                while (!job.Audio.IsDrained)
                {
                    int n = job.Audio.Read(block, 0, block.Length);
                    for (int i = 0; i < n; i++) heard.Add(block[i]);
                }
                var failures = new List<string>();
                var report = new List<string>();
                foreach (var v in golden.Check(bundle, heard.ToArray(), job.Result))
                {
                    string line = v.Output + ": " + v.Summary();
                    report.Add(line);
                    if (!v.Passed) failures.Add(line);
                }
                if (string.Join(",", chunks.ConvertAll(c => c.ToString()).ToArray()) != string.Join(",", golden.Chunks.ConvertAll(c => c.ToString()).ToArray()))
                    failures.Add("chunk sizes " + chunks.Count + " chunks differ from packager synth's " + golden.Chunks.Count);
                if (failures.Count > 0)
                    Assert.Fail(where + " (Sentis CPU): " + string.Join("\n  ", failures.ToArray()));
                UnityEngine.Debug.Log(where + " passed in " + clock.ElapsedMilliseconds + " ms over " + frames + " frames; first audio after "
                                      + job.FirstAudioMs.ToString("F0") + " ms; main thread: " + core.Runner.Stats + "\n  " + string.Join("\n  ", report.ToArray()));
            }
        }
    }
}
