"""RAG operators: embeddings, Chroma, LLM generation."""
