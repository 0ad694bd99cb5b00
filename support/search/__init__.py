"""Knowledge-base search: embedder, versioned FAISS store, BM25 and hybrid fusion.

Plain typed Python with no Django imports; `support.retrieval` / `support.backends` wire it
to settings and models. Heavy resources (the embedding model, index files) load lazily.
"""
