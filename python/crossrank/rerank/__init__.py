"""Second stages: cross-encoder, bi-encoder, ColBERT (MaxSim) and LLM rerankers, and score calibration."""
