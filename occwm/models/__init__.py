"""Networks and mmengine models: the sparse tokenizer and the trajectory-conditioned DiT forecaster."""
