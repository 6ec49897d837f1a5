// A voice pack (docs/voice.md, schemas/voice.schema.json): what upstream's frontend_zero_shot computes from a reference
// recording, computed once by `python -m packager voice`. A 1:1 port of packager/voicepack.py `load`:
//   voice.json (strict JSON, checked against the schema by hand: required / unknown keys, types, consts, enums,
//   patterns, ranges) -> exactly the four arrays -> each file a plain name inside the folder, not a symbolic link ->
//   size + sha256 as voice.json says -> NPY dtype / rank / shape as its entry says, batch 1, finite floats ->
//   prompt_speech_feat frames = token_mel_ratio x prompt_speech_token tokens.
// A pack belongs to one model: CheckModel compares voice.json model.model_id with the bundle manifest's
// source.model_id. Every error is a BundleException naming the file and the field, what was expected and found.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using CosyVoice3.Core;

namespace CosyVoice3.Host
{
    public sealed class VoicePack
    {
        public const string Format = "cosyvoice3-voice";
        public const int FormatVersion = 1;
        public const string VoiceFile = "voice.json";
        public const string Suffix = ".voice";
        public const string SystemPrompt = "You are a helpful assistant.";   // upstream's CosyVoice3 prompt prefix

        /// <summary>The four arrays in voice.json order, with their dtype and rank (voicepack.ARRAYS).</summary>
        public static readonly string[] ArrayNames = { "prompt_text", "prompt_speech_token", "prompt_speech_feat", "embedding" };
        static readonly string[] ArrayDTypes = { "int32", "int32", "float32", "float32" };
        static readonly int[] ArrayRanks = { 2, 2, 3, 2 };

        /// <summary>The pack folder (null for a pack made with <see cref="FromArrays"/> or read with <see cref="Parse"/>).</summary>
        public string Folder { get; private set; }
        public string Name { get; private set; }
        /// <summary>voice.json model.model_id: the bundle manifest's source.model_id of the model the pack was made for.</summary>
        public string ModelId { get; private set; }
        /// <summary>voice.json model.bundle: the bundle name the pack was made with (informational).</summary>
        public string BundleName { get; private set; }
        /// <summary>Qwen2 ids of the zero-shot prompt text ("You are a helpful assistant.&lt;|endofprompt|&gt;" + transcript).</summary>
        public int[] PromptText { get; private set; }
        /// <summary>Speech tokens of the reference: upstream's llm_prompt_speech_token and flow_prompt_speech_token.</summary>
        public int[] PromptSpeechToken { get; private set; }
        /// <summary>float32 [1, TokenMelRatio * tokens, 80]: the reference's 24 kHz Matcha mel, time-major.</summary>
        public NpyArray PromptSpeechFeat { get; private set; }
        /// <summary>CAMPPlus speaker embedding (the bundle's flow spk_embed_dim values): upstream's llm_embedding and flow_embedding.</summary>
        public float[] Embedding { get; private set; }
        public int TokenMelRatio { get; private set; }
        /// <summary>voice.json reference.transcript: the words spoken in the reference.</summary>
        public string Transcript { get; private set; }
        /// <summary>voice.json prompt.text: the string <see cref="PromptText"/> tokenizes.</summary>
        public string PromptTextString { get; private set; }
        /// <summary>The parsed voice.json (null for <see cref="FromArrays"/>).</summary>
        public JsonValue Meta { get; private set; }

        VoicePack() { }

