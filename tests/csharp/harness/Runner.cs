// A tiny NUnit-style runner for plain mono (CI has no Unity): finds public [Test] methods in this assembly,
// expands [TestCaseSource] (a static method, property or field yielding TestCaseData or object[]), runs each case and
// prints one line per failing case. Exit code 0 = all passed, 1 = a failure, 2 = usage/discovery error.
// Usage: mono tests.exe [--filter SUBSTRING-OF-Class.Method] [--case SUBSTRING-OF-CASE-NAME] [--verbose] [--json FILE]
//   --verbose  also one line per passing case (with its time)
//   --json     per case: class, method, name, passed, ms, timeout_ms, message, log (tests/sentis/test_sentis_real_editmode.py)
// As NUnit, a case's "Timeout" (the [Timeout] attribute, or a TestCaseData "Timeout" property) in ms fails a case that
// ran longer ("Test exceeded Timeout value of N ms"); unlike NUnit the case is not aborted, it is judged when it ends.
// A host (tests/sentis_real/EditMode.cs) may set the hooks below and call Run with its own assembly.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Reflection;
using System.Text;
using NUnit.Framework;

namespace CosyVoice3.Harness
{
    public static class Runner
    {
        /// <summary>Called before each case with its name.</summary>
        public static Action<string> CaseStarting;
        /// <summary>Called after each case: a failure message for what the case left behind (e.g. Unity's rule that an
        /// unexpected Debug.LogError fails the test), or null.</summary>
        public static Func<string> CaseFinished;
        /// <summary>Called after each case: messages it logged, kept in the --json output.</summary>
        public static Func<List<string>> CaseLog;

        sealed class Case
        {
            public string Name;
            public object[] Args;
            public int TimeoutMs;
        }

        sealed class Result
        {
            public string Class, Method, Name, Message;
            public bool Passed;
            public long Ms;
            public int TimeoutMs;
            public List<string> Log = new List<string>();
        }

        public static int Main(string[] args) { return Run(args, Assembly.GetExecutingAssembly()); }

