// A voice pack (docs/voice.md, schemas/voice.schema.json): what upstream's frontend_zero_shot computes from a reference
// recording, computed once by `python -m packager voice`. A 1:1 port of packager/frontend/voicepack.py `load`:
//   voice.json (strict JSON, validated against schemas/voice.schema.json itself: Schemas.Voice, the schema file's
//   text generated into the runtime, checked by JsonSchema) -> exactly the four arrays -> each file a plain name inside the folder, not a symbolic link ->
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
        public const string VoiceFile = "voice.json";
        public const string Suffix = ".voice";
        public const string SystemPrompt = FrontendConstants.SystemPrompt;

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
        /// <summary>Qwen2 ids of the zero-shot prompt text (SystemPrompt + EndOfPrompt + transcript).</summary>
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
            CheckSchema(meta, origin);

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
                                              "a name like " + name + ".npy.bytes", JsonSchema.Quote(rel));
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
                int[] shape = Shape(e.Get("shape"));
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
            if (!BundleFiles.IsSha256Hex(modelId)) throw new BundleException(where, "model id is not a sha256", "64 lowercase hex digits", JsonSchema.Quote(modelId ?? ""));
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

        static JsonSchema schema;

        /// <summary>schemas/voice.schema.json (Schemas.Voice), loaded once.</summary>
        static JsonSchema Schema
        {
            get { return schema ?? (schema = new JsonSchema(Schemas.Voice, Schemas.VoiceFile)); }
        }

        /// <summary>voice.json against the schema, then the ranges this reader holds in ints and longs.</summary>
        static void CheckSchema(JsonValue meta, string origin)
        {
            var e = Schema.Validate(meta);
            if (e != null) throw Invalid(origin, e.At, e.Message, e.Expected, e.Found);
            foreach (var a in meta.Get("arrays").Items)
            {
                var bytes = a.Get("bytes");
                if (bytes.NumberValue > long.MaxValue / 2) throw Invalid(origin, bytes, "out of range", "< 2^62", JsonSchema.Show(bytes));
                foreach (var d in a.Get("shape").Items)
                    if (d.NumberValue > int.MaxValue) throw Invalid(origin, d, "dim too large", "< 2^31", JsonSchema.Show(d));
            }
            var ratio = meta.Get("prompt").Get("token_mel_ratio");
            if (ratio.NumberValue > int.MaxValue) throw Invalid(origin, ratio, "out of range", "< 2^31", JsonSchema.Show(ratio));
        }

        static BundleException Invalid(string origin, JsonValue at, string message, string expected, string found)
        {
            return new BundleException(origin + ": " + (at.Path == "$" ? "(root)" : at.Path),
                                       "is not a valid voice pack: " + message + " (" + Schemas.VoiceFile + ")", expected, found);
        }

        static int[] Shape(JsonValue v)
        {
            var r = new int[v.Items.Count];
            for (int i = 0; i < r.Length; i++) r[i] = (int)v.Items[i].NumberValue;
            return r;
        }
    }
}
