"""Served chat-model versions (issue 15; docs/learning.md, "The gate for the chat model,
promotion and rollback"): the version folders and CURRENT, conf.resolved_model_path, and
support.backends.get_chat_model switching in every process without a restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from support import backends, warmup
from support.conf import get_support_settings
from support.llm import GenerationParams, chat_models, gguf_compat
from support.llm.gguf_compat import compat_copy_forget, ensure_compatible_gguf
from tests.conftest import REPO_ROOT
from tests.fakes import FakeChatModel, FileChatModel

FAKE_BACKEND = "tests.fakes.FileChatModel"


def _version(
    root: Path, data: bytes = b"GGUF fake", **meta: object
) -> chat_models.ChatModelVersion:
    version = chat_models.next_version(root)
    staging = chat_models.staging_dir(root, version)
    staging.mkdir(parents=True)
    (staging / chat_models.MODEL_FILE).write_bytes(b"GGUF fake")
    return chat_models.install(root, staging, version, {"run": version, **meta})


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    with override_settings(SUPPORT_DATA_DIR=tmp_path, SUPPORT_GENERATOR_BACKEND=FAKE_BACKEND):
        backends.reset_backends()
        yield tmp_path
    backends.reset_backends()


def test_versions_publish_rollback_and_prune(tmp_path: Path) -> None:
    root = tmp_path / "chat_models"
    assert chat_models.current(root) is None and chat_models.current_version(root) == 0
    v1 = _version(root)
    assert v1.version == 1 and chat_models.meta(v1) == {"run": 1}
    assert chat_models.current(root) is None  # installed is not published
    chat_models.publish(root, 1)
    v2 = _version(root)
    chat_models.publish(root, 2)
    assert chat_models.current(root) == v2
    assert chat_models.history(root) == [0, 1]
    assert chat_models.rollback(root) == 1
    assert chat_models.current(root) == v1
    assert chat_models.rollback(root) is None  # the configured model at the bottom
    assert chat_models.current(root) is None
    with pytest.raises(LookupError):
        chat_models.rollback(root)
    # A number is never reused, even after its folder is discarded.
    chat_models.discard(v2.path)
    assert _version(root).version == 3
    chat_models.meta_update(v1, gate={"promote": True})
    assert chat_models.meta(v1) == {"run": 1, "gate": {"promote": True}}


def test_prune_keeps_current_history_and_newest(tmp_path: Path) -> None:
    root = tmp_path / "chat_models"
    for _ in range(6):
        _version(root)
    chat_models.publish(root, 1)
    crashed = root / ".tmp-model-v9-999999"  # another process's staging folder
    crashed.mkdir()
    gone = chat_models.prune(root, keep=2)
    assert chat_models.versions(root) == [1, 5, 6]
    assert sorted(p.parent.name for p in gone) == ["model-v2", "model-v3", "model-v4"]
    assert not crashed.exists()
    assert chat_models.next_version(root) == 7


def test_current_naming_a_deleted_folder_falls_back(tmp_path: Path) -> None:
    root = tmp_path / "chat_models"
    v1 = _version(root)
    chat_models.publish(root, 1)
    (v1.path / chat_models.MODEL_FILE).unlink()
    assert chat_models.current(root) is None
    with pytest.raises(FileNotFoundError):
        chat_models.publish(root, 1)


def test_resolved_model_path_follows_current_unless_pinned(data_dir: Path) -> None:
    conf = get_support_settings()
    shipped = conf.configured_model_path()
    assert conf.resolved_model_path() == shipped
    v1 = _version(conf.chat_models_dir)
    chat_models.publish(conf.chat_models_dir, v1.version)
    assert conf.resolved_model_path() == v1.model_file
    assert conf.configured_model_path() == shipped  # what training starts from
    pinned = data_dir / "pinned.gguf"
    with override_settings(SUPPORT_MODEL_PATH=str(pinned)):
        pinned_conf = get_support_settings()
        assert pinned_conf.resolved_model_path() == pinned
        assert pinned_conf.configured_model_path() == pinned


def test_get_chat_model_switches_on_promotion_and_rollback(data_dir: Path) -> None:
    root = get_support_settings().chat_models_dir
    shipped = backends.get_chat_model()
    assert isinstance(shipped, FileChatModel)
    assert shipped.model_path == str(get_support_settings().configured_model_path())
    assert backends.get_chat_model() is shipped  # built once while CURRENT stays
    v1 = _version(root)
    chat_models.publish(root, v1.version)
    promoted = backends.get_chat_model()
    assert isinstance(promoted, FileChatModel) and promoted.model_path == str(v1.model_file)
    assert backends.get_chat_model() is promoted
    chat_models.rollback(root)
    back = backends.get_chat_model()
    assert isinstance(back, FileChatModel) and back.model_path == shipped.model_path
    # CURRENT naming a folder deleted by hand: the configured model, not an error.
    chat_models.publish(root, v1.version)
    shutil.rmtree(v1.path)
    assert backends.get_chat_model() is back


def test_installed_and_overridden_models_win(data_dir: Path) -> None:
    root = get_support_settings().chat_models_dir
    fake = FakeChatModel("installed")
    backends.set_backend("chat_model", fake)
    chat_models.publish(root, _version(root).version)
    assert backends.get_chat_model() is fake  # a test's or benchmark's model is kept
    candidate = FakeChatModel("candidate")
    seen_elsewhere: list[object] = []
    with backends.chat_model_override(candidate):
        assert backends.get_chat_model() is candidate
        other = threading.Thread(target=lambda: seen_elsewhere.append(backends.get_chat_model()))
        other.start()
        other.join()
    assert seen_elsewhere == [fake]  # other threads keep serving the installed model
    assert backends.get_chat_model() is fake


CHILD = """
import sys
import django
django.setup()
from support import backends
for line in sys.stdin:
    print(backends.get_chat_model().model_path, flush=True)