        public static int Run(string[] args, Assembly assembly)
        {
            string filter = null, caseFilter = null, json = null;
            bool verbose = false;
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i] == "--filter" && i + 1 < args.Length) filter = args[++i];
                else if (args[i] == "--case" && i + 1 < args.Length) caseFilter = args[++i];
                else if (args[i] == "--json" && i + 1 < args.Length) json = args[++i];
                else if (args[i] == "--verbose") verbose = true;
                else { Console.Error.WriteLine("usage: tests.exe [--filter SUBSTRING] [--case SUBSTRING] [--verbose] [--json FILE]"); return 2; }
            }
            int passed = 0, failed = 0;
            var results = new List<Result>();
            var types = new List<Type>(assembly.GetTypes());
            types.Sort((a, b) => string.CompareOrdinal(a.FullName, b.FullName));
            foreach (var type in types)
            {
                foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static))
                {
                    if (method.GetCustomAttributes(typeof(TestAttribute), true).Length == 0) continue;
                    if (filter != null && (type.Name + "." + method.Name).IndexOf(filter, StringComparison.Ordinal) < 0) continue;
                    List<Case> cases;
                    try { cases = Expand(type, method); }
                    catch (Exception e)
                    {
                        string msg = "(test case source): " + Unwrap(e).Message;
                        Console.WriteLine("FAIL " + type.Name + "." + method.Name + " " + msg);
                        results.Add(new Result { Class = type.Name, Method = method.Name, Name = type.Name + "." + method.Name, Message = msg });
                        failed++;
                        continue;
                    }
                    foreach (var c in cases)
                    {
                        if (caseFilter != null && c.Name.IndexOf(caseFilter, StringComparison.Ordinal) < 0) continue;
                        var r = new Result { Class = type.Name, Method = method.Name, Name = c.Name, TimeoutMs = c.TimeoutMs };
                        results.Add(r);
                        if (CaseStarting != null) CaseStarting(c.Name);
                        var clock = Stopwatch.StartNew();
                        try
                        {
                            object target = method.IsStatic ? null : Activator.CreateInstance(type);
                            method.Invoke(target, c.Args);
                            r.Passed = true;
                        }
                        catch (Exception e)
                        {
                            var inner = Unwrap(e);
                            r.Message = (inner is AssertionException ? "" : inner.GetType().Name + ": ") + inner.Message
                                        + (inner is AssertionException ? "" : "\n" + inner.StackTrace);
                        }
                        r.Ms = clock.ElapsedMilliseconds;
                        if (r.Passed && c.TimeoutMs > 0 && r.Ms > c.TimeoutMs)
                        {
                            r.Passed = false;
                            r.Message = "Test exceeded Timeout value of " + c.TimeoutMs + "ms (took " + r.Ms + " ms)";
                        }
                        string left = CaseFinished != null ? CaseFinished() : null;
                        if (left != null)
                        {
                            r.Message = r.Passed ? left : r.Message + "\n" + left;
                            r.Passed = false;
                        }
                        if (CaseLog != null) r.Log.AddRange(CaseLog());
                        if (r.Passed)
                        {
                            passed++;
                            if (verbose) Console.WriteLine("PASS " + c.Name + " (" + r.Ms + " ms)");
                        }
                        else
                        {
                            failed++;
                            Console.WriteLine("FAIL " + c.Name + ": " + r.Message);
                        }
                    }
                }
            }
            if (json != null) WriteJson(json, results);
            Console.WriteLine("mono tests: " + passed + " passed, " + failed + " failed");
            return failed == 0 ? 0 : 1;
        }

        static Exception Unwrap(Exception e)
        {
            while (e is TargetInvocationException && e.InnerException != null) e = e.InnerException;
            return e;
        }

        static int TimeoutOf(MethodInfo method)
        {
            var a = method.GetCustomAttributes(typeof(TimeoutAttribute), true);
            if (a.Length > 0) return ((TimeoutAttribute)a[0]).Timeout;
            a = method.DeclaringType.GetCustomAttributes(typeof(TimeoutAttribute), true);
            return a.Length > 0 ? ((TimeoutAttribute)a[0]).Timeout : 0;
        }

        static List<Case> Expand(Type type, MethodInfo method)
        {
            var result = new List<Case>();
            int timeout = TimeoutOf(method);
            var sources = method.GetCustomAttributes(typeof(TestCaseSourceAttribute), false);
            if (sources.Length == 0)
            {
                result.Add(new Case { Name = type.Name + "." + method.Name, Args = new object[0], TimeoutMs = timeout });
                return result;
            }
            foreach (TestCaseSourceAttribute src in sources)
            {
                const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static;
                object items;
                var m = type.GetMethod(src.SourceName, all, null, Type.EmptyTypes, null);
                if (m != null) items = m.Invoke(null, null);
                else if (type.GetProperty(src.SourceName, all) != null) items = type.GetProperty(src.SourceName, all).GetValue(null, null);
                else if (type.GetField(src.SourceName, all) != null) items = type.GetField(src.SourceName, all).GetValue(null);
                else throw new InvalidOperationException("no static member " + src.SourceName + " on " + type.Name);
                int i = 0;
                foreach (var item in (IEnumerable)items)
                {
                    var data = item as TestCaseData;
                    object[] argv = data != null ? data.Arguments : item as object[] ?? new[] { item };
                    string name = data != null && data.TestName != null ? data.TestName : type.Name + "." + method.Name + "(" + i + ")";
                    object t;
                    int caseTimeout = data != null && data.Properties.TryGetValue("Timeout", out t) ? Convert.ToInt32(t) : timeout;
                    result.Add(new Case { Name = name, Args = argv, TimeoutMs = caseTimeout });
                    i++;
                }
            }
            return result;
        }

        static string Q(string v)
        {
            if (v == null) return "null";
            var b = new StringBuilder("\"");
            foreach (char ch in v)
            {
                if (ch == '"' || ch == '\\') b.Append('\\').Append(ch);
                else if (ch < ' ') b.Append("\\u").Append(((int)ch).ToString("x4"));
                else b.Append(ch);
            }
            return b.Append('"').ToString();
        }

        static void WriteJson(string path, List<Result> results)
        {
            var b = new StringBuilder("{\"cases\": [");
            for (int i = 0; i < results.Count; i++)
            {
                var r = results[i];
                var log = new List<string>();
                foreach (var l in r.Log) log.Add(Q(l));
                b.Append(i == 0 ? "\n  " : ",\n  ")
                 .Append("{\"class\": ").Append(Q(r.Class)).Append(", \"method\": ").Append(Q(r.Method))
                 .Append(", \"name\": ").Append(Q(r.Name)).Append(", \"passed\": ").Append(r.Passed ? "true" : "false")
                 .Append(", \"ms\": ").Append(r.Ms).Append(", \"timeout_ms\": ").Append(r.TimeoutMs)
                 .Append(", \"message\": ").Append(Q(r.Message)).Append(", \"log\": [").Append(string.Join(", ", log.ToArray())).Append("]}");
            }
            b.Append("\n]}\n");
            File.WriteAllText(path, b.ToString());
        }
    }
}
