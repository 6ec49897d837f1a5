// API stubs of the UnityEditor members our tests use (Unity 6 ScriptReference signatures), for mono compile checks.
namespace UnityEditor
{
    [System.Flags]
    public enum ImportAssetOptions
    {
        Default = 0,
        ForceUpdate = 1,
        ForceSynchronousImport = 8,
        ImportRecursive = 256,
        DontDownloadFromCacheServer = 8192,
        ForceUncompressedImport = 16384,
    }

    public static class AssetDatabase
    {
        public static T LoadAssetAtPath<T>(string assetPath) where T : UnityEngine.Object { throw new System.NotImplementedException("stub"); }
        public static void ImportAsset(string path) { throw new System.NotImplementedException("stub"); }
        public static void ImportAsset(string path, ImportAssetOptions options) { throw new System.NotImplementedException("stub"); }
        public static void Refresh() { throw new System.NotImplementedException("stub"); }
    }

    [System.AttributeUsage(System.AttributeTargets.Method, AllowMultiple = true)]
    public sealed class MenuItem : System.Attribute
    {
        public MenuItem(string itemName) { }
    }

    public static class EditorApplication
    {
        public static void Exit(int returnValue) { throw new System.NotImplementedException("stub"); }
    }
}
