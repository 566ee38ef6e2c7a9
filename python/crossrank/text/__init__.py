"""Text handling: the BM25 analyzer, Hugging Face tokenization, pair packing and token windows."""
