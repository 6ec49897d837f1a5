"""The HiFT vocoder with its F0 predictor, SineGen2 noise and STFT/iSTFT in the graph."""
