"""Calibrate the export check (support/learning/chat_export.py; docs/learning.md, "Export and
verification"): the shipped model, unmodified, exported to each type and decoded greedily in
each available GGUF runtime vs torch on the demo prompts; plus one export with a corrupted
attention matrix, which the check must fail.

    python bench/chat_export.py [--prompts 50] [--qtypes Q8_0,Q4_1] [--backends auto]
                                [--threads 1] [--out results.json]

`--backends auto` means ctransformers, and llama-cpp-python too when it is importable.
Prints one line per (qtype, backend) and writes the JSON (figures without per-prompt tokens,
plus the prompts where torch and the file disagree, detokenized). `--offgrid` first moves the
weights off the shipped file's 4-bit grid, as fine-tuning does, to measure the rounding a
fine-tuned model's export adds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--qtypes", default="Q8_0,Q4_1")
    parser.add_argument("--backends", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-corrupt", action="store_true", help="skip the corrupted export")
    parser.add_argument("--quick", action="store_true", help="10 prompts, Q8_0 only")
    parser.add_argument(
        "--offgrid",
        action="store_true",
        help="first move every weight matrix off the shipped 4-bit grid (a fine-tune stand-in)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.qtypes = 10, "Q8_0"

    work = Path(tempfile.mkdtemp(prefix="bench-chat-export-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings.local")
    os.environ["SUPPORT_DATA_DIR"] = str(work / "data")
    import django

    django.setup()
    import torch

    from support.learning.chat_export import (
        TOLERANCES,
        export_gguf,
        export_verify,
        llamacpp_available,
        prompt_model,
        torch_reference,
        verification_prompts,
    )
    from support.learning.chat_torch import load_torch_chat_model
    from support.llm import default_model_path

    source = default_model_path()
    if args.backends == "auto":
        backends = ["ctransformers"] + (["llamacpp"] if llamacpp_available() else [])
    else:
        backends = args.backends.split(",")
    qtypes = args.qtypes.split(",")
    timings: dict[str, float] = {}

    t = time.perf_counter()
    model, _ = load_torch_chat_model(source, threads=args.threads)
    timings["torch_load_s"] = time.perf_counter() - t
    if args.offgrid:
        _off_grid(model, torch)
    chat = prompt_model(source)
    prompts = verification_prompts(chat, count=args.prompts)
    t = time.perf_counter()
    reference = torch_reference(model, prompts, eos_ids=chat.eos_token_ids)
    timings["torch_greedy_s"] = time.perf_counter() - t

    files: dict[str, Path] = {}
    for qtype in qtypes:
        t = time.perf_counter()
        files[qtype] = export_gguf(
            model, source=source, out=work / f"base-{qtype}.gguf", qtype=qtype
        )
        timings[f"export_{qtype}_s"] = time.perf_counter() - t
    if not (args.no_corrupt or args.offgrid):
        weight = model.model.layers[10].self_attn.v_proj.weight
        original = weight.data.clone()
        weight.data = torch.randn(original.shape, generator=torch.Generator().manual_seed(15))
        weight.data *= original.std()
        try:
            files["corrupt-Q8_0"] = export_gguf(
                model, source=source, out=work / "corrupt-Q8_0.gguf", qtype="Q8_0"
            )
        finally:
            weight.data = original

    runs: list[dict[str, Any]] = []
    for label, path in files.items():
        qtype = label.removeprefix("corrupt-")
        for backend in backends:
            t = time.perf_counter()
            check = export_verify(
                model,
                path,
                prompts,
                qtype=qtype,
                backend=backend,
                threads=args.threads,
                reference=reference,
                cache_dir=work / "cache",
            )
            row = {"export": label, **check.summary(), "seconds": time.perf_counter() - t}
            row["disagreements"] = [
                {
                    "prompt": d["prompt"],
                    "prefix": d["prefix"],
                    "torch": chat.detokenize(d["torch"]),
                    "gguf": chat.detokenize(d["gguf"]),
                }
                for d in check.detail
                if not d["exact"]
            ][:10]
            runs.append(row)
            print(
                f"{label:>13} {backend:>13}: exact {check.exact}/{check.prompts} "
                f"({check.exact_share:.0%}), agreement {check.agreement:.3f}, mean prefix "
                f"{check.mean_prefix_tokens:.1f}/{check.max_new_tokens}, ok={check.ok} "
                f"({row['seconds']:.0f} s)",
                flush=True,
            )
    payload = {
        "prompts": len(prompts),
        "mean_prompt_tokens": sum(map(len, prompts)) / len(prompts),
        "tolerances": {k: asdict(v) for k, v in TOLERANCES.items()},
        "offgrid": args.offgrid,
        "timings": timings,
        "runs": runs,
    }
    text = json.dumps(payload, indent=1, sort_keys=True, default=str)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


def _off_grid(model: Any, torch: Any) -> None:
    """Add to each transformer weight matrix uniform noise of +-half its Q4_1 step (per block of
    32 inputs), in place: the weights leave the shipped file's 4-bit grid as a fine-tuned
    model's do, so a Q4_1 export rounds every weight again, by up to half a step."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim != 2 or "embed_tokens" in name or "lm_head" in name:
                continue
            blocks = param.data.view(param.shape[0], -1, 32)
            step = (blocks.amax(-1, keepdim=True) - blocks.amin(-1, keepdim=True)) / 15
            noise = torch.rand(blocks.shape, generator=generator) - 0.5
            blocks += noise * step


if __name__ == "__main__":
    raise SystemExit(main())