        /// <summary>
        /// Read and check the pack in <paramref name="path"/>: a NAME.voice folder, or its voice.json. Files are read
        /// with System.IO (Editor, desktop players); for TextAssets use <see cref="Parse"/>.
        /// </summary>
        public static VoicePack Load(string path)
        {
            if (string.IsNullOrEmpty(path)) throw new BundleException("voice pack", "no path given", "a NAME" + Suffix + " folder", null);
            string vj;
            if (File.Exists(path) && Path.GetFileName(path) == VoiceFile) vj = path;
            else if (Directory.Exists(path))
            {
                vj = Path.Combine(path, VoiceFile);
                if (!File.Exists(vj)) throw new BundleException(path, "has no " + VoiceFile, "a voice pack made by `python -m packager voice`", null);
            }
            else if (File.Exists(path)) throw new BundleException(path, "is not a voice pack folder", "a NAME" + Suffix + " folder with " + VoiceFile, null);
            else throw new BundleException(path, "voice pack not found", "a NAME" + Suffix + " folder made by `python -m packager voice`", "nothing");
            string root = Path.GetDirectoryName(Path.GetFullPath(vj));
            byte[] json;
            try { json = File.ReadAllBytes(vj); }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                throw new BundleException(vj, "cannot be read: " + e.Message, null, null);
            }
            var pack = Parse(json, rel => ReadMember(root, rel), vj);
            pack.Folder = root;
            return pack;
        }

