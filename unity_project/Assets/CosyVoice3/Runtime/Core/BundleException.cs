// A bundle file or manifest that is missing, malformed or does not match what the manifest promises.
// Messages name the file/field and say what was expected and what was found (docs/unity.md, "Errors").
using System;

namespace CosyVoice3.Core
{
    public class BundleException : Exception
    {
        public BundleException(string message) : base(message) { }

        public BundleException(string where, string message, string expected, string found)
            : base(Format(where, message, expected, found)) { }

        static string Format(string where, string message, string expected, string found)
        {
            var text = string.IsNullOrEmpty(where) ? message : where + ": " + message;
            if (expected != null)
                text += " (expected " + expected + (found != null ? ", found " + found : "") + ")";
            return text;
        }
    }
}
