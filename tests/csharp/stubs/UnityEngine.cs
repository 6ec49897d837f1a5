// API stubs of the UnityEngine members our code uses, for compile checks under mono (not shipped to Unity).
// Each member matches the documented Unity 6 signature; bodies are placeholders.
using System;
using System.Collections;

namespace UnityEngine
{
    public class Object
    {
        public string name { get { throw new NotImplementedException("stub"); } set { } }
        public static void Destroy(Object obj) { }
    }

    public class ScriptableObject : Object { }

    public class Component : Object
    {
        public GameObject gameObject { get { throw new NotImplementedException("stub"); } }
        public T GetComponent<T>() { throw new NotImplementedException("stub"); }
    }

    public class Behaviour : Component
    {
        public bool enabled { get { throw new NotImplementedException("stub"); } set { } }
    }

    public class MonoBehaviour : Behaviour
    {
        public Coroutine StartCoroutine(IEnumerator routine) { throw new NotImplementedException("stub"); }
        public void StopCoroutine(Coroutine routine) { }
    }

    public sealed class GameObject : Object
    {
        public T AddComponent<T>() where T : Component { throw new NotImplementedException("stub"); }
        public T GetComponent<T>() { throw new NotImplementedException("stub"); }
    }

    public sealed class Coroutine { }

    public sealed class AudioClip : Object
    {
        public delegate void PCMReaderCallback(float[] data);
        public delegate void PCMSetPositionCallback(int position);
        public int samples { get { throw new NotImplementedException("stub"); } }
        public int frequency { get { throw new NotImplementedException("stub"); } }
        public static AudioClip Create(string name, int lengthSamples, int channels, int frequency, bool stream) { throw new NotImplementedException("stub"); }
        public static AudioClip Create(string name, int lengthSamples, int channels, int frequency, bool stream, PCMReaderCallback pcmreadercallback) { throw new NotImplementedException("stub"); }
        public bool SetData(float[] data, int offsetSamples) { throw new NotImplementedException("stub"); }
    }

    public sealed class AudioSource : Behaviour
    {
        public AudioClip clip { get { throw new NotImplementedException("stub"); } set { } }
        public bool isPlaying { get { throw new NotImplementedException("stub"); } }
        public bool playOnAwake { get { throw new NotImplementedException("stub"); } set { } }
        public bool loop { get { throw new NotImplementedException("stub"); } set { } }
        public void Play() { }
        public void Pause() { }
        public void UnPause() { }
        public void Stop() { }
    }

    public static class Application
    {
        public static string streamingAssetsPath { get { throw new NotImplementedException("stub"); } }
    }

    public static class Debug
    {
        public static void Log(object message) { System.Console.WriteLine(message); }
        public static void LogWarning(object message) { System.Console.WriteLine(message); }
        public static void LogError(object message) { System.Console.Error.WriteLine(message); }
        public static void LogError(object message, Object context) { System.Console.Error.WriteLine(message); }
    }

    public struct Rect
    {
        public Rect(float x, float y, float width, float height) { throw new NotImplementedException("stub"); }
    }

    public sealed class GUILayoutOption { }

    public static class GUILayout
    {
        public static void BeginArea(Rect screenRect) { }
        public static void EndArea() { }
        public static void Label(string text, params GUILayoutOption[] options) { }
        public static string TextField(string text, params GUILayoutOption[] options) { throw new NotImplementedException("stub"); }
        public static bool Button(string text, params GUILayoutOption[] options) { throw new NotImplementedException("stub"); }
        public static int SelectionGrid(int selected, string[] texts, int xCount, params GUILayoutOption[] options) { throw new NotImplementedException("stub"); }
        public static GUILayoutOption Width(float width) { throw new NotImplementedException("stub"); }
        public static GUILayoutOption Height(float height) { throw new NotImplementedException("stub"); }
    }

    public static class Screen
    {
        public static int width { get { throw new NotImplementedException("stub"); } }
        public static int height { get { throw new NotImplementedException("stub"); } }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute { }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class HeaderAttribute : Attribute { public HeaderAttribute(string header) { } }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class RangeAttribute : Attribute { public RangeAttribute(float min, float max) { } }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class AddComponentMenu : Attribute { public AddComponentMenu(string menuName) { } }

    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
    public sealed class RequireComponent : Attribute { public RequireComponent(Type requiredComponent) { } }
}
