"""Tokenizer built from a GGUF file's own vocabulary, with UTF-8-safe streaming decoding.

We tokenize in Python (HF ``tokenizers``) instead of asking the backend because the
llama.cpp inside ctransformers 0.2.27 predates byte-level BPE support: it cannot tokenize
SmolLM2 correctly. Both backends are fed token ids, so both see identical input.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from .errors import ModelFileError
from .gguf_file import GgufFile, read_gguf

logger = logging.getLogger(__name__)


class TokenType(IntEnum):
    """``tokenizer.ggml.token_type`` values (llama.cpp's llama_token_type)."""

    UNDEFINED = 0
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


# Texts llama.cpp also treats as end of generation when they are control tokens: chat
# models end a turn with these even when the GGUF's eos id names another token.
_END_OF_GENERATION_TEXTS = frozenset(
    {
        "<|endoftext|>",
        "<|im_end|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|end|>",
        "<end_of_turn>",
        "<|end_of_text|>",
        "<EOT>",
        "</s>",
        "<｜end▁of▁sentence｜>",
    }
)

# Pre-tokenizer split rules by ``tokenizer.ggml.pre``, copied from llama.cpp (llama-vocab.cpp).
_LLAMA3_REGEX = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_REGEX = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT2_PRE = frozenset({"default", "gpt-2", "gpt2", "olmo", "jais", "poro-chat", "viking"})
_DIGITS_THEN_GPT2_PRE = frozenset(
    {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}
)
_LLAMA3_PRE = frozenset({"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"})
_QWEN2_PRE = frozenset({"qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan"})


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character stand-ins for bytes, inverted (char -> byte)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


@dataclass(frozen=True, slots=True)
class TokenizerInfo:
    """What the rest of the package needs to know about the vocabulary's special tokens."""

    bos_token_id: int | None
    eos_token_id: int | None
    end_of_generation_ids: frozenset[int]
    bos_token: str
    eos_token: str
    add_bos_token: bool
    chat_template: str | None
    special_token_texts: tuple[str, ...]


class GgufTokenizer:
    """Byte-level BPE tokenizer ("gpt2" GGUF vocabularies) built from GGUF metadata.

    Verified against llama.cpp on SmolLM2; the Llama 3 and Qwen 2 split rules are copied
    from llama.cpp but untested here. SentencePiece ("llama") vocabularies are refused.
    """

    def __init__(self, gguf: GgufFile) -> None:
        path = gguf.path
        model = gguf.get_str("tokenizer.ggml.model")
        tokens = gguf.get_list("tokenizer.ggml.tokens")
        if tokens is None:
            raise ModelFileError(path, "no tokenizer.ggml.tokens vocabulary in the metadata")
        if model != "gpt2":
            raise ModelFileError(
                path,
                f"tokenizer model {model!r} is not supported (only byte-level BPE 'gpt2')",
            )
        merges = gguf.get_list("tokenizer.ggml.merges")
        if merges is None:
            raise ModelFileError(path, "byte-level BPE vocabulary without tokenizer.ggml.merges")
        raw_types = gguf.get_list("tokenizer.ggml.token_type") or [TokenType.NORMAL] * len(tokens)
        if len(raw_types) != len(tokens):
            raise ModelFileError(path, "tokenizer.ggml.token_type and tokens differ in length")
        self._tokens: list[str] = tokens
        self._vocab_size = len(tokens)
        # Almost every token is NORMAL; keep only the exceptions (plain ints: enum lookups
        # per token cost a quarter of a second on a 49k vocabulary).
        self._types: dict[int, TokenType] = {
            i: _token_type(t) for i, t in enumerate(raw_types) if t != TokenType.NORMAL
        }
        self._token_bytes = self._build_token_bytes()
        self._special_ids = frozenset(
            i
            for i, t in self._types.items()
            if t in (TokenType.CONTROL, TokenType.UNKNOWN, TokenType.UNUSED)
        )
        self._pre = gguf.get_str("tokenizer.ggml.pre") or "default"
        self._hf_model = self._build_model(gguf, merges)
        self._with_special = self._build_hf(parse_special=True)
        self._plain: Tokenizer | None = None  # built on first use; rarely needed
        self.info = self._build_info(gguf)

    @classmethod
    def from_file(cls, path: Path) -> GgufTokenizer:
        return cls(read_gguf(path))

    # -- construction -------------------------------------------------------------------
    def _build_token_bytes(self) -> list[bytes]:
        table = str.maketrans({c: chr(b) for c, b in _byte_decoder().items()})
        out: list[bytes] = []
        for token in self._tokens:
            try:
                out.append(token.translate(table).encode("latin-1"))
            except UnicodeEncodeError:
                out.append(token.encode("utf-8"))
        for i, ttype in self._types.items():
            if ttype in (TokenType.CONTROL, TokenType.USER_DEFINED, TokenType.UNKNOWN):
                out[i] = self._tokens[i].encode("utf-8")  # stored as text, not byte-level
        return out

    def _build_model(self, gguf: GgufFile, merges: list[str]) -> models.BPE:
        vocab = {token: i for i, token in enumerate(self._tokens)}
        pairs = []
        for merge in merges:
            left, sep, right = merge.partition(" ")
            if not sep:
                raise ModelFileError(gguf.path, f"malformed BPE merge {merge!r}")
            pairs.append((left, right))
        return models.BPE(vocab=vocab, merges=pairs, ignore_merges=self._pre in _LLAMA3_PRE)

    def _build_hf(self, *, parse_special: bool) -> Tokenizer:
        tok = Tokenizer(self._hf_model)
        tok.pre_tokenizer = _pre_tokenizer(self._pre)
        tok.decoder = decoders.ByteLevel()
        if parse_special:
            tok.add_special_tokens(
                [
                    AddedToken(
                        self._tokens[i], special=ttype == TokenType.CONTROL, normalized=False
                    )
                    for i, ttype in sorted(self._types.items())
                    if ttype in (TokenType.CONTROL, TokenType.USER_DEFINED)
                ]
            )
        return tok

    def _build_info(self, gguf: GgufFile) -> TokenizerInfo:
        def valid(token_id: int | None) -> int | None:
            return token_id if token_id is not None and 0 <= token_id < self._vocab_size else None

        bos = valid(gguf.get_int("tokenizer.ggml.bos_token_id"))
        eos = valid(gguf.get_int("tokenizer.ggml.eos_token_id"))
        eog = {
            i
            for i in (
                eos,
                valid(gguf.get_int("tokenizer.ggml.eot_token_id")),
                valid(gguf.get_int("tokenizer.ggml.eom_token_id")),
            )
            if i is not None
        }
        eog.update(
            i
            for i, ttype in self._types.items()
            if ttype in (TokenType.CONTROL, TokenType.USER_DEFINED)
            and self._tokens[i] in _END_OF_GENERATION_TEXTS
        )
        add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token")
        return TokenizerInfo(
            bos_token_id=bos,
            eos_token_id=eos,
            end_of_generation_ids=frozenset(eog),
            bos_token=self._tokens[bos] if bos is not None else "",
            eos_token=self._tokens[eos] if eos is not None else "",
            # llama.cpp's default for BPE vocabularies is not to add BOS.
            add_bos_token=bool(add_bos) and bos is not None,
            chat_template=gguf.get_str("tokenizer.chat_template"),
            special_token_texts=tuple(
                self._tokens[i]
                for i, ttype in sorted(self._types.items())
                if ttype == TokenType.CONTROL and self._tokens[i]
            ),
        )

    # -- public API ---------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def encode(
        self, text: str, *, parse_special: bool = True, add_bos: bool | None = None
    ) -> list[int]:
        """Token ids for ``text``; special-token texts become their ids if ``parse_special``."""
        if parse_special:
            hf = self._with_special
        else:
            if self._plain is None:
                self._plain = self._build_hf(parse_special=False)
            hf = self._plain
        ids: list[int] = hf.encode(text, add_special_tokens=False).ids
        bos = self.info.bos_token_id
        want_bos = self.info.add_bos_token if add_bos is None else add_bos
        if want_bos and bos is not None and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        raw = b"".join(self.token_bytes(i, skip_special=skip_special) for i in ids)
        return raw.decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int, *, skip_special: bool = True) -> bytes:
        if not 0 <= token_id < self._vocab_size:
            return b""
        if skip_special and token_id in self._special_ids:
            return b""
        return self._token_bytes[token_id]

    def token_text(self, token_id: int) -> str:
        """The vocabulary entry as stored (byte-level form for normal tokens)."""
        return self._tokens[token_id]

    def token_id(self, text: str) -> int | None:
        token_id = self._with_special.token_to_id(text)
        return None if token_id is None else int(token_id)

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    def detokenizer(self, *, skip_special: bool = True) -> StreamingDetokenizer:
        return StreamingDetokenizer(self, skip_special=skip_special)


