"""Export a (fine-tuned, merged) torch chat model as GGUF and verify the file (issue 15 item 2).

`export_gguf` writes the weights of a transformers Llama-architecture model into a GGUF file
shaped like the file it was loaded from (`source`): the same metadata (tokenizer, chat
template, architecture, context length, rope), the same tensor names and order, 2-D weight
matrices in the requested type, 1-D tensors (norms) in F32, plus `smallbot.*` keys saying
where the weights come from. transformers un-permutes the q/k projections of llama GGUF files
when it loads them (LlamaTensorProcessor in modeling_gguf_pytorch_utils.py): the export
permutes them back, exactly as llama.cpp's convert_hf_to_gguf.py does. The file appears at
`out` whole or not at all (temp file + os.replace).

The token embedding (tied to the output projection in SmolLM2) stays Q8_0 whatever the
qtype, as in the shipped Q4_1 file: every greedy choice is an argmax over its 49,152 rows, so
it is where 4-bit error would show first, and it costs 28 MB in Q8_0 against 15 MB in Q4_1.
With qtype F32 every tensor is F32 (a lossless reference).

`export_verify` decodes the same prompts greedily in torch (`chat_torch.greedy_tokens`) and in
the exported file through the project's own backend classes (llama-cpp-python when it is
importable, else ctransformers, whose compatibility copy is made by gguf_compat as for any
GGUF) and compares the token sequences. The two never agree perfectly even with identical
weights (ggml quantizes activations to 8 bits in its quantized matrix products; torch
computes in float32), so the pass mark per qtype was calibrated by exporting the unmodified
shipped model (bench/chat_export.py; figures in docs/learning.md, "Export and verification").
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from ..exceptions import SupportError
from ..llm.base import ChatModel, DecodingChatModel, GenerationParams
from ..llm.errors import BackendUnavailableError
from ..llm.gguf_compat import file_sha256, metadata_copy
from ..llm.gguf_file import GgufFile, read_gguf

if TYPE_CHECKING:
    from gguf import GGMLQuantizationType
    from transformers import PreTrainedModel

SMALLBOT_PREFIX: Final = "smallbot."
# Bump when the meaning of the smallbot.* keys changes.
EXPORT_FORMAT_VERSION: Final = 1
QTYPES: Final = ("Q8_0", "Q4_1", "Q4_0", "F32")
# Kept at Q8_0 (F32 for an F32 export): see the module docstring.
_EMBEDDING_TENSORS: Final = frozenset({"token_embd.weight", "output.weight"})
# The architectures whose HF -> GGUF tensor layout this module knows (q/k permutation).
SUPPORTED_ARCHITECTURES: Final = frozenset({"llama"})
_LLAMA_FILE_TYPES: Final = {"F32": 0, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7}  # gguf.LlamaFileType
VERIFY_MAX_NEW_TOKENS: Final = 16
VERIFY_PROMPTS: Final = 50


class ExportError(SupportError):
    """The model cannot be written in the source file's layout (names, shapes, architecture)."""

    code = "export_failed"


