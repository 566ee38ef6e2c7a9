"""First stages: BM25 and dense (FAISS) retrieval, and fusion of their lists."""