class StreamingDetokenizer:
    """Turns a stream of token ids into text without ever splitting a UTF-8 character.

    A multi-byte character (emoji, CJK, accents) is often spread over several byte-level
    tokens; bytes of an incomplete character are held back until the rest arrives.
    """

    __slots__ = ("_decoder", "_skip_special", "_tokenizer")

    def __init__(self, tokenizer: GgufTokenizer, *, skip_special: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now complete (possibly empty)."""
        raw = self._tokenizer.token_bytes(token_id, skip_special=self._skip_special)
        return str(self._decoder.decode(raw, final=False))

    def push_many(self, token_ids: Sequence[int]) -> str:
        return "".join(self.push(i) for i in token_ids)

    def flush(self) -> str:
        """End of stream: dangling bytes of a never-completed character become U+FFFD."""
        return str(self._decoder.decode(b"", final=True))


def _token_type(raw: object) -> TokenType:
    try:
        return TokenType(int(raw))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return TokenType.NORMAL


def _pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    byte_level_split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS_THEN_GPT2_PRE:
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level_split]
        )
    if pre in _LLAMA3_PRE or pre in _QWEN2_PRE:
        pattern = _LLAMA3_REGEX if pre in _LLAMA3_PRE else _QWEN2_REGEX
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    if pre not in _GPT2_PRE:
        logger.warning("unknown tokenizer.ggml.pre %r; using GPT-2 pre-tokenization", pre)
    return byte_level_split
