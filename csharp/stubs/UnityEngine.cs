// API stubs of the UnityEngine members our code uses, for compile checks under mono (not shipped to Unity).
// Each member matches the documented Unity 6 signature; bodies are placeholders.
namespace UnityEngine
{
    public class Object { }

    public class ScriptableObject : Object { }

    public static class Debug
    {
        public static void Log(object message) { System.Console.WriteLine(message); }
        public static void LogWarning(object message) { System.Console.WriteLine(message); }
        public static void LogError(object message) { System.Console.Error.WriteLine(message); }
    }
}