# --- export --------------------------------------------------------------------------------------
def export_gguf(
    model: PreTrainedModel,
    *,
    source: Path,
    out: Path,
    qtype: str = "Q8_0",
    metadata: Mapping[str, str | int | float] | None = None,
) -> Path:
    """Write `model` as a GGUF file at `out` in `source`'s layout and metadata (atomically).

    `metadata` keys are stored under "smallbot." (the prefix is added when missing), next to
    smallbot.base_model / base_sha256 (the source file), qtype, exported_at and
    format_version. Raises ExportError for a model that does not fit the source, ValueError
    for an unknown qtype, ModelFileError for an unreadable source.
    """
    if qtype not in QTYPES:
        raise ValueError(f"qtype must be one of {', '.join(QTYPES)}, not {qtype!r}")
    source = Path(source)
    out = Path(out)
    info = read_gguf(source)
    if info.architecture not in SUPPORTED_ARCHITECTURES:
        raise ExportError(
            f"{source.name}: exporting architecture {info.architecture!r} is not supported "
            f"(only {', '.join(sorted(SUPPORTED_ARCHITECTURES))})"
        )
    plan = _tensor_plan(model, info, qtype)
    keys = _smallbot_keys(source, info, qtype, metadata or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write(info, plan, keys, qtype, tmp)
        read_gguf(tmp)  # the header parses and every tensor lies inside the file
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The smallbot.* keys of a GGUF file (full key names, values as stored; {} for none)."""
    info = read_gguf(Path(path))
    return {k: v for k, v in info.metadata.items() if k.startswith(SMALLBOT_PREFIX)}


@dataclass(frozen=True, slots=True)
class _PlannedTensor:
    name: str  # GGUF name
    array: npt.NDArray[np.float32]  # numpy order (outermost first), already permuted
    ggml_type: GGMLQuantizationType


def _tensor_plan(model: PreTrainedModel, info: GgufFile, qtype: str) -> list[_PlannedTensor]:
    """Every tensor to write, in the source's order, mapped from the model's state dict."""
    from gguf import MODEL_ARCH, get_tensor_name_map

    state = model.state_dict()
    adapters = [k for k in state if "lora_" in k]
    if adapters:
        raise ExportError(
            f"the model still holds LoRA adapter weights ({adapters[0]}, ...): merge them "
            "into the base weights first (peft's merge_and_unload)"
        )
    n_layers = info.get_int(f"{info.architecture}.block_count")
    n_head = info.get_int(f"{info.architecture}.attention.head_count")
    if n_layers is None or n_head is None:
        raise ExportError(f"{info.path.name} lacks block_count or attention.head_count")
    n_head_kv = info.get_int(f"{info.architecture}.attention.head_count_kv") or n_head
    name_map = get_tensor_name_map(MODEL_ARCH.LLAMA, n_layers)
    arrays: dict[str, npt.NDArray[np.float32]] = {}
    unmapped: list[str] = []
    for hf_name, tensor in state.items():
        stem, dot, suffix = hf_name.rpartition(".")
        gguf_stem = name_map.get_name(stem) if dot else None
        if gguf_stem is None:
            unmapped.append(hf_name)
            continue
        arrays[f"{gguf_stem}.{suffix}"] = tensor.detach().to("cpu").float().numpy()
    if unmapped:
        raise ExportError(f"model tensors without a GGUF name: {', '.join(unmapped[:5])}")

    # Tied embeddings (SmolLM2): lm_head is token_embd; the source has no output.weight.
    output = arrays.get("output.weight")
    embd = arrays.get("token_embd.weight")
    if (
        output is not None
        and embd is not None
        and info.tensor("output.weight") is None
        and (np.shares_memory(output, embd) or np.array_equal(output, embd))
    ):
        del arrays["output.weight"]

    names = [t.name for t in info.tensors]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ExportError(f"the model lacks tensors of {info.path.name}: {', '.join(missing[:5])}")
    # An untied output projection the source did not have (trained separately) is kept.
    names += [n for n in arrays if n not in set(names)]

    plan = []
    for name in names:
        array = arrays[name]
        source_tensor = info.tensor(name)
        ggml_shape = tuple(reversed(array.shape))
        if source_tensor is not None and source_tensor.shape != ggml_shape:
            raise ExportError(
                f"tensor {name}: the model's shape {ggml_shape} differs from the source's "
                f"{source_tensor.shape}"
            )
        if name.endswith("attn_q.weight"):
            array = _permute(array, n_head, n_head)
        elif name.endswith("attn_k.weight"):
            array = _permute(array, n_head, n_head_kv)
        plan.append(_PlannedTensor(name, array, _tensor_type(name, array, qtype)))
    return plan


def _permute(weights: npt.NDArray[np.float32], n_head: int, n_head_kv: int) -> Any:
    """llama.cpp's convert_hf_to_gguf permute: the inverse of transformers' reverse permute."""
    if n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tensor_type(name: str, array: npt.NDArray[np.float32], qtype: str) -> GGMLQuantizationType:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    if qtype == "F32" or array.ndim < 2:
        return GGMLQuantizationType.F32
    wanted = (
        GGMLQuantizationType.Q8_0 if name in _EMBEDDING_TENSORS else GGMLQuantizationType[qtype]
    )
    block, _ = GGML_QUANT_SIZES[wanted]
    # Rows must be whole blocks (32 values); no SmolLM2 tensor breaks this, other models might.
    return wanted if array.shape[-1] % block == 0 else GGMLQuantizationType.F32


def _smallbot_keys(
    source: Path, info: GgufFile, qtype: str, metadata: Mapping[str, str | int | float]
) -> dict[str, str | int | float | bool]:
    # A source that is itself an export keeps its description (examples, hyperparameters,
    # gate report) unless the caller gives new values; where the weights were loaded from is
    # always this source, and the base it named is kept as source_base_model.
    keys: dict[str, str | int | float | bool] = {
        k: v
        for k, v in info.metadata.items()
        if k.startswith(SMALLBOT_PREFIX) and isinstance(v, str | int | float | bool)
    }
    keys |= {
        "smallbot.format_version": EXPORT_FORMAT_VERSION,
        "smallbot.base_model": source.name,
        "smallbot.base_sha256": file_sha256(source),
        "smallbot.qtype": qtype,
        "smallbot.exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if isinstance(root := info.metadata.get("smallbot.base_model"), str):
        keys["smallbot.source_base_model"] = root
    for key, value in metadata.items():
        full = key if key.startswith(SMALLBOT_PREFIX) else SMALLBOT_PREFIX + key
        if not isinstance(value, str | int | float):
            raise TypeError(f"metadata {key!r}: {type(value).__name__} (use a JSON string)")
        keys[full] = value
    return keys


def _add_value(writer: Any, key: str, value: str | int | float | bool) -> None:
    from gguf import GGUFValueType

    if isinstance(value, bool):
        writer.add_key_value(key, value, GGUFValueType.BOOL)
    elif isinstance(value, int):
        writer.add_key_value(key, value, GGUFValueType.INT64)
    elif isinstance(value, float):
        writer.add_key_value(key, value, GGUFValueType.FLOAT64)
    else:
        writer.add_key_value(key, value, GGUFValueType.STRING)


def _write(
    info: GgufFile,
    plan: Sequence[_PlannedTensor],
    keys: Mapping[str, str | int | float | bool],
    qtype: str,
    path: Path,
) -> None:
    from gguf import GGML_QUANT_SIZES, GGUFValueType, GGUFWriter
    from gguf.quants import quant_shape_to_byte_shape, quantize

    writer = GGUFWriter(path, info.architecture)
    writer.data_alignment = info.alignment
    metadata_copy(
        writer,
        info,
        replace={"general.file_type": _LLAMA_FILE_TYPES[qtype]},
        skip=lambda key: key.startswith(SMALLBOT_PREFIX),
    )
    if "general.file_type" not in info.metadata:
        writer.add_key_value("general.file_type", _LLAMA_FILE_TYPES[qtype], GGUFValueType.UINT32)
    for key, value in keys.items():
        _add_value(writer, key, value)
    u8 = np.dtype(np.uint8)
    for t in plan:
        block, type_size = GGML_QUANT_SIZES[t.ggml_type]
        nbytes = t.array.size // block * type_size
        byte_shape = quant_shape_to_byte_shape(t.array.shape, t.ggml_type)
        writer.add_tensor_info(t.name, byte_shape, u8, nbytes, t.ggml_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        # One tensor at a time: the quantized model is never held in memory twice.
        for t in plan:
            data = quantize(np.ascontiguousarray(t.array, dtype=np.float32), t.ggml_type)
            writer.write_tensor_data(data)
        writer.flush()
        assert writer.fout is not None
        for fh in writer.fout:
            os.fsync(fh.fileno())
    finally:
        writer.close()


# --- verification --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tolerance:
    """The worst agreement an honest export of that qtype may show (calibrated, see below)."""

    min_exact_share: float  # prompts whose whole greedy continuation matches
    min_agreement: float  # mean share of matching leading tokens


# Calibrated with bench/chat_export.py (docs/learning.md, "Export and verification"): the
# shipped model exported unchanged, 50 demo prompts x 16 tokens, ctransformers. Identical
# weights (Q4_1) already disagree on 30 % of the continuations (ggml's 8-bit activations vs
# torch's float32: near ties flip): 35/50 identical, agreement 0.79; Q8_0 32/50, 0.74. One
# attention matrix of noise leaves little in common (3/50, agreement 0.17). The marks
# sit about halfway, leaving room for a fine-tuned model's own rounding to the 4-bit grid
# (the shipped weights are on it) and for the few prompts a test uses. Q4_0 rounds the Q4_1
# weights to another grid and loses most of the agreement by itself (4/50, 0.27): its mark
# only catches gross breakage (not that noisy matrix), and Q4_0 is not advised for this model.
TOLERANCES: Final[Mapping[str, Tolerance]] = {
    "F32": Tolerance(min_exact_share=0.35, min_agreement=0.45),
    "Q8_0": Tolerance(min_exact_share=0.35, min_agreement=0.45),
    "Q4_1": Tolerance(min_exact_share=0.35, min_agreement=0.45),
    "Q4_0": Tolerance(min_exact_share=0.0, min_agreement=0.15),
}


@dataclass(frozen=True, slots=True)
class ExportCheck:
    prompts: int
    agreement: float  # mean over prompts of matching leading tokens / compared length
    exact: int  # prompts whose continuations are identical
    ok: bool
    backend: str  # "llamacpp" or "ctransformers"
    detail: list[dict[str, Any]] = field(default_factory=list)
    qtype: str = ""
    mean_prefix_tokens: float = 0.0
    max_new_tokens: int = VERIFY_MAX_NEW_TOKENS
    tolerance: dict[str, float] = field(default_factory=dict)

    @property
    def exact_share(self) -> float:
        return self.exact / self.prompts if self.prompts else 0.0

    def summary(self) -> dict[str, Any]:
        """The figures without the per-prompt tokens (for reports and metadata)."""
        data = asdict(self)
        del data["detail"]
        data["exact_share"] = round(self.exact_share, 4)
        return data


def export_verify(
    model: PreTrainedModel,
    gguf: Path,
    prompts: Sequence[Sequence[int]],
    *,
    qtype: str,
    max_new_tokens: int = VERIFY_MAX_NEW_TOKENS,
    backend: str = "auto",
    cache_dir: Path | None = None,
    threads: int | None = None,
    reference: Sequence[Sequence[int]] | None = None,
) -> ExportCheck:
    """Greedy tokens of the GGUF file (llama.cpp) vs the torch model on the same prompts.

    ok is False when the agreement is below TOLERANCES[qtype]. `backend`: "auto" (llama-cpp-
    python when importable, else ctransformers), "llamacpp" or "ctransformers". The
    ctransformers compatibility copy goes to `cache_dir` (default: a temporary folder,
    removed afterwards). `reference`: the torch tokens per prompt when already computed
    (`torch_reference`), e.g. to check several exports of one model. Raises ModelFileError if
    the file does not load, ValueError for no prompts or an unknown qtype/backend.
    """
    from .chat_torch import greedy_tokens

    if qtype not in TOLERANCES:
        raise ValueError(f"qtype must be one of {', '.join(TOLERANCES)}, not {qtype!r}")
    if not prompts:
        raise ValueError("export_verify needs at least one prompt")
    if reference is not None and len(reference) != len(prompts):
        raise ValueError("reference must hold one token list per prompt")
    tolerance = TOLERANCES[qtype]
    name = resolve_backend(backend)
    params = GenerationParams(max_tokens=max_new_tokens, repetition_penalty=1.0)
    detail: list[dict[str, Any]] = []
    with _backend_model(name, Path(gguf), cache_dir=cache_dir, threads=threads) as chat:
        eos = chat.eos_token_ids
        for i, prompt in enumerate(prompts):
            ids = [int(t) for t in prompt]
            expected = (
                list(reference[i])
                if reference is not None
                else greedy_tokens(model, ids, max_new_tokens=max_new_tokens, eos_ids=eos)
            )
            with chat.stream(ids, params) as stream:
                stream.text()
                stats = stream.stats
            exported = list(stats.generated_ids) if stats is not None else []
            detail.append(_compare(i, len(ids), expected, exported))
    n = len(detail)
    exact = sum(d["exact"] for d in detail)
    agreement = sum(d["agreement"] for d in detail) / n
    ok = exact / n >= tolerance.min_exact_share and agreement >= tolerance.min_agreement
    return ExportCheck(
        prompts=n,
        agreement=round(agreement, 4),
        exact=exact,
        ok=ok,
        backend=name,
        detail=detail,
        qtype=qtype,
        mean_prefix_tokens=round(sum(d["prefix"] for d in detail) / n, 3),
        max_new_tokens=max_new_tokens,
        tolerance=asdict(tolerance),
    )


def torch_reference(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    *,
    eos_ids: Collection[int],
    max_new_tokens: int = VERIFY_MAX_NEW_TOKENS,
) -> list[list[int]]:
    """The torch model's greedy tokens per prompt (what `export_verify` compares with)."""
    from .chat_torch import greedy_tokens

    return [
        greedy_tokens(model, [int(t) for t in p], max_new_tokens=max_new_tokens, eos_ids=eos_ids)
        for p in prompts
    ]


def _compare(
    i: int, prompt_tokens: int, reference: list[int], exported: list[int]
) -> dict[str, Any]:
    prefix = 0
    for a, b in zip(reference, exported, strict=False):
        if a != b:
            break
        prefix += 1
    longest = max(len(reference), len(exported)) or 1
    return {
        "prompt": i,
        "prompt_tokens": prompt_tokens,
        "torch": reference,
        "gguf": exported,
        "prefix": prefix,
        "agreement": prefix / longest,
        "exact": reference == exported,
    }


def llamacpp_available() -> bool:
    """Whether llama-cpp-python can be imported (the optional `llamacpp` extra)."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> str:
    """ "auto" -> "llamacpp" when importable, else "ctransformers"; others checked."""
    if backend == "auto":
        return "llamacpp" if llamacpp_available() else "ctransformers"
    if backend not in ("llamacpp", "ctransformers"):
        raise ValueError(f"backend must be auto, llamacpp or ctransformers, not {backend!r}")
    if backend == "llamacpp" and not llamacpp_available():
        raise BackendUnavailableError("llama-cpp-python is not installed (the llamacpp extra)")
    return backend


@contextlib.contextmanager
def _backend_model(
    backend: str, path: Path, *, cache_dir: Path | None, threads: int | None
) -> Iterator[DecodingChatModel]:
    from ..llm.ctransformers_backend import CTransformersChatModel
    from ..llm.llamacpp_backend import LlamaCppChatModel

    if backend == "llamacpp":
        yield LlamaCppChatModel(path, threads=threads)
        return
    if cache_dir is not None:
        yield CTransformersChatModel(path, cache_dir=cache_dir, threads=threads)
        return
    with tempfile.TemporaryDirectory(prefix="smallbot-export-verify-") as tmp:
        yield CTransformersChatModel(path, cache_dir=tmp, threads=threads)


# --- the served model, exported (manage.py chat_export) -------------------------------------------
@dataclass(frozen=True, slots=True)
class ChatExportResult:
    path: Path
    source: Path
    qtype: str
    size_bytes: int
    seconds: float
    metadata: dict[str, Any]
    check: ExportCheck | None  # None when verification was skipped


def chat_model_export(
    *,
    out: Path,
    qtype: str = "Q8_0",
    verify_prompts: int = VERIFY_PROMPTS,
    backend: str = "auto",
    threads: int | None = None,
) -> ChatExportResult:
    """Export the served chat model (conf.resolved_model_path()) to `out` and verify it.

    Written next to `out` under a temporary name, verified on `verify_prompts` demo prompts
    (0 skips it) and renamed to `out` only when the check passes: a failed export leaves
    nothing at `out` and raises ExportVerificationFailed carrying the check.
    """
    import time

    from ..conf import get_support_settings
    from .chat_torch import load_torch_chat_model

    if verify_prompts < 0:
        raise ValueError("verify_prompts must be 0 or more")
    if verify_prompts:
        resolve_backend(backend)  # fail before the slow part
    start = time.perf_counter()
    source = get_support_settings().resolved_model_path()
    model, _ = load_torch_chat_model(source, threads=threads)
    out = Path(out)
    staged = out.with_name(f".{out.name}.unverified")
    check: ExportCheck | None = None
    try:
        export_gguf(model, source=source, out=staged, qtype=qtype)
        if verify_prompts:
            prompts = verification_prompts(prompt_model(staged), count=verify_prompts)
            check = export_verify(
                model, staged, prompts, qtype=qtype, backend=backend, threads=threads
            )
            if not check.ok:
                raise ExportVerificationFailed(check)
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    return ChatExportResult(
        path=out,
        source=source,
        qtype=qtype,
        size_bytes=out.stat().st_size,
        seconds=time.perf_counter() - start,
        metadata=gguf_metadata(out),
        check=check,
    )


class ExportVerificationFailed(ExportError):
    """The exported file's greedy tokens disagree with the torch model beyond the tolerance."""

    code = "export_verification_failed"

    def __init__(self, check: ExportCheck) -> None:
        super().__init__(
            f"the exported {check.qtype} file disagrees with the torch model: "
            f"{check.exact}/{check.prompts} continuations identical "
            f"(need {check.tolerance.get('min_exact_share', 0):.0%}), agreement "
            f"{check.agreement:.2f} (need {check.tolerance.get('min_agreement', 0):.2f}) "
            f"on {check.backend}"
        )
        self.check = check


class _PromptOnlyEvaluator:
    """Lets a DecodingChatModel tokenize and template without loading any weights."""

    def __init__(self, n_ctx: int, n_vocab: int) -> None:
        self.n_ctx = n_ctx
        self.n_vocab = n_vocab

    def eval(self, tokens: Sequence[int], n_past: int, threads: int) -> None:
        raise NotImplementedError("a prompt-only model cannot evaluate tokens")

    def logits(self) -> npt.NDArray[np.float32]:
        raise NotImplementedError("a prompt-only model has no logits")


def prompt_model(path: Path) -> ChatModel:
    """The file's tokenizer, chat template and context window as a ChatModel that builds
    prompts exactly as the served one does, without loading weights (it cannot generate)."""
    from ..llm.base import context_length_for
    from ..llm.tokenizer import GgufTokenizer

    info = read_gguf(Path(path))
    tokenizer = GgufTokenizer(info)
    evaluator = _PromptOnlyEvaluator(context_length_for(info, None), tokenizer.vocab_size)
    return DecodingChatModel(tokenizer=tokenizer, evaluator=evaluator, threads=1)


# --- verification prompts ------------------------------------------------------------------------
# Customer questions over the demo knowledge base (support/demo_kb), two or three per section,
# worded as customers write them; the facts come from the knowledge base itself.
DEMO_QUESTIONS: Final = (
    "I forgot my password, how do I reset it?",
    "How do I reset my app password?",
    "How do I turn on two-step verification?",
    "Is two-step verification required?",
    "I got an email asking for my password, is that you?",
    "How do I report a suspicious email?",
    "How do I close my account?",
    "What happens to my data when I close my account?",
    "When am I billed?",
    "Why is my first bill so high?",
    "How can I pay my bill?",
    "Is there a discount for paying by direct debit?",
    "What happens if I miss a payment?",
    "How much is the late fee?",
    "Will you cut off my service without warning?",
    "Can I get a refund if I cancel?",
    "How long do refunds take?",
    "How do I get my overpayment back?",
    "How do I upgrade my plan?",
    "Can I downgrade my plan?",
    "How do I install the router?",
    "When will my router arrive?",
    "Do I need to be at home for the activation?",
    "How long does activation take?",
    "How do I connect to Wi-Fi?",
    "Where do I find the Wi-Fi password?",
    "How do I change my Wi-Fi password?",
    "What can I do in the Brightwave app?",
    "Can I take my plan when moving house?",
    "I'm relocating next month, what happens to my internet contract?",
    "What if you are not available at my new address?",
    "My wifi is slow upstairs",
    "Why is my Wi-Fi so slow?",
    "How do I restart my router?",
    "Will restarting the router change my settings?",
    "How do I factory reset my router?",
    "What does a factory reset remove?",
    "What does error ERR-4032 mean?",
    "What does error ERR-1101 mean?",
    "What does error ERR-7730 mean?",
    "The light on my router keeps blinking orange, what should I do?",
    "Is there an outage in my area?",
    "Will you tell me when the outage is fixed?",
    "Is there a data limit?",
    "Can I keep my old phone number?",
    "How long is the minimum term?",
    "Do you offer a static IP address?",
    "How much does a static IP cost?",
    "What speeds do you offer?",
    "Is the upload speed the same as the download speed?",
)


def verification_prompts(
    model: ChatModel, *, count: int = VERIFY_PROMPTS, max_new_tokens: int = 256
) -> list[list[int]]:
    """`count` answer prompts over the demo knowledge base, built by the answer pipeline.

    Each is `prompt_build` (system prompt, numbered facts, question, the model's chat
    template) with the facts `facts_select` picks from the question's best passages; every
    third prompt also carries the previous exchange as history. Passages are ranked by shared
    question terms, a stand-in for the retriever: no database, index or embedder is needed.
    """
    from ..answers.facts import facts_select
    from ..answers.prompt import prompt_build
    from ..answers.types import Turn

    if count < 1:
        raise ValueError("count must be at least 1")
    passages = demo_passages()
    prompts: list[list[int]] = []
    previous: tuple[str, str] | None = None
    for i in range(count):
        question = DEMO_QUESTIONS[i % len(DEMO_QUESTIONS)]
        if i >= len(DEMO_QUESTIONS):  # more prompts than questions: vary the history
            question = f"{question} Thanks."
        ranked = _rank(question, passages)
        facts = facts_select(question=question, passages=ranked)
        history: tuple[Turn, ...] = ()
        if i % 3 == 2 and previous is not None:
            history = (Turn("customer", previous[0]), Turn("bot", previous[1]))
        prompt = prompt_build(
            question=question,
            facts=facts,
            history=history,
            model=model,
            max_new_tokens=max_new_tokens,
        )
        prompts.append(list(prompt.token_ids))
        previous = (question, facts[0].text if facts else "I am not sure.")
    return prompts


def demo_passages() -> list[Any]:
    """The demo knowledge base as one Passage per section (an FAQ row is a section)."""
    from ..demo import DEMO_KB_DIR
    from ..ingest.parsers import parse
    from ..retrieval import Passage

    passages: list[Passage] = []
    for doc_id, path in enumerate(sorted(DEMO_KB_DIR.iterdir()), 1):
        doc = parse(path.read_bytes(), path.name)
        sections: dict[tuple[str, ...], list[str]] = {}
        for block in doc.blocks:  # an FAQ row's heading is its own question
            sections.setdefault(block.heading_path, []).append(block.text)
        for heading, texts in sections.items():
            passages.append(
                Passage(
                    chunk_id=len(passages) + 1,
                    document_id=doc_id,
                    filename=doc.filename,
                    title=doc.title,
                    source_url="",
                    heading_path=heading,
                    page=None,
                    anchor="",
                    text="\n\n".join(texts),
                    score=0.0,
                    dense_score=0.0,
                    lexical_score=0.0,
                    rank=0,
                )
            )
    return passages


def _rank(question: str, passages: Sequence[Any]) -> list[Any]:
    from dataclasses import replace

    from ..answers.words import terms

    q = terms(question)

    def score(p: Any) -> float:
        heading = terms(" ".join(p.heading_path))
        return len(q & terms(p.text)) + 0.5 * len(q & heading)

    ranked = sorted(passages, key=lambda p: -score(p))[:5]
    return [replace(p, score=score(p), rank=r) for r, p in enumerate(ranked, 1)]


def verify_report_json(check: ExportCheck) -> str:
    """The check's figures as a JSON string (for smallbot.* metadata or a gate report)."""
    return json.dumps(check.summary(), sort_keys=True)


__all__ = [
    "DEMO_QUESTIONS",
    "QTYPES",
    "TOLERANCES",
    "ChatExportResult",
    "ExportCheck",
    "ExportError",
    "ExportVerificationFailed",
    "Tolerance",
    "chat_model_export",
    "export_gguf",
    "export_verify",
    "gguf_metadata",
    "prompt_model",
    "torch_reference",
    "verification_prompts",
]