        /// <summary>The bytes of file <paramref name="rel"/> of the pack folder, or null when it is not a file.</summary>
        static byte[] ReadMember(string root, string rel)
        {
            string full = Path.Combine(root, rel);
            string fullRoot = root.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
            if (!Path.GetFullPath(full).StartsWith(fullRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new BundleException(full, "resolves outside the voice pack", "a file inside " + root, null);
            if (File.Exists(full) && (File.GetAttributes(full) & FileAttributes.ReparsePoint) != 0)
                throw new BundleException(full, "is a symbolic link; refusing to follow it", "a plain file inside the voice pack", "a link");
            if (!File.Exists(full)) return null;
            return File.ReadAllBytes(full);
        }

        /// <summary>
        /// Check a pack from voice.json's bytes and a reader of its files (<paramref name="readFile"/>(plain file name)
        /// returns the file's bytes, or null when the pack has no such file; e.g. TextAsset.bytes in Unity).
        /// <paramref name="origin"/> names voice.json in messages.
        /// </summary>
        public static VoicePack Parse(byte[] voiceJson, Func<string, byte[]> readFile, string origin)
        {
            string text;
            try { text = new UTF8Encoding(false, true).GetString(voiceJson); }
            catch (DecoderFallbackException) { throw new BundleException(origin, "not valid JSON: not UTF-8", "UTF-8 text", null); }
            var meta = Json.Parse(text, origin);
            var r = new Reader(origin);
            r.Schema(meta);

            string dir = Path.GetDirectoryName(origin) ?? "";
            var entries = new Dictionary<string, JsonValue>();
            var listed = new List<string>();
            foreach (var e in meta.Get("arrays").Items)
            {
                entries[e.Get("name").StringValue] = e;
                listed.Add(e.Get("name").StringValue);
            }
            if (entries.Count != ArrayNames.Length || listed.Count != ArrayNames.Length)
                throw new BundleException(origin + ": arrays", "wrong set of arrays", string.Join(", ", ArrayNames), string.Join(", ", listed.ToArray()));

            var arrays = new NpyArray[ArrayNames.Length];
            for (int k = 0; k < ArrayNames.Length; k++)
            {
                string name = ArrayNames[k], dtype = ArrayDTypes[k];
                var e = entries[name];
                string field = e.Path + " " + name;
                string rel = e.Get("file").StringValue;
                string reason;
                if (!IsPlainFileName(rel, out reason))
                    throw new BundleException(origin + ": " + e.Path + ".file", "must be a plain file name inside the voice pack (" + reason + ")",
                                              "a name like " + name + ".npy.bytes", Quote(rel));
                string where = Path.Combine(dir, rel) + " (" + field + ")";
                byte[] data = readFile(rel);
                if (data == null) throw new BundleException(where, "missing from the voice pack", "a file listed in " + VoiceFile, "nothing");
                long bytes = (long)e.Get("bytes").NumberValue;
                string sha = e.Get("sha256").StringValue;
                string got = data.LongLength == bytes ? BundleFiles.Sha256Hex(data) : null;
                if (got != sha)
                    throw new BundleException(where, "changed since the voice pack was made (size or sha256 differs from voice.json); make the voice again",
                                              bytes + " bytes, sha256 " + sha, data.LongLength + " bytes" + (got != null ? ", sha256 " + got : ""));
                var arr = Npy.Read(data, where);
                int[] shape = Reader.Shape(e.Get("shape"));
                if (arr.DType == NpyDType.Float16 || arr.DTypeName != dtype || arr.Shape.Length != ArrayRanks[k]
                    || NpyArray.ShapeToString(arr.Shape) != NpyArray.ShapeToString(shape) || e.Get("dtype").StringValue != dtype)
                    throw new BundleException(where, "array does not match its entry",
                                              dtype + " rank " + ArrayRanks[k] + " " + NpyArray.ShapeToString(shape),
                                              arr.DTypeName + " " + arr.ShapeText + (e.Get("dtype").StringValue != dtype ? " (entry dtype " + e.Get("dtype").StringValue + ")" : ""));
                if (arr.Shape[0] != 1) throw new BundleException(where, "batch dimension must be 1", "[1, ...]", arr.ShapeText);
                if (arr.Floats != null)
                    for (int i = 0; i < arr.Floats.Length; i++)
                        if (float.IsNaN(arr.Floats[i]) || float.IsInfinity(arr.Floats[i]))
                            throw new BundleException(where, "holds NaN or Inf", "finite values", arr.Floats[i].ToString("R", CultureInfo.InvariantCulture) + " at flat index " + i);
                arrays[k] = arr;
            }
            var prompt = meta.Get("prompt");
            int ratio = (int)prompt.Get("token_mel_ratio").NumberValue;
            long nTok = arrays[1].Shape[1], nFeat = arrays[2].Shape[1];
            if (nFeat != ratio * nTok)
                throw new BundleException(origin + ": prompt.token_mel_ratio",
                                          "prompt_speech_feat frames must be token_mel_ratio x prompt_speech_token tokens",
                                          (ratio * nTok) + " frames (" + ratio + " x " + nTok + ")", nFeat + " frames");
            return new VoicePack
            {
                Name = meta.Get("name").StringValue,
                ModelId = meta.Get("model").Get("model_id").StringValue,
                BundleName = meta.Get("model").Get("bundle").StringValue,
                PromptText = arrays[0].Ints, PromptSpeechToken = arrays[1].Ints, PromptSpeechFeat = arrays[2], Embedding = arrays[3].Floats,
                TokenMelRatio = ratio,
                Transcript = meta.Get("reference").Get("transcript").StringValue,
                PromptTextString = prompt.Get("text").StringValue,
                Meta = meta,
            };
        }

        /// <summary>A pack from arrays already in memory (tests, or a frontend computed elsewhere); checked like a loaded one.</summary>
        public static VoicePack FromArrays(string name, string modelId, int[] promptText, int[] promptSpeechToken, NpyArray promptSpeechFeat,
                                           float[] embedding, int tokenMelRatio = 2, string transcript = null)
        {
            const string where = "voice pack (from arrays)";
            if (!BundleFiles.IsSha256Hex(modelId)) throw new BundleException(where, "model id is not a sha256", "64 lowercase hex digits", Quote(modelId ?? ""));
            if (promptText == null || promptSpeechToken == null || promptSpeechFeat == null || embedding == null)
                throw new BundleException(where, "an array is missing", string.Join(", ", ArrayNames), null);
            if (tokenMelRatio < 1) throw new BundleException(where, "token_mel_ratio out of range", ">= 1", tokenMelRatio.ToString(CultureInfo.InvariantCulture));
            if (promptSpeechFeat.Floats == null || promptSpeechFeat.Shape.Length != 3 || promptSpeechFeat.Shape[0] != 1)
                throw new BundleException(where + ": prompt_speech_feat", "wrong dtype or shape", "float32 [1, frames, 80]", promptSpeechFeat.DTypeName + " " + promptSpeechFeat.ShapeText);
            if (promptSpeechFeat.Shape[1] != tokenMelRatio * promptSpeechToken.Length)
                throw new BundleException(where, "prompt_speech_feat frames must be token_mel_ratio x prompt_speech_token tokens",
                                          (tokenMelRatio * promptSpeechToken.Length) + " frames", promptSpeechFeat.Shape[1] + " frames");
            foreach (var a in new[] { promptSpeechFeat.Floats, embedding })
                foreach (float x in a)
                    if (float.IsNaN(x) || float.IsInfinity(x)) throw new BundleException(where, "holds NaN or Inf", "finite values", null);
            return new VoicePack
            {
                Name = name ?? "", ModelId = modelId, PromptText = promptText, PromptSpeechToken = promptSpeechToken,
                PromptSpeechFeat = promptSpeechFeat.DType == NpyDType.Float32 ? promptSpeechFeat : NpyArray.FromFloats(promptSpeechFeat.Shape, promptSpeechFeat.Floats),
                Embedding = embedding, TokenMelRatio = tokenMelRatio, Transcript = transcript,
            };
        }

        /// <summary>Refuse a bundle of another model: voice.json model.model_id must equal the manifest's source.model_id.</summary>
        public void CheckModel(BundleManifest manifest)
        {
            if (manifest == null) throw new ArgumentNullException("manifest");
            if (manifest.ModelId == ModelId) return;
            throw new BundleException(Where + ": model.model_id",
                "this voice pack was made for another model (bundle \"" + (BundleName ?? "?") + "\", model_id " + Short(ModelId) + "); make a voice for bundle \""
                + manifest.BundleName + "\" with `python -m packager voice BUNDLE --wav REF.wav --transcript ...`",
                "model_id " + Short(manifest.ModelId) + " of bundle \"" + manifest.BundleName + "\"", Short(ModelId));
        }

        string Where { get { return Folder != null ? Path.Combine(Folder, VoiceFile) : "voice pack \"" + Name + "\""; } }

        static string Short(string id) { return id == null ? "(none)" : id.Length > 12 ? id.Substring(0, 12) + "\u2026" : id; }

        /// <summary>voicepack._safe_member's rule plus the schema's pattern ^[A-Za-z0-9_.-]+\.npy\.bytes$: one path segment.</summary>
        public static bool IsPlainFileName(string rel, out string reason)
        {
            reason = null;
            if (string.IsNullOrEmpty(rel)) { reason = "empty"; return false; }
            if (rel.IndexOf('/') >= 0 || rel.IndexOf('\\') >= 0) { reason = "a path, not a file name"; return false; }
            if (rel == "." || rel == "..") { reason = "'" + rel + "' is not a file"; return false; }
            foreach (char c in rel)
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
                {
                    reason = "character U+" + ((int)c).ToString("X4") + " not allowed";
                    return false;
                }
            if (!rel.EndsWith(".npy.bytes", StringComparison.Ordinal) || rel.Length == ".npy.bytes".Length)
            {
                reason = "not a NAME.npy.bytes file";
                return false;
            }
            return true;
        }

        static string Quote(string s)
        {
            var sb = new StringBuilder("\"");
            foreach (char c in s)
            {
                if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            return sb.Append('"').ToString();
        }

        /// <summary>schemas/voice.schema.json, checked by hand (the errors name the JSON path of the value).</summary>
        sealed class Reader
        {
            readonly string origin;
            public Reader(string origin) { this.origin = origin; }

            BundleException Err(JsonValue at, string message, string expected, string found)
            {
                return new BundleException(origin + ": " + (at.Path == "$" ? "(root)" : at.Path), "is not a valid voice pack: " + message + " (schemas/voice.schema.json)", expected, found);
            }

            static string Show(JsonValue v)
            {
                if (v == null) return "nothing";
                if (v.Kind == JsonKind.String) return Quote(v.StringValue);
                if (v.Kind == JsonKind.Number) return v.NumberValue.ToString("R", CultureInfo.InvariantCulture);
                if (v.Kind == JsonKind.Bool) return v.BoolValue ? "true" : "false";
                return JsonValue.KindName(v.Kind);
            }

            void Object(JsonValue v, string[] required, string[] optional)
            {
                if (v.Kind != JsonKind.Object) throw Err(v, "wrong type", "object", JsonValue.KindName(v.Kind));
                foreach (var k in required)
                    if (!v.Has(k)) throw Err(v, "missing required key \"" + k + "\"", string.Join(", ", required), null);
                if (optional == null) return;   // additionalProperties allowed
                foreach (var kv in v.Members)
                    if (Array.IndexOf(required, kv.Key) < 0 && Array.IndexOf(optional, kv.Key) < 0)
                        throw Err(v, "unknown key \"" + kv.Key + "\"", "only " + string.Join(", ", Concat(required, optional)), kv.Key);
            }

            static string[] Concat(string[] a, string[] b)
            {
                var r = new string[a.Length + b.Length];
                a.CopyTo(r, 0);
                b.CopyTo(r, a.Length);
                return r;
            }

            string Str(JsonValue obj, string key, int minLength = 0, int maxLength = int.MaxValue)
            {
                var v = obj.Get(key);
                if (v == null) return null;   // optional and absent
                if (v.Kind != JsonKind.String) throw Err(v, "wrong type", "string", Show(v));
                int n = CodePoints(v.StringValue);
                if (n < minLength) throw Err(v, "too short", ">= " + minLength + " characters", Show(v));
                if (n > maxLength) throw Err(v, "too long", "<= " + maxLength + " characters", n + " characters");
                return v.StringValue;
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

            void Sha(JsonValue obj, string key)
            {
                var s = Str(obj, key);
                if (!BundleFiles.IsSha256Hex(s)) throw Err(obj.Get(key), "not a sha256", "64 lowercase hex digits", Show(obj.Get(key)));
            }

            void Enum(JsonValue obj, string key, params string[] allowed)
            {
                var v = obj.Get(key);
                if (v.Kind != JsonKind.String || Array.IndexOf(allowed, v.StringValue) < 0)
                    throw Err(v, "value not allowed", "one of " + string.Join(", ", allowed), Show(v));
            }

            void Int(JsonValue obj, string key, double min)
            {
                var v = obj.Get(key);
                if (v == null) return;
                if (!v.IsInteger) throw Err(v, "wrong type", "integer", Show(v));
                if (v.NumberValue < min) throw Err(v, "out of range", ">= " + min.ToString(CultureInfo.InvariantCulture), Show(v));
                if (v.NumberValue > long.MaxValue / 2) throw Err(v, "out of range", "< 2^62", Show(v));
            }

            void Num(JsonValue obj, string key, double min)
            {
                var v = obj.Get(key);
                if (v.Kind != JsonKind.Number) throw Err(v, "wrong type", "number", Show(v));
                if (v.NumberValue < min) throw Err(v, "out of range", ">= " + min.ToString(CultureInfo.InvariantCulture), Show(v));
            }

            public static int[] Shape(JsonValue v)
            {
                var r = new int[v.Items.Count];
                for (int i = 0; i < r.Length; i++) r[i] = (int)v.Items[i].NumberValue;
                return r;
            }

            public void Schema(JsonValue meta)
            {
                Object(meta, new[] { "format", "format_version", "generator", "name", "model", "reference", "prompt", "speech_tokenizer", "features", "arrays" },
                       new string[0]);
                var f = meta.Get("format");
                if (f.Kind != JsonKind.String || f.StringValue != Format) throw Err(f, "unknown format", Quote(Format), Show(f));
                var fv = meta.Get("format_version");
                if (!fv.IsInteger || fv.NumberValue != FormatVersion)
                    throw Err(fv, "unsupported format_version", FormatVersion.ToString(CultureInfo.InvariantCulture), Show(fv));

                var g = meta.Get("generator");
                Object(g, new[] { "name", "version" }, new string[0]);
                Str(g, "name");
                Str(g, "version");
                Str(meta, "name", 1, 200);

                var m = meta.Get("model");
                Object(m, new[] { "model_id", "bundle", "source" }, new string[0]);
                Sha(m, "model_id");
                Str(m, "bundle");
                var s = m.Get("source");
                Object(s, new[] { "kind" }, new[] { "preset", "seed", "name" });
                Enum(s, "kind", "preset", "checkpoint");
                Str(s, "preset");
                Int(s, "seed", double.NegativeInfinity);
                Str(s, "name");

                var rf = meta.Get("reference");
                Object(rf, new[] { "file_name", "sha256", "bytes", "sample_rate", "channels", "seconds", "transcript" }, new string[0]);
                Str(rf, "file_name");
                Sha(rf, "sha256");
                Int(rf, "bytes", 0);
                Int(rf, "sample_rate", 16000);
                Int(rf, "channels", 1);
                Num(rf, "seconds", 0);
                Str(rf, "transcript", 1);

                var p = meta.Get("prompt");
                Object(p, new[] { "text", "tokens", "mel_frames", "token_mel_ratio", "trimmed_from" }, new string[0]);
                Str(p, "text");
                Int(p, "tokens", 1);
                Int(p, "mel_frames", 1);
                Int(p, "token_mel_ratio", 1);
                if (p.Get("token_mel_ratio").NumberValue > int.MaxValue) throw Err(p.Get("token_mel_ratio"), "out of range", "< 2^31", Show(p.Get("token_mel_ratio")));
                var t = p.Get("trimmed_from");
                Object(t, new[] { "tokens", "mel_frames" }, new string[0]);
                Int(t, "tokens", 0);
                Int(t, "mel_frames", 0);

                var st = meta.Get("speech_tokenizer");
                Object(st, new[] { "kind", "sha256", "bytes", "codebook_size" }, new string[0]);
                Enum(st, "kind", "speech_tokenizer_v3", "tiny_speech_tokenizer_v3");
                Sha(st, "sha256");
                Int(st, "bytes", 0);
                Int(st, "codebook_size", 1);

                Object(meta.Get("features"), new string[0], null);

                var arrays = meta.Get("arrays");
                if (arrays.Kind != JsonKind.Array) throw Err(arrays, "wrong type", "array", JsonValue.KindName(arrays.Kind));
                if (arrays.Items.Count != ArrayNames.Length) throw Err(arrays, "wrong number of arrays", ArrayNames.Length + " items", arrays.Items.Count + " items");
                foreach (var a in arrays.Items)
                {
                    Object(a, new[] { "name", "file", "dtype", "shape", "sha256", "bytes" }, new[] { "description" });
                    Enum(a, "name", ArrayNames);
                    var file = Str(a, "file");
                    string reason;
                    if (!IsPlainFileName(file, out reason))
                        throw Err(a.Get("file"), "not a plain NAME.npy.bytes file name (" + reason + ")", "^[A-Za-z0-9_.-]+\\.npy\\.bytes$", Show(a.Get("file")));
                    Enum(a, "dtype", "float32", "int32");
                    var shape = a.Get("shape");
                    if (shape.Kind != JsonKind.Array) throw Err(shape, "wrong type", "array of integers", JsonValue.KindName(shape.Kind));
                    if (shape.Items.Count < 1 || shape.Items.Count > 4) throw Err(shape, "wrong rank", "1 to 4 dims", shape.Items.Count + " dims");
                    foreach (var d in shape.Items)
                    {
                        if (!d.IsInteger || d.NumberValue < 0) throw Err(d, "bad dim", "an integer >= 0", Show(d));
                        if (d.NumberValue > int.MaxValue) throw Err(d, "dim too large", "< 2^31", Show(d));
                    }
                    Sha(a, "sha256");
                    Int(a, "bytes", 0);
                    Str(a, "description");
                }
            }
        }
    }
}
