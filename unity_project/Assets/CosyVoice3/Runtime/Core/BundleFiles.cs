// Paths and hashes of bundle files (schemas/manifest.schema.json, "$defs/relpath", "$defs/sha256").
// Every manifest path is checked twice before use: syntactically (the schema's relpath rule, implemented by hand
// so that "abc\n" is rejected too) and after resolution (the full path must stay under the bundle root).
using System;
using System.IO;
using System.Security.Cryptography;
using System.Text;

namespace CosyVoice3.Core
{
    public static class BundleFiles
    {
        /// <summary>
        /// The schema's relpath rule: non-empty, '/'-separated segments of [A-Za-z0-9_.~+-], no leading '/',
        /// no drive letter, no backslash, no '.' or '..' segment, no empty segment.
        /// </summary>
        public static bool IsSafeRelativePath(string rel, out string reason)
        {
            reason = null;
            if (string.IsNullOrEmpty(rel)) { reason = "empty path"; return false; }
            if (rel[0] == '/' || rel[0] == '\\') { reason = "absolute path"; return false; }
            if (rel.Length >= 2 && rel[1] == ':' && IsAsciiLetter(rel[0])) { reason = "drive letter"; return false; }
            foreach (var seg in rel.Split('/'))
            {
                if (seg.Length == 0) { reason = "empty path segment"; return false; }
                if (seg == "." || seg == "..") { reason = "'" + seg + "' segment leaves or re-enters the bundle"; return false; }
                foreach (char c in seg)
                {
                    bool ok = IsAsciiLetter(c) || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '~' || c == '+' || c == '-';
                    if (!ok)
                    {
                        reason = c == '\\' ? "backslash" : "character U+" + ((int)c).ToString("X4") + " not allowed";
                        return false;
                    }
                }
            }
            return true;
        }

        static bool IsAsciiLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

        /// <summary>Resolve a manifest path under <paramref name="root"/>; throws if it is unsafe or escapes the root.</summary>
        public static string Resolve(string root, string rel, string where)
        {
            string reason;
            if (!IsSafeRelativePath(rel, out reason))
                throw new BundleException(where, "unsafe bundle path \"" + Escape(rel) + "\": " + reason,
                                          "a relative path inside the bundle", null);
            string fullRoot = Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
            string full = Path.GetFullPath(Path.Combine(fullRoot, rel.Replace('/', Path.DirectorySeparatorChar)));
            if (!full.StartsWith(fullRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new BundleException(where, "path \"" + rel + "\" resolves outside the bundle", fullRoot, full);
            return full;
        }

        public static bool IsSha256Hex(string s)
        {
            if (s == null || s.Length != 64) return false;
            foreach (char c in s)
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
            return true;
        }

        public static string Sha256Hex(byte[] data)
        {
            using (var sha = SHA256.Create()) return Hex(sha.ComputeHash(data));
        }

        public static string Sha256HexOfFile(string path)
        {
            using (var sha = SHA256.Create())
            using (var f = File.OpenRead(path))
                return Hex(sha.ComputeHash(f));
        }

        static string Hex(byte[] hash)
        {
            var sb = new StringBuilder(hash.Length * 2);
            foreach (byte b in hash) sb.Append(b.ToString("x2"));
            return sb.ToString();
        }

        /// <summary>Check a file's size, then its sha256, against the manifest (size first: it is cheap).</summary>
        public static void Verify(string fullPath, string rel, string sha256, long bytes, string where)
        {
            if (!File.Exists(fullPath))
                throw new BundleException(where, "file \"" + rel + "\" is missing from the bundle", fullPath, "nothing");
            long size = new FileInfo(fullPath).Length;
            if (size != bytes)
                throw new BundleException(where, "file \"" + rel + "\" has the wrong size", bytes + " bytes", size + " bytes");
            string got = Sha256HexOfFile(fullPath);
            if (got != sha256)
                throw new BundleException(where, "file \"" + rel + "\" fails its sha256 check", sha256, got);
        }

        /// <summary>The same check on bytes already in memory (so a file is read once, then hashed and parsed).</summary>
        public static void Verify(byte[] data, string rel, string sha256, long bytes, string where)
        {
            if (data.LongLength != bytes)
                throw new BundleException(where, "file \"" + rel + "\" has the wrong size", bytes + " bytes", data.LongLength + " bytes");
            string got = Sha256Hex(data);
            if (got != sha256)
                throw new BundleException(where, "file \"" + rel + "\" fails its sha256 check", sha256, got);
        }

        static string Escape(string s)
        {
            var sb = new StringBuilder();
            foreach (char c in s)
            {
                if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            return sb.ToString();
        }
    }
}
