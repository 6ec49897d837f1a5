"""The flow decoder: frontend (token embedding, pre-lookahead, upsampling) and the DiT estimator."""
