"""The answer to a customer's question, as explicit stages over frozen values.

    retrieve -> decide -> recall -> generate -> check -> cite        (pipeline.answer_compose)

- `retrieve.py`: the passages, from the question (and, for a short follow-up, the question
  with the previous customer turn in front).
- `decide.py`: decline, quote the best fact, or let the model write; the facts it may use
  (`facts.py` selects them).
- `recall.py`: answer memory: an approved example's answer when its question matches closely
  and retrieval found its grounding chunk (checked against that chunk; then nothing is
  generated).
- `generate.py`: the prompt (`prompt.py`), grounded decoding, the streamed text shaped and held
  back while unsupported (`stream.py`), the leak guard (`leaks.py`).
- `check.py`: the groundedness check of the finished text (`grounding.py`).
- `cite.py`: the final text with its citations (`citations.py`), or the decline.

Each stage is a function of frozen inputs (`types.py`) returning a frozen result; reasons are
`reasons.AnswerReason`. Timings are collected by one recorder (`timing.py`). Import from the
submodules; this package module imports nothing, so the pure escalation rules can import
`support.answers.reasons` without loading the pipeline.
"""
