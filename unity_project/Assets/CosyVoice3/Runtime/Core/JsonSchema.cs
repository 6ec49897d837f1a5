// A JSON Schema (draft 2020-12) validator for the keywords our schemas use, and only those: type, const, enum,
// required, properties, additionalProperties (false or a schema), items, minItems, maxItems, minLength, maxLength
// (in code points), minimum, maximum, pattern (a regular expression search, as Python's jsonschema does) and $ref to
// "#/$defs/NAME"; the annotations $schema, $id, title and description are read past. A schema with any other keyword
// is refused when it is loaded, so a schema file that grows a keyword this validator does not implement fails loudly
// instead of being half checked. Numbers compare by value (1.0 is an integer and equals 1, as in jsonschema).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace CosyVoice3.Core
{
    public sealed class JsonSchema
    {
        static readonly string[] Keywords =
        {
            "$schema", "$id", "title", "description", "$defs", "$ref", "type", "const", "enum", "required", "properties",
            "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum",
            "pattern",
        };

        readonly JsonValue root;
        readonly Dictionary<string, Regex> patterns = new Dictionary<string, Regex>(StringComparer.Ordinal);

        /// <summary>The schema in <paramref name="text"/>, named <paramref name="name"/> in errors (e.g. its file).</summary>
        public JsonSchema(string text, string name)
        {
            Name = name;
            root = Json.Parse(text, name);
            CheckKeywords(root);
        }

        public string Name { get; private set; }

        /// <summary>The first value of <paramref name="instance"/> that breaks the schema, or null when it conforms.</summary>
        public JsonSchemaError Validate(JsonValue instance)
        {
            return Check(root, instance);
        }

        void CheckKeywords(JsonValue schema)
        {
            if (schema.Kind == JsonKind.Bool) return;
            if (schema.Kind != JsonKind.Object) throw Unsupported(schema, "a schema must be an object or a boolean");
            foreach (var kv in schema.Members)
            {
                if (Array.IndexOf(Keywords, kv.Key) < 0)
                    throw Unsupported(kv.Value, "keyword \"" + kv.Key + "\" is not implemented by JsonSchema.cs");
                switch (kv.Key)
                {
                    case "properties":
                    case "$defs":
                        foreach (var sub in kv.Value.Members) CheckKeywords(sub.Value);
                        break;
                    case "additionalProperties":
                    case "items":
                        CheckKeywords(kv.Value);
                        break;
                    case "$ref":
                        Resolve(kv.Value);
                        break;
                    case "pattern":
                        Pattern(kv.Value.StringValue);
                        break;
                }
            }
        }

        BundleException Unsupported(JsonValue at, string why)
        {
            return new BundleException(Name + ": " + at.Path, "unsupported schema: " + why, "the keywords " + string.Join(", ", Keywords), null);
        }

        JsonValue Resolve(JsonValue reference)
        {
            const string prefix = "#/$defs/";
            string r = reference.Kind == JsonKind.String ? reference.StringValue : "";
            var defs = root.Get("$defs");
            var target = r.StartsWith(prefix, StringComparison.Ordinal) && defs != null ? defs.Get(r.Substring(prefix.Length)) : null;
            if (target == null) throw Unsupported(reference, "$ref \"" + r + "\" is not a \"#/$defs/NAME\" of this schema");
            return target;
        }

        Regex Pattern(string pattern)
        {
            Regex re;
            if (!patterns.TryGetValue(pattern, out re))
            {
                re = new Regex(pattern, RegexOptions.CultureInvariant);
                patterns[pattern] = re;
            }
            return re;
        }

        static JsonSchemaError Fail(JsonValue at, string message, string expected, string found)
        {
            return new JsonSchemaError { At = at, Message = message, Expected = expected, Found = found };
        }

        JsonSchemaError Check(JsonValue schema, JsonValue v)
        {
            if (schema.Kind == JsonKind.Bool)
                return schema.BoolValue ? null : Fail(v, "no value allowed here", "nothing", Show(v));
            var reference = schema.Get("$ref");
            if (reference != null)
            {
                var e = Check(Resolve(reference), v);
                if (e != null) return e;
            }
            var type = schema.Get("type");
            if (type != null && !TypeMatches(type, v))
                return Fail(v, "wrong type", TypeNames(type), v.Kind == JsonKind.Object || v.Kind == JsonKind.Array ? JsonValue.KindName(v.Kind) : Show(v));
            var constant = schema.Get("const");
            if (constant != null && !Same(constant, v)) return Fail(v, "wrong value", Show(constant), Show(v));
            var choices = schema.Get("enum");
            if (choices != null)
            {
                bool any = false;
                foreach (var c in choices.Items) any |= Same(c, v);
                if (!any)
                {
                    var names = new List<string>();
                    foreach (var c in choices.Items) names.Add(c.Kind == JsonKind.String ? c.StringValue : Show(c));
                    return Fail(v, "value not allowed", "one of " + string.Join(", ", names.ToArray()), Show(v));
                }
            }
            switch (v.Kind)
            {
                case JsonKind.Object: return CheckObject(schema, v);
                case JsonKind.Array: return CheckArray(schema, v);
                case JsonKind.String: return CheckString(schema, v);
                case JsonKind.Number: return CheckNumber(schema, v);
                default: return null;
            }
        }

        JsonSchemaError CheckObject(JsonValue schema, JsonValue v)
        {
            var required = schema.Get("required");
            if (required != null)
                foreach (var k in required.Items)
                    if (!v.Has(k.StringValue))
                        return Fail(v, "missing required key \"" + k.StringValue + "\"", Names(required), null);
            var properties = schema.Get("properties");
            var additional = schema.Get("additionalProperties");
            if (additional != null)
                foreach (var kv in v.Members)
                {
                    if (properties != null && properties.Has(kv.Key)) continue;
                    if (additional.Kind == JsonKind.Bool && !additional.BoolValue)
                        return Fail(v, "unknown key \"" + kv.Key + "\"", "only " + (properties != null ? KeysOf(properties) : "no keys"), kv.Key);
                    var e = Check(additional, kv.Value);
                    if (e != null) return e;
                }
            if (properties != null)
                foreach (var p in properties.Members)
                {
                    var member = v.Get(p.Key);
                    if (member == null) continue;
                    var e = Check(p.Value, member);
                    if (e != null) return e;
                }
            return null;
        }

        JsonSchemaError CheckArray(JsonValue schema, JsonValue v)
        {
            int n = v.Items.Count;
            var min = schema.Get("minItems");
            if (min != null && n < min.NumberValue) return Fail(v, "too few items", ">= " + Num(min.NumberValue) + " items", n + " items");
            var max = schema.Get("maxItems");
            if (max != null && n > max.NumberValue) return Fail(v, "too many items", "<= " + Num(max.NumberValue) + " items", n + " items");
            var items = schema.Get("items");
            if (items != null)
                foreach (var item in v.Items)
                {
                    var e = Check(items, item);
                    if (e != null) return e;
                }
            return null;
        }

        JsonSchemaError CheckString(JsonValue schema, JsonValue v)
        {
            int n = CodePoints(v.StringValue);
            var min = schema.Get("minLength");
            if (min != null && n < min.NumberValue) return Fail(v, "too short", ">= " + Num(min.NumberValue) + " characters", Show(v));
            var max = schema.Get("maxLength");
            if (max != null && n > max.NumberValue) return Fail(v, "too long", "<= " + Num(max.NumberValue) + " characters", n + " characters");
            var pattern = schema.Get("pattern");
            if (pattern != null && !Pattern(pattern.StringValue).IsMatch(v.StringValue))
                return Fail(v, "does not match the pattern", pattern.StringValue, Show(v));
            return null;
        }

        static JsonSchemaError CheckNumber(JsonValue schema, JsonValue v)
        {
            var min = schema.Get("minimum");
            if (min != null && v.NumberValue < min.NumberValue) return Fail(v, "out of range", ">= " + Num(min.NumberValue), Show(v));
            var max = schema.Get("maximum");
            if (max != null && v.NumberValue > max.NumberValue) return Fail(v, "out of range", "<= " + Num(max.NumberValue), Show(v));
            return null;
        }

        static bool TypeMatches(JsonValue type, JsonValue v)
        {
            if (type.Kind == JsonKind.Array)
            {
                foreach (var t in type.Items) if (TypeMatches(t, v)) return true;
                return false;
            }
            switch (type.StringValue)
            {
                case "integer": return v.IsInteger;
                case "number": return v.Kind == JsonKind.Number;
                case "string": return v.Kind == JsonKind.String;
                case "boolean": return v.Kind == JsonKind.Bool;
                case "object": return v.Kind == JsonKind.Object;
                case "array": return v.Kind == JsonKind.Array;
                case "null": return v.Kind == JsonKind.Null;
                default: throw new BundleException(type.Path, "unsupported schema: unknown type \"" + type.StringValue + "\"", "a JSON Schema type", type.StringValue);
            }
        }

        static string TypeNames(JsonValue type)
        {
            if (type.Kind != JsonKind.Array) return type.StringValue;
            return Names(type).Replace(", ", " or ");
        }

        /// <summary>JSON equality as jsonschema has it: numbers by value, a boolean is never a number.</summary>
        static bool Same(JsonValue a, JsonValue b)
        {
            if (a.Kind != b.Kind) return false;
            switch (a.Kind)
            {
                case JsonKind.Null: return true;
                case JsonKind.Bool: return a.BoolValue == b.BoolValue;
                case JsonKind.Number: return a.NumberValue == b.NumberValue;
                case JsonKind.String: return a.StringValue == b.StringValue;
                case JsonKind.Array:
                    if (a.Items.Count != b.Items.Count) return false;
                    for (int i = 0; i < a.Items.Count; i++) if (!Same(a.Items[i], b.Items[i])) return false;
                    return true;
                default:
                    if (a.Members.Count != b.Members.Count) return false;
                    foreach (var kv in a.Members)
                    {
                        var other = b.Get(kv.Key);
                        if (other == null || !Same(kv.Value, other)) return false;
                    }
                    return true;
            }
        }

        static string Names(JsonValue list)
        {
            var names = new List<string>();
            foreach (var x in list.Items) names.Add(x.StringValue);
            return string.Join(", ", names.ToArray());
        }

        static string KeysOf(JsonValue obj)
        {
            var names = new List<string>();
            foreach (var kv in obj.Members) names.Add(kv.Key);
            return string.Join(", ", names.ToArray());
        }

        static string Num(double d) { return d.ToString("R", CultureInfo.InvariantCulture); }

        /// <summary>A value as an error message shows it: strings quoted with non-ASCII escaped, numbers exact.</summary>
        public static string Show(JsonValue v)
        {
            if (v == null) return "nothing";
            switch (v.Kind)
            {
                case JsonKind.String: return Quote(v.StringValue);
                case JsonKind.Number: return Num(v.NumberValue);
                case JsonKind.Bool: return v.BoolValue ? "true" : "false";
                default: return JsonValue.KindName(v.Kind);
            }
        }

        /// <summary><paramref name="s"/> in double quotes, control and non-ASCII characters as \uXXXX.</summary>
        public static string Quote(string s)
        {
            var sb = new StringBuilder("\"");
            foreach (char c in s)
            {
                if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            return sb.Append('"').ToString();
        }

        static int CodePoints(string s)
        {
            int n = 0;
            for (int i = 0; i < s.Length; i++)
            {
                if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
                n++;
            }
            return n;
        }
    }
}
