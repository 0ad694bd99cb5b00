"""Golden questions and the gate (issue 14, docs/learning.md "Golden questions and the gate").

- `questions.py`: the admin's golden questions (question -> expected document, or "should be
  declined") and their JSON Lines import.
- `evaluate.py`: cases run against an index version through the serving code (search and the
  answer decision), two runs compared: `gate_evaluate(before=..., after=...)`.
- `gate.py`: the stored report of each decision (`GateReport`), and the knowledge-base gate:
  a staged index version is published only when no golden question gets worse; otherwise it
  is held until someone publishes it anyway or keeps the old index.

Import from the submodules; this package module imports nothing.
"""
