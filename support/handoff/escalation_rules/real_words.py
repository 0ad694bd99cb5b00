"""Real words a typo or two away from the key words of `text.KEY_WORDS`: never "corrected".

Generated from the whole-word entries of the embedder's word-piece vocabulary
(all-MiniLM-L6-v2, the BERT uncased vocabulary, Apache-2.0): every entry that is not a key word
and is within the typos `text` reads through (one, two for words of 8 letters or more) of one.
Regenerate after changing the key words:

    python -m support.handoff.escalation_rules.real_words path/to/vocab.txt
"""

from __future__ import annotations

_WORDS = """
aback acre adviser advisors advisory agents alive all answers ant are argent arranged arranger
assistants assisting bach backs ball bank bare bark beck beings bing black boeing bring buck
businesses cade cafe cage cake cal cale calf calls calm came cane cape car cara card cared cares
carey carl carp carr cars cart cary case cat cave cell centers centred centres centro cha chad
chan changing chant chanting chao char charging charming chart charting cheat cheating chet
claims clair clare clive cmll coat complain complained complaints compliant conducting
connecting connects consider consular consume consumed consumers contacts containing contract
contracting contrasting core cure customary customers dare deal deed dive enter escalated
executing execution executives fall fare feed five gall give hack hall hare hat heal heap held
hell helm helps hive humane humans hunan jack kant kicking lack lease licking lie life like lime
line liv lived liver lives love lumber mack mall manage managed managers manages mare meal neal
ned nee needs needy numbers olive operated operates operatic operation operators organisation
organisations organizational organizations pack packing peak peaking pearson persona persons
pleas pleased rack rare read realm rear reed reel regal relaxation relying renal replacing
representation representatives sack sant scare scheduled schedules seal seed serviced services
sneak sneaking speaks spear speeding spelling spending spraying spreading stalk stalking steak
stealing steaming stiff stuff superior supervise supervised supervision supervisors supervisory
supports swearing sweating tack tak taking tal tale talks tall taluk tank task that ticking
transfers transform wait walk walking wall walt wan wand wang wants ware wat watt weed went what
width wish wit witch wits zack
"""
REAL_WORDS = frozenset(_WORDS.split())


def generate(vocab_lines: list[str]) -> list[str]:
    """The entries of a word-piece vocabulary that `text` must leave alone, sorted."""
    from .text import _DELETE_INDEX, _KEY_SET, _TWO_TYPOS_FROM, _allowed_typos, _deletes, _typos

    out = set()
    for raw in vocab_lines:
        word = raw.strip()
        if len(word) < 3 or not word.isalpha() or not word.islower() or word in _KEY_SET:
            continue
        depth = 2 if len(word) >= _TWO_TYPOS_FROM else 1
        keys = {k for d in _deletes(word, depth) for k in _DELETE_INDEX.get(d, ())}
        if any(_typos(word, k) <= _allowed_typos(word, k) for k in keys):
            out.add(word)
    return sorted(out)


if __name__ == "__main__":
    import sys
    import textwrap
    from pathlib import Path

    words = generate(Path(sys.argv[1]).read_text(encoding="utf-8").splitlines())
    body = textwrap.fill(" ".join(words), width=96)
    me = Path(__file__)
    source = me.read_text(encoding="utf-8")
    start = source.index('_WORDS = """\n') + len('_WORDS = """\n')
    end = source.index('\n"""\nREAL_WORDS', start)
    me.write_text(source[:start] + body + source[end:], encoding="utf-8")
    print(f"{len(words)} words")
