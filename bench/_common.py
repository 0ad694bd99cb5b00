"""Shared helpers for the benchmarks in bench/: the doc2dial eval set, an eval knowledge base
built through the real ingestion path, and result files.

Typical use (the KB must be prepared before anything imports Django models)::

    from bench import _common as common           # or: import _common (when run as a script)

    kb = common.eval_kb()                          # sets SUPPORT_DATA_DIR, django.setup()
    docs = common.load_documents()
    questions = common.load_questions()
    dev, test = common.split_dev_test(questions)
    ...
    from support.retrieval import passages_search  # only after eval_kb()
    result = passages_search(query=questions[0].text)
    common.doc_id_of(result.passages[0])           # -> "va-065" (the doc2dial page id)
    common.span_hit(result.passages[0], questions[0])   # the README's retrieval-hit test
    common.write_results("answers", payload)       # bench/results/answers-<timestamp>.json

`eval_kb()` ingests every doc2dial page as `<id>.md` (`# title\\n\\ntext`) with
`knowledge.document_upload(..., queue=False)` + `knowledge.document_ingest(...,
rebuild_index=False)`, then `knowledge.index_rebuild()`, into a SQLite database and data
directory under /tmp. The result is cached across runs and processes, keyed by a hash of
documents.jsonl, of the code that ingestion runs (support/ingest, knowledge.py, the search
index/lexical/embedder modules) and of the ingestion-related SUPPORT_* variables and their
defaults in chatbot/settings/base.py;
a file lock makes concurrent benchmarks wait for one build instead of racing. Treat the cached
KB as read-only (searching and answering write nothing); pass `fresh=True` for a private copy.

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO.parent / "shared" / "eval" / "doc2dial"
RESULTS_DIR = REPO / "bench" / "results"
KB_CACHE_ROOT = Path(tempfile.gettempdir()) / "smallbot-bench-kb"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Code whose changes make a cached KB stale (query-time code such as search/hybrid.py is not).
_INGEST_SOURCES = (
    "support/ingest",
    "support/knowledge.py",
    "support/search/embedder.py",
    "support/search/index.py",
    "support/search/lexical.py",
)
_INGEST_ENV = (
    "SUPPORT_CHUNK_TOKENS",
    "SUPPORT_CHUNK_OVERLAP_TOKENS",
    "SUPPORT_EMBEDDING_MODEL_PATH",
    "SUPPORT_EMBEDDER_BACKEND",
    "SUPPORT_HNSW_THRESHOLD",
)


# -- eval data ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EvalDoc:
    id: str
    title: str
    text: str
    domain: str

    @property
    def filename(self) -> str:
        return f"{self.id}.md"

    def markdown(self) -> bytes:
        return f"# {self.title.strip()}\n\n{self.text.strip()}\n".encode()


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    index: int  # position in questions.jsonl (the dev/test split uses it)
    id: str
    text: str
    answerable: bool
    history: tuple[dict[str, str], ...]
    grounding_doc_ids: tuple[str, ...]
    span_doc_id: str | None
    span_text: str
    span_start: int
    span_end: int
    answer: str | None  # the human agent's reply
    answer_type: str | None  # "statement" / "clarifying_question" / None (unanswerable)

    @property
    def graded(self) -> bool:
        """Answer quality is graded only against statements (not clarifying questions)."""
        return self.answerable and self.answer_type == "statement" and bool(self.answer)


def load_documents(eval_dir: Path = EVAL_DIR) -> list[EvalDoc]:
    with (eval_dir / "documents.jsonl").open(encoding="utf-8") as fh:
        return [
            EvalDoc(d["id"], d["title"], d["text"], d.get("domain", ""))
            for d in map(json.loads, filter(str.strip, fh))
        ]


def load_questions(eval_dir: Path = EVAL_DIR, name: str = "questions.jsonl") -> list[EvalQuestion]:
    """First-turn questions (or `questions_multiturn.jsonl`, whose items carry a history)."""
    out = []
    with (eval_dir / name).open(encoding="utf-8") as fh:
        for i, q in enumerate(map(json.loads, filter(str.strip, fh))):
            span = q.get("grounding_span") or {}
            out.append(
                EvalQuestion(
                    index=i,
                    id=q["id"],
                    text=q["question"],
                    answerable=bool(q["answerable"]),
                    history=tuple(q.get("history") or ()),
                    grounding_doc_ids=tuple(q.get("grounding_doc_ids") or ()),
                    span_doc_id=span.get("doc_id"),
                    span_text=span.get("text", ""),
                    span_start=int(span.get("start", 0)),
                    span_end=int(span.get("end", 0)),
                    answer=q.get("answer"),
                    answer_type=q.get("reference_answer_type"),
                )
            )
    return out


def split_dev_test(
    questions: Sequence[EvalQuestion],
) -> tuple[list[EvalQuestion], list[EvalQuestion]]:
    """Dev = even positions in the file (tune on these), test = odd positions (report)."""
    return (
        [q for q in questions if q.index % 2 == 0],
        [q for q in questions if q.index % 2 == 1],
    )


# -- the eval knowledge base --------------------------------------------------------------------
@dataclass(slots=True)
class EvalKb:
    data_dir: Path
    cached: bool  # True when an earlier run's KB was reused
    build_s: float  # seconds spent building (0 when cached)
    documents: int
    chunks: int
    rejected: dict[str, str] = field(default_factory=dict)  # doc id -> reason (duplicates)


def _kb_key(eval_dir: Path) -> str:
    h = hashlib.sha256()
    h.update((eval_dir / "documents.jsonl").read_bytes())
    ingest_key_update(h)
    return h.hexdigest()[:16]


def ingest_key_update(h: Any) -> None:
    """Feed what any benchmark KB depends on besides its pages into the hash `h`: the
    ingestion code, the ingestion settings and their defaults."""
    for rel in _INGEST_SOURCES:
        path = REPO / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(REPO)).encode())
            h.update(f.read_bytes())
    for name in _INGEST_ENV:
        h.update(f"{name}={os.environ.get(name, '')}".encode())
        # ... and the default each one has in settings (a changed default changes the KB).
        for line in (REPO / "chatbot/settings/base.py").read_text().splitlines():
            if line.startswith(f"{name} ="):
                h.update(line.encode())


def django_setup(data_dir: Path, settings_module: str = "chatbot.settings.local") -> None:
    """Point the project at `data_dir` and set Django up (once per process)."""
    import django
    from django.conf import settings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if settings.configured:
        if Path(settings.SUPPORT_DATA_DIR) != data_dir.resolve():
            raise RuntimeError(
                f"Django is already set up with SUPPORT_DATA_DIR={settings.SUPPORT_DATA_DIR}; "
                "call eval_kb() before anything imports Django models"
            )
        return
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    os.environ["SUPPORT_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)  # the KB lives in the data directory's SQLite file
    django.setup()


def _ingest(docs: Sequence[EvalDoc], log: Any) -> dict[str, str]:
    from django.core.management import call_command

    from support import knowledge
    from support.exceptions import DocumentRejected

    call_command("migrate", verbosity=0, interactive=False)
    rejected: dict[str, str] = {}
    started = time.perf_counter()
    for i, doc in enumerate(docs, 1):
        try:
            document = knowledge.document_upload(
                filename=doc.filename, data=doc.markdown(), queue=False
            )
        except DocumentRejected as exc:  # e.g. an exact duplicate page
            rejected[doc.id] = str(exc)
            continue
        outcome = knowledge.document_ingest(document_id=document.pk, rebuild_index=False)
        if outcome.status != "ready":
            rejected[doc.id] = f"{outcome.status}: {outcome.error}"
        if i % 25 == 0:
            log(f"  ingested {i}/{len(docs)} pages ({time.perf_counter() - started:.0f} s)")
    knowledge.index_rebuild()
    return rejected


def eval_kb(
    *,
    fresh: bool = False,
    eval_dir: Path = EVAL_DIR,
    cache_root: Path = KB_CACHE_ROOT,
    quiet: bool = False,
) -> EvalKb:
    """Set Django up on a SUPPORT_DATA_DIR holding the doc2dial KB (built once, then cached).

    Must run before anything imports Django models. With `fresh=True` the KB is built in a
    private temporary directory (removed at exit) instead of the shared cache.
    """

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    docs = load_documents(eval_dir)
    if fresh:
        data_dir = Path(tempfile.mkdtemp(prefix="smallbot-kb-"))
        import atexit

        atexit.register(shutil.rmtree, data_dir, True)
        return _build(data_dir, docs, log)

    cache_root.mkdir(parents=True, exist_ok=True)
    data_dir = cache_root / f"kb-{_kb_key(eval_dir)}"
    with _file_lock(cache_root / f"{data_dir.name}.lock"):
        info_file = data_dir / "bench-kb.json"
        if info_file.exists():
            info = json.loads(info_file.read_text())
            django_setup(data_dir)
            from django.core.management import call_command

            call_command("migrate", verbosity=0, interactive=False)  # new migrations since
            log(f"eval KB: reusing {data_dir} ({info['chunks']} chunks)")
            return EvalKb(
                data_dir, True, 0.0, info["documents"], info["chunks"], info.get("rejected", {})
            )
        shutil.rmtree(data_dir, ignore_errors=True)  # a build that died midway
        data_dir.mkdir(parents=True)
        kb = _build(data_dir, docs, log)
        info_file.write_text(
            json.dumps(
                {
                    "documents": kb.documents,
                    "chunks": kb.chunks,
                    "rejected": kb.rejected,
                    "build_s": kb.build_s,
                }
            )
        )
        return kb


def _build(data_dir: Path, docs: Sequence[EvalDoc], log: Any) -> EvalKb:
    django_setup(data_dir)
    log(f"eval KB: ingesting {len(docs)} pages into {data_dir} (once; cached afterwards)")
    started = time.perf_counter()
    rejected = _ingest(docs, log)
    from support.models import Chunk, KnowledgeDocument

    kb = EvalKb(
        data_dir,
        False,
        round(time.perf_counter() - started, 1),
        KnowledgeDocument.objects.filter(status=KnowledgeDocument.Status.READY).count(),
        Chunk.objects.count(),
        rejected,
    )
    log(f"eval KB: {kb.documents} documents, {kb.chunks} chunks in {kb.build_s:.0f} s")
    return kb


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def doc_id_of(passage: Any) -> str:
    """The doc2dial page id of a retrieved passage (documents are ingested as `<id>.md`)."""
    name = str(passage.filename)
    return name[:-3] if name.endswith(".md") else name


def span_hit(passage: Any, question: EvalQuestion) -> bool:
    """The README's best retrieval-hit test, on text: the passage contains the grounding span
    (or most of it, allowing for chunk boundaries), on a grounding page."""
    if not question.answerable or doc_id_of(passage) not in question.grounding_doc_ids:
        return False
    span = " ".join(question.span_text.split()).lower()
    text = " ".join(str(passage.text).split()).lower()
    if not span:
        return True
    if span in text:
        return True
    words = span.split()
    half = max(1, len(words) // 2)
    return " ".join(words[:half]) in text or " ".join(words[-half:]) in text


def doc_hit(passage: Any, question: EvalQuestion) -> bool:
    """The weaker retrieval-hit test: the passage comes from one of the grounding pages."""
    return doc_id_of(passage) in question.grounding_doc_ids


# -- numbers and output -------------------------------------------------------------------------
def percentile(values: Iterable[float], p: float) -> float | None:
    """Linear-interpolated percentile (p in 0..100); None for no values."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def mean(values: Iterable[float]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    VmHWM belongs to the address space, which exec replaces: a subprocess reports its own
    peak. (ru_maxrss survives exec on Linux, so a child forked from a big parent would
    report the parent's size.)
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_info() -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": cpus,
        "cpu_model": model,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(name: str, payload: dict[str, Any], also: Path | None = None) -> Path:
    """Write the results to `also` when given (the suite's --out path), otherwise to
    bench/results/<name>-<timestamp>.json; return the path written."""
    path = also if also is not None else RESULTS_DIR / f"{name}-{timestamp()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c, digits) for c in row) + " |" for row in rows]
    return "\n".join(lines)
