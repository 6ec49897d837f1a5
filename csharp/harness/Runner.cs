// A tiny NUnit-style runner for plain mono (CI has no Unity): finds public [Test] methods in this assembly,
// expands [TestCaseSource] (a static method, property or field yielding TestCaseData or object[]), runs each case and
// prints one line per case. Exit code 0 = all passed, 1 = a failure, 2 = usage/discovery error.
// Usage: mono tests.exe [--filter SUBSTRING-OF-Class.Method]
using System;
using System.Collections;
using System.Collections.Generic;
using System.Reflection;
using NUnit.Framework;

namespace CosyVoice3.Harness
{
    public static class Runner
    {
        public static int Main(string[] args)
        {
            string filter = null;
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i] == "--filter" && i + 1 < args.Length) filter = args[++i];
                else { Console.Error.WriteLine("usage: tests.exe [--filter SUBSTRING]"); return 2; }
            }
            int passed = 0, failed = 0;
            var types = new List<Type>(Assembly.GetExecutingAssembly().GetTypes());
            types.Sort((a, b) => string.CompareOrdinal(a.FullName, b.FullName));
            foreach (var type in types)
            {
                foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static))
                {
                    if (method.GetCustomAttributes(typeof(TestAttribute), true).Length == 0) continue;
                    if (filter != null && (type.Name + "." + method.Name).IndexOf(filter, StringComparison.Ordinal) < 0) continue;
                    List<KeyValuePair<string, object[]>> cases;
                    try { cases = Expand(type, method); }
                    catch (Exception e)
                    {
                        Console.WriteLine("FAIL " + type.Name + "." + method.Name + " (test case source): " + Unwrap(e).Message);
                        failed++;
                        continue;
                    }
                    foreach (var c in cases)
                    {
                        try
                        {
                            object target = method.IsStatic ? null : Activator.CreateInstance(type);
                            method.Invoke(target, c.Value);
                            passed++;
                        }
                        catch (Exception e)
                        {
                            var inner = Unwrap(e);
                            Console.WriteLine("FAIL " + c.Key + ": " + (inner is AssertionException ? "" : inner.GetType().Name + ": ") + inner.Message);
                            if (!(inner is AssertionException)) Console.WriteLine(inner.StackTrace);
                            failed++;
                        }
                    }
                }
            }
            Console.WriteLine("mono tests: " + passed + " passed, " + failed + " failed");
            return failed == 0 ? 0 : 1;
        }

        static Exception Unwrap(Exception e)
        {
            while (e is TargetInvocationException && e.InnerException != null) e = e.InnerException;
            return e;
        }

        static List<KeyValuePair<string, object[]>> Expand(Type type, MethodInfo method)
        {
            var result = new List<KeyValuePair<string, object[]>>();
            var sources = method.GetCustomAttributes(typeof(TestCaseSourceAttribute), false);
            if (sources.Length == 0)
            {
                result.Add(new KeyValuePair<string, object[]>(type.Name + "." + method.Name, new object[0]));
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
                    result.Add(new KeyValuePair<string, object[]>(name, argv));
                    i++;
                }
            }
            return result;
        }
    }
}
