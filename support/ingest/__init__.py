"""Knowledge-base ingestion: vet an upload, parse it into blocks, chunk it for embedding.

Plain Python with no Django imports; the ingest service calls `parse_isolated` (PDF and DOCX in
a limited child process) then `chunk` and stores
the `ChunkDraft`s. Nothing here loads the embedding model: `embedding_token_counter` loads
only its tokenizer (a few MB, once per process).
"""

from ..text import sentences
from .chunking import (
    ChunkDraft,
    TokenCounter,
    chunk,
    embedding_model_dir,
    embedding_token_counter,
    reset_embedding_token_counter,
)
from .detect import DEFAULT_MAX_BYTES, EXTENSIONS, detect_type, safe_filename
from .document import Block, BlockKind, FileType, ParsedDocument
from .errors import IngestError, IngestErrorCode
from .parsers import DEFAULT_ZIP_LIMITS, ZipLimits, parse
from .sandbox import DEFAULT_PARSE_LIMITS, ParseLimits, parse_isolated

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_PARSE_LIMITS",
    "DEFAULT_ZIP_LIMITS",
    "EXTENSIONS",
    "Block",
    "BlockKind",
    "ChunkDraft",
    "FileType",
    "IngestError",
    "IngestErrorCode",
    "ParseLimits",
    "ParsedDocument",
    "TokenCounter",
    "ZipLimits",
    "chunk",
    "detect_type",
    "embedding_model_dir",
    "embedding_token_counter",
    "parse",
    "parse_isolated",
    "reset_embedding_token_counter",
    "safe_filename",
    "sentences",
]