"""


def test_a_promotion_switches_another_running_process(data_dir: Path) -> None:
    """A serving process started before the promotion answers with the promoted model at its
    next answer, and with the earlier one after a rollback: no restart, no message."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatbot.settings.test",
        "SUPPORT_DATA_DIR": str(data_dir),
        "SUPPORT_GENERATOR_BACKEND": FAKE_BACKEND,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None

    def served() -> str:
        child.stdin.write("?\n")
        child.stdin.flush()
        return child.stdout.readline().strip()

    try:
        root = get_support_settings().chat_models_dir
        shipped = served()
        assert shipped == str(get_support_settings().configured_model_path())
        v1 = _version(root)
        chat_models.publish(root, v1.version)
        assert served() == str(v1.model_file)
        chat_models.rollback(root)
        assert served() == shipped
    finally:
        child.stdin.close()
        child.wait(timeout=30)


@pytest.mark.slow
def test_real_model_switches_while_a_stream_finishes_on_the_old_one(tmp_path: Path) -> None:
    """With the real ctransformers backend: a promoted copy of the shipped GGUF gets its own
    compatibility copy and warms up; a stream that started on the previous model finishes
    with it (it is not closed under the stream) and says what the new one says."""
    with override_settings(SUPPORT_DATA_DIR=tmp_path, SUPPORT_MODEL_THREADS=1):
        backends.reset_backends()
        try:
            conf = get_support_settings()
            old = backends.get_chat_model()
            prompt = old.tokenize(
                old.render_chat([{"role": "user", "content": "Say hello to the customer."}])
            )
            params = GenerationParams(max_tokens=12)
            stream = old.stream(prompt, params)
            first = next(stream)
            root = conf.chat_models_dir
            version = chat_models.next_version(root)
            staging = chat_models.staging_dir(root, version)
            staging.mkdir(parents=True)
            shutil.copyfile(conf.configured_model_path(), staging / chat_models.MODEL_FILE)
            promoted = chat_models.install(root, staging, version, {"copy_of": "shipped"})
            chat_models.publish(root, version)
            new = backends.get_chat_model()
            assert new is not old
            assert getattr(new, "model_path", None) == promoted.model_file
            rest = stream.text()  # the old model keeps generating
            assert stream.stats is not None and stream.stats.generated_tokens > 1
            with new.stream(prompt, params) as again:
                assert again.text() == first + rest  # same weights, same greedy answer
            warm_chat_model = dict(warmup.PARTS)["chat_model"]
            assert "generated" in warm_chat_model()  # warm-up runs the served version
            # Its compatibility copy can be forgotten when the version is deleted: the copy is
            # shared with the identical shipped file, so it stays.
            cache = conf.model_cache_dir
            assert ensure_compatible_gguf(promoted.model_file, cache).is_file()
            assert compat_copy_forget(promoted.model_file, cache) is False
        finally:
            backends.reset_backends()


def test_forgetting_a_deleted_versions_compat_copy(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    cache.mkdir()
    mine, shared, other = (tmp_path / n for n in ("v1.gguf", "v2.gguf", "shipped.gguf"))
    for path in (mine, shared, other):
        path.write_bytes(b"GGUF")
    digests = {
        str(mine.resolve()): {"sha256": "aa"},
        str(shared.resolve()): {"sha256": "bb"},
        str(other.resolve()): {"sha256": "bb"},
    }
    (cache / gguf_compat._DIGESTS_FILE).write_text(json.dumps(digests))
    for digest in ("aa", "bb"):
        (cache / f"{digest}{gguf_compat._COMPAT_SUFFIX}").write_bytes(b"copy")
    assert compat_copy_forget(mine, cache) is True
    assert not (cache / f"aa{gguf_compat._COMPAT_SUFFIX}").exists()
    assert compat_copy_forget(shared, cache) is False  # the shipped file still uses it
    assert (cache / f"bb{gguf_compat._COMPAT_SUFFIX}").exists()
    assert compat_copy_forget(mine, cache) is False  # already forgotten
