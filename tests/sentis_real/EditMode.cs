// run.sh --editmode: the project's own EditMode test classes (unity_project/Assets/CosyVoice3/Tests/Editor/*.cs),
// compiled against the real, Unity-compiled Sentis runtime DLL, run by tests/csharp/harness/Runner.cs (NUnit stand-in:
// tests/csharp/stubs/NUnit.cs) in the project folder (the tests find bundles under Packages/ relative to the working
// directory). UnityEditor.AssetDatabase is the shim's (shim/UnityEditor.CoreModule.cs): an .onnx loads as a ModelAsset
// made by Sentis's own ONNX converter, the way ONNXModelImporter makes it.
// As in Unity's Test Framework, a Debug.LogError (or a failed UnityEngine.Assertions assert, or Debug.LogException)
// during a test that the test did not expect fails that test; our tests expect none (no LogAssert here).
// Usage: mono sentis_real_editmode.exe [--filter CLASS.METHOD-SUBSTRING] [--case CASE-NAME-SUBSTRING] [--verbose] [--json FILE]
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Harness;
#if COSY_SENTIS
using Unity.Sentis;
#else
using Unity.InferenceEngine;
#endif

static class SentisRealEditMode
{
    static int Main(string[] args)
    {
        var ie = typeof(Model).Assembly;
        Console.WriteLine("Sentis runtime: " + ie.GetName().Name + " " + ie.GetName().Version + "  (" + ie.Location + ")");
        Console.WriteLine("EditMode tests in project " + Directory.GetCurrentDirectory());
        ShimSupport.LogSink.KeepLogs = true;
        Runner.CaseStarting = name =>
        {
            ShimSupport.LogSink.Errors.Clear(); ShimSupport.LogSink.Warnings.Clear(); ShimSupport.LogSink.Logs.Clear();
        };
        Runner.CaseFinished = () =>
        {
            if (ShimSupport.LogSink.Errors.Count == 0) return null;
            var lines = new List<string>();
            foreach (var e in ShimSupport.LogSink.Errors) lines.Add("Unhandled log message: '[Error] " + e + "'. Use UnityEngine.TestTools.LogAssert.Expect");
            return string.Join("\n", lines.ToArray());
        };
        Runner.CaseLog = () =>
        {
            var log = new List<string>();
            foreach (var w in ShimSupport.LogSink.Warnings) log.Add("[Warning] " + w);
            foreach (var l in ShimSupport.LogSink.Logs) log.Add("[Log] " + l);
            foreach (var e in ShimSupport.LogSink.Errors) log.Add("[Error] " + e);
            return log;
        };
        return Runner.Run(args, typeof(SentisRealEditMode).Assembly);
    }
}
