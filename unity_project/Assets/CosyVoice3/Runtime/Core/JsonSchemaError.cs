// One failed JSON Schema check (JsonSchema.Validate): where, what, what was expected and what was found.

namespace CosyVoice3.Core
{
    public sealed class JsonSchemaError
    {
        /// <summary>The instance value that failed (its Path names it, "$" for the document itself).</summary>
        public JsonValue At;
        public string Message, Expected, Found;
    }
}
