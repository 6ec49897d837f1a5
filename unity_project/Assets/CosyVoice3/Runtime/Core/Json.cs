// A small strict JSON (RFC 8259) reader for manifest.json.
// Why not JsonUtility: it cannot read free-form objects (the manifest's "constants", "carry", "metrics" maps).
// Why not Newtonsoft: the runtime must compile both in Unity and under plain mono without NuGet.
// Strict means: no comments, no trailing commas, no NaN/Infinity literals, no duplicate keys, nothing after the
// top-level value. Every value remembers its path ("components[0].graphs[1].name") for error messages.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace CosyVoice3.Core
{
    public enum JsonKind { Null, Bool, Number, String, Array, Object }

    public sealed class JsonValue
    {
        public JsonKind Kind { get; private set; }
        public string Path { get; private set; }
        public bool BoolValue { get; private set; }
        public double NumberValue { get; private set; }
        public string StringValue { get; private set; }
        readonly List<JsonValue> items;
        readonly List<KeyValuePair<string, JsonValue>> members;   // object members in file order
        readonly Dictionary<string, JsonValue> byKey;

        JsonValue(JsonKind kind, string path)
        {
            Kind = kind;
            Path = path;
            if (kind == JsonKind.Array) items = new List<JsonValue>();
            if (kind == JsonKind.Object)
            {
                members = new List<KeyValuePair<string, JsonValue>>();
                byKey = new Dictionary<string, JsonValue>(StringComparer.Ordinal);
            }
        }

        internal static JsonValue Make(JsonKind kind, string path) { return new JsonValue(kind, path); }
        internal static JsonValue MakeBool(bool b, string path) { var v = new JsonValue(JsonKind.Bool, path); v.BoolValue = b; return v; }
        internal static JsonValue MakeNumber(double d, string path) { var v = new JsonValue(JsonKind.Number, path); v.NumberValue = d; return v; }
        internal static JsonValue MakeString(string s, string path) { var v = new JsonValue(JsonKind.String, path); v.StringValue = s; return v; }
        internal void AddItem(JsonValue v) { items.Add(v); }

        internal bool AddMember(string key, JsonValue v)
        {
            if (byKey.ContainsKey(key)) return false;
            byKey.Add(key, v);
            members.Add(new KeyValuePair<string, JsonValue>(key, v));
            return true;
        }

        public IList<JsonValue> Items { get { return items ?? (IList<JsonValue>)new JsonValue[0]; } }
        public IList<KeyValuePair<string, JsonValue>> Members
        {
            get { return members ?? (IList<KeyValuePair<string, JsonValue>>)new KeyValuePair<string, JsonValue>[0]; }
        }

        public bool Has(string key) { return byKey != null && byKey.ContainsKey(key); }

        public JsonValue Get(string key)
        {
            JsonValue v;
            return byKey != null && byKey.TryGetValue(key, out v) ? v : null;
        }

        /// <summary>True for a number with an integral value (JSON Schema's "integer" accepts 1.0 too).</summary>
        public bool IsInteger
        {
            get { return Kind == JsonKind.Number && Math.Floor(NumberValue) == NumberValue && !double.IsInfinity(NumberValue); }
        }

        public static string KindName(JsonKind k)
        {
            switch (k)
            {
                case JsonKind.Null: return "null";
                case JsonKind.Bool: return "boolean";
                case JsonKind.Number: return "number";
                case JsonKind.String: return "string";
                case JsonKind.Array: return "array";
                default: return "object";
            }
        }
    }

    public static class Json
    {
        const int MaxDepth = 64;

        /// <summary>Parse <paramref name="text"/>; <paramref name="origin"/> (a file name) prefixes error messages.</summary>
        public static JsonValue Parse(string text, string origin)
        {
            var p = new Parser(text, origin);
            p.SkipWs();
            var v = p.ParseValue("$", 0);
            p.SkipWs();
            if (p.Pos != text.Length) throw p.Error("unexpected text after the top-level value");
            return v;
        }

        sealed class Parser
        {
            readonly string s;
            readonly string origin;
            public int Pos;

            public Parser(string text, string origin) { s = text ?? ""; this.origin = origin; }

            public BundleException Error(string message)
            {
                int line = 1, col = 1;
                for (int i = 0; i < Pos && i < s.Length; i++)
                {
                    if (s[i] == '\n') { line++; col = 1; } else col++;
                }
                return new BundleException(origin + ":" + line + ":" + col + ": invalid JSON: " + message);
            }

            public void SkipWs()
            {
                while (Pos < s.Length && (s[Pos] == ' ' || s[Pos] == '\t' || s[Pos] == '\n' || s[Pos] == '\r')) Pos++;
            }

            public JsonValue ParseValue(string path, int depth)
            {
                if (depth > MaxDepth) throw Error("nesting deeper than " + MaxDepth);
                if (Pos >= s.Length) throw Error("unexpected end of input");
                char c = s[Pos];
                if (c == '{') return ParseObject(path, depth);
                if (c == '[') return ParseArray(path, depth);
                if (c == '"') return JsonValue.MakeString(ParseString(), path);
                if (c == '-' || (c >= '0' && c <= '9')) return JsonValue.MakeNumber(ParseNumber(), path);
                if (Literal("true")) return JsonValue.MakeBool(true, path);
                if (Literal("false")) return JsonValue.MakeBool(false, path);
                if (Literal("null")) return JsonValue.Make(JsonKind.Null, path);
                throw Error("unexpected character '" + c + "'");
            }

            bool Literal(string word)
            {
                if (string.CompareOrdinal(s, Pos, word, 0, word.Length) != 0) return false;
                Pos += word.Length;
                return true;
            }

            JsonValue ParseObject(string path, int depth)
            {
                var obj = JsonValue.Make(JsonKind.Object, path);
                Pos++; // '{'
                SkipWs();
                if (Pos < s.Length && s[Pos] == '}') { Pos++; return obj; }
                while (true)
                {
                    SkipWs();
                    if (Pos >= s.Length || s[Pos] != '"') throw Error("expected a string key");
                    int keyPos = Pos;
                    string key = ParseString();
                    SkipWs();
                    if (Pos >= s.Length || s[Pos] != ':') throw Error("expected ':'");
                    Pos++;
                    SkipWs();
                    var v = ParseValue(path == "$" ? key : path + "." + key, depth + 1);
                    if (!obj.AddMember(key, v)) { Pos = keyPos; throw Error("duplicate key \"" + key + "\""); }
                    SkipWs();
                    if (Pos >= s.Length) throw Error("unexpected end of input in an object");
                    if (s[Pos] == ',') { Pos++; continue; }
                    if (s[Pos] == '}') { Pos++; return obj; }
                    throw Error("expected ',' or '}'");
                }
            }

            JsonValue ParseArray(string path, int depth)
            {
                var arr = JsonValue.Make(JsonKind.Array, path);
                Pos++; // '['
                SkipWs();
                if (Pos < s.Length && s[Pos] == ']') { Pos++; return arr; }
                int i = 0;
                while (true)
                {
                    SkipWs();
                    arr.AddItem(ParseValue(path + "[" + i + "]", depth + 1));
                    i++;
                    SkipWs();
                    if (Pos >= s.Length) throw Error("unexpected end of input in an array");
                    if (s[Pos] == ',') { Pos++; continue; }
                    if (s[Pos] == ']') { Pos++; return arr; }
                    throw Error("expected ',' or ']'");
                }
            }

            string ParseString()
            {
                Pos++; // opening quote
                var sb = new StringBuilder();
                while (true)
                {
                    if (Pos >= s.Length) throw Error("unterminated string");
                    char c = s[Pos++];
                    if (c == '"') return sb.ToString();
                    if (c < 0x20) { Pos--; throw Error("control character in a string"); }
                    if (c != '\\') { sb.Append(c); continue; }
                    if (Pos >= s.Length) throw Error("unterminated escape");
                    char e = s[Pos++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (Pos + 4 > s.Length) throw Error("short \\u escape");
                            int code;
                            if (!int.TryParse(s.Substring(Pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                                throw Error("bad \\u escape");
                            sb.Append((char)code);
                            Pos += 4;
                            break;
                        default:
                            Pos--;
                            throw Error("bad escape '\\" + e + "'");
                    }
                }
            }

            double ParseNumber()
            {
                // Grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
                int start = Pos;
                if (s[Pos] == '-') Pos++;
                if (Pos >= s.Length) throw Error("bad number");
                if (s[Pos] == '0') Pos++;
                else if (s[Pos] >= '1' && s[Pos] <= '9') { while (Pos < s.Length && s[Pos] >= '0' && s[Pos] <= '9') Pos++; }
                else throw Error("bad number");
                if (Pos < s.Length && s[Pos] == '.')
                {
                    Pos++;
                    int d = Pos;
                    while (Pos < s.Length && s[Pos] >= '0' && s[Pos] <= '9') Pos++;
                    if (Pos == d) throw Error("bad number: digits expected after '.'");
                }
                if (Pos < s.Length && (s[Pos] == 'e' || s[Pos] == 'E'))
                {
                    Pos++;
                    if (Pos < s.Length && (s[Pos] == '+' || s[Pos] == '-')) Pos++;
                    int d = Pos;
                    while (Pos < s.Length && s[Pos] >= '0' && s[Pos] <= '9') Pos++;
                    if (Pos == d) throw Error("bad number: digits expected in the exponent");
                }
                double value;
                if (!double.TryParse(s.Substring(start, Pos - start), NumberStyles.Float, CultureInfo.InvariantCulture, out value)
                    || double.IsInfinity(value))
                    throw Error("number out of range");
                return value;
            }
        }
    }
}
