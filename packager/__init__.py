"""CosyVoice3 -> Unity Sentis bundle packager."""

__version__ = "0.1.0"
GENERATOR_NAME = "cosyvoice3-unity-packager"
