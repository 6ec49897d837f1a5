"""CAMPPlus speaker embedding: Kaldi fbank graph + the CAMPPlus network."""
