// One folder of test vectors written by a Python test (tests/csharp/test_*.py): $<PREFIX>_VECTORS holds index.json and
// the arrays; each C# result is appended as one JSON line to $<PREFIX>_RESULTS, which the Python side reads back.
using System;
using System.Collections.Generic;
using System.IO;
using CosyVoice3.Core;
using CosyVoice3.Host;

namespace CosyVoice3.Tests
{
    sealed class VectorSet
    {
        readonly string prefix, defaultDir;
        JsonValue index;

        public VectorSet(string prefix, string defaultDir = null)
        {
            this.prefix = prefix;
            this.defaultDir = defaultDir;
        }

        /// <summary>The vectors folder ($PREFIX_VECTORS); null or empty when the Python side did not write any.</summary>
        public string Dir { get { return Environment.GetEnvironmentVariable(prefix + "_VECTORS") ?? defaultDir; } }

        public JsonValue Index
        {
            get
            {
                if (index == null) index = Json.Parse(File.ReadAllText(Path.Combine(Dir, "index.json")), "index.json");
                return index;
            }
        }

        /// <summary>One JSON line {"kind", "name", key: raw JSON value ...} appended to $PREFIX_RESULTS, if set.</summary>
        public void Write(string kind, string name, params string[] keyValues)
        {
            var fields = new List<string> { "\"kind\": " + VectorTests.Str(kind), "\"name\": " + VectorTests.Str(name) };
            for (int i = 0; i + 1 < keyValues.Length; i += 2) fields.Add(VectorTests.Str(keyValues[i]) + ": " + keyValues[i + 1]);
            WriteLine("{" + string.Join(", ", fields.ToArray()) + "}");
        }

        /// <summary>A raw JSON line appended to $PREFIX_RESULTS, if set.</summary>
        public void WriteLine(string json)
        {
            var path = Environment.GetEnvironmentVariable(prefix + "_RESULTS");
            if (!string.IsNullOrEmpty(path)) File.AppendAllText(path, json + "\n");
        }

        /// <summary>The tokenizer whose tables the Python side wrote as byte_ids / merges / added / classes .npy.</summary>
        public Qwen2Tokenizer Tokenizer()
        {
            return new Qwen2Tokenizer(Npy.ReadFile(Path.Combine(Dir, "byte_ids.npy")).Ints,
                                      Npy.ReadFile(Path.Combine(Dir, "merges.npy")).Ints,
                                      Npy.ReadFile(Path.Combine(Dir, "added.npy")).Ints,
                                      Npy.ReadFile(Path.Combine(Dir, "classes.npy")).Ints);
        }
    }
}
