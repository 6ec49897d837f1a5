// Stubs of the NUnit 3 members our tests use (same names and signatures as nunit.framework 3.5 in Unity's Test
// Framework). Unlike the Unity stubs these work: the assertions throw AssertionException, and tests/csharp/harness/Runner.cs
// discovers [Test] / [TestCaseSource] methods by reflection, so the Unity-independent tests run under plain mono.
using System;
using System.Collections;
using System.Collections.Generic;

namespace NUnit.Framework
{
    public delegate void TestDelegate();

    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = true)]
    public class TestFixtureAttribute : Attribute { }

    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
    public class TestAttribute : Attribute { }

    [AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = false)]
    public class TestCaseSourceAttribute : Attribute
    {
        public TestCaseSourceAttribute(string sourceName) { SourceName = sourceName; }
        public string SourceName { get; private set; }
    }

    [AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Assembly, AllowMultiple = false, Inherited = false)]
    public class TimeoutAttribute : Attribute
    {
        public TimeoutAttribute(int timeout) { Timeout = timeout; }
        public int Timeout { get; private set; }
    }

    [AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Assembly, AllowMultiple = true, Inherited = true)]
    public class CategoryAttribute : Attribute
    {
        public CategoryAttribute(string name) { Name = name; }
        public string Name { get; private set; }
    }

    public class TestCaseData
    {
        public TestCaseData(params object[] args) { Arguments = args ?? new object[] { null }; Properties = new Dictionary<string, object>(); }
        public object[] Arguments { get; private set; }
        public string TestName { get; private set; }
        public IDictionary<string, object> Properties { get; private set; }
        public TestCaseData SetName(string name) { TestName = name; return this; }
        public TestCaseData SetProperty(string propName, string propValue) { Properties[propName] = propValue; return this; }
        public TestCaseData SetProperty(string propName, int propValue) { Properties[propName] = propValue; return this; }
        public TestCaseData SetProperty(string propName, double propValue) { Properties[propName] = propValue; return this; }
        public TestCaseData SetCategory(string category) { Properties["Category"] = category; return this; }
    }

    public class AssertionException : Exception
    {
        public AssertionException(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void Fail(string message) { throw new AssertionException(message); }
        public static void Fail() { Fail(""); }

        public static void IsTrue(bool condition, string message) { if (!condition) Fail(message); }
        public static void IsTrue(bool condition) { IsTrue(condition, "expected true"); }
        public static void IsFalse(bool condition, string message) { if (condition) Fail(message); }
        public static void IsFalse(bool condition) { IsFalse(condition, "expected false"); }
        public static void IsNotNull(object anObject, string message) { if (anObject == null) Fail(message); }
        public static void IsNotNull(object anObject) { IsNotNull(anObject, "expected not null"); }
        public static void IsNull(object anObject, string message) { if (anObject != null) Fail(message); }

        public static void AreEqual(object expected, object actual, string message)
        {
            if (!Equals(expected, actual) && !NumericallyEqual(expected, actual))
                Fail((message ?? "") + "\n  Expected: " + Show(expected) + "\n  But was:  " + Show(actual));
        }
        public static void AreEqual(object expected, object actual) { AreEqual(expected, actual, null); }

        // NUnit compares numbers by value across types (0 equals 0L, 1f equals 1.0).
        static bool NumericallyEqual(object a, object b)
        {
            if (!IsNumber(a) || !IsNumber(b)) return false;
            if (a is double || a is float || b is double || b is float)
                return Convert.ToDouble(a) == Convert.ToDouble(b);
            if (a is ulong || b is ulong)
                return (a is ulong || Convert.ToInt64(a) >= 0) && (b is ulong || Convert.ToInt64(b) >= 0) && Convert.ToUInt64(a) == Convert.ToUInt64(b);
            return Convert.ToInt64(a) == Convert.ToInt64(b);
        }

        static bool IsNumber(object o)
        {
            return o is sbyte || o is byte || o is short || o is ushort || o is int || o is uint || o is long || o is ulong
                || o is float || o is double;
        }

        public static void AreEqual(double expected, double actual, double delta, string message)
        {
            bool ok = (double.IsNaN(expected) && double.IsNaN(actual)) || expected == actual || Math.Abs(expected - actual) <= delta;
            if (!ok) Fail((message ?? "") + "\n  Expected: " + expected.ToString("R") + " +/- " + delta + "\n  But was:  " + actual.ToString("R"));
        }

        public static T Throws<T>(TestDelegate code) where T : Exception
        {
            try { code(); }
            catch (T e) { return e; }
            catch (Exception e) { Fail("expected " + typeof(T).Name + " but got " + e.GetType().Name + ": " + e.Message); }
            Fail("expected " + typeof(T).Name + " but nothing was thrown");
            return null;
        }

        public static void Greater(double arg1, double arg2, string message) { if (!(arg1 > arg2)) Fail((message ?? "") + "\n  Expected: greater than " + arg2.ToString("R") + "\n  But was:  " + arg1.ToString("R")); }
        public static void Greater(double arg1, double arg2) { Greater(arg1, arg2, null); }
        public static void Less(double arg1, double arg2, string message) { if (!(arg1 < arg2)) Fail((message ?? "") + "\n  Expected: less than " + arg2.ToString("R") + "\n  But was:  " + arg1.ToString("R")); }
        public static void Less(double arg1, double arg2) { Less(arg1, arg2, null); }
        public static void LessOrEqual(double arg1, double arg2, string message) { if (!(arg1 <= arg2)) Fail((message ?? "") + "\n  Expected: less than or equal to " + arg2.ToString("R") + "\n  But was:  " + arg1.ToString("R")); }
        public static void LessOrEqual(double arg1, double arg2) { LessOrEqual(arg1, arg2, null); }

        internal static string Show(object o) { return o == null ? "null" : o is string ? "\"" + o + "\"" : o.ToString(); }
    }

    public static class CollectionAssert
    {
        public static void AreEqual(System.Collections.IEnumerable expected, System.Collections.IEnumerable actual, string message)
        {
            var e = new List<object>();
            var a = new List<object>();
            foreach (var x in expected) e.Add(x);
            foreach (var x in actual) a.Add(x);
            if (e.Count != a.Count) Assert.Fail((message ?? "") + "\n  Expected " + e.Count + " items, but was " + a.Count);
            for (int i = 0; i < e.Count; i++)
                if (!Equals(e[i], a[i])) Assert.Fail((message ?? "") + "\n  Differs at index " + i + ": expected " + Assert.Show(e[i]) + ", was " + Assert.Show(a[i]));
        }
        public static void AreEqual(System.Collections.IEnumerable expected, System.Collections.IEnumerable actual) { AreEqual(expected, actual, null); }
    }
}
