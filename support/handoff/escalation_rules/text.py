"""Text normalisation shared by the rules: case, accents, chat-speak and near-miss typos."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .real_words import REAL_WORDS

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Chat-speak that hides the words the rules look for. Whole words only.
_CHAT_SPEAK = {
    "u": "you",
    "ya": "you",
    "yu": "you",
    "ur": "your",
    "yr": "your",
    "pls": "please",
    "plz": "please",
    "plx": "please",
    "wanna": "want to",
    "gotta": "got to",
    "gimme": "give me",
    "lemme": "let me",
    "sb": "somebody",
    "smb": "somebody",
    "sum1": "someone",
    "some1": "someone",
    "any1": "anyone",
    "rep": "representative",
    "cs": "customer service",
    "asap": "now",
    "ppl": "people",
    "dont": "don't",
    "cant": "can't",
    "im": "i'm",
    "wth": "with",
    "wiht": "with",
    "w/": "with",
    "wid": "with",
    "wit": "with",
    "reps": "representatives",
    "exec": "executive",
    "execs": "executives",
    "mgr": "manager",
    "cust": "customer",
    "callback": "call back",
    "noone": "no one",
    "nobdy": "nobody",
    "ne1": "anyone",
    "every1": "everyone",
    "no1": "no one",
    # Misspellings of short words that the one-edit correction below leaves alone (it only
    # reads words of 5 letters or more, where one edit rarely makes another real word).
    "ther": "there",
    "tlak": "talk",
    "takl": "talk",
    "spek": "speak",
    "humn": "human",
    "hmn": "human",
    "hooman": "human",
    "hoomans": "humans",
    "agnt": "agent",
    "prsn": "person",
    "cll": "call",
    "calll": "call",
    "representive": "representative",
    "costumer": "customer",
    "r": "are",
    "spk": "speak",
    "req": "request",
    "smone": "someone",
    "sm1": "someone",
    "smbdy": "somebody",
    "smbd": "somebody",
    "cc": "customer care",
    "nt": "not",
    "nto": "not",
    "oen": "one",
    "calback": "call back",
    "callbak": "call back",
    "callabck": "call back",
}
# "plzz", "plsss", "pleaseee", "pleez", "plese": all "please" ("pleas" is a word).
_PLEASE = re.compile(r"pl+(?:[sz]+|e+a*[sz]+e*|ea+[sz]+e+)")
# A letter typed three times or more ("agenttt", "humannn", "hellooo") counts twice at most: the
# typo reading then takes it from there.
_RUN = re.compile(r"([a-z])\1{2,}")
# Words split in two by fast typing ("some one", "any one there?"), joined again. Not "some
# body" ("some body lotion"), and "no one" stays two words: the rules read it as it is.
_SPLIT_WORDS = re.compile(r"\b(some|any) one\b")
# Typos that make another real word, read as meant only where the next words say so ("tak to
# agent", "cal me back", "cat with a person"; "kab tak", "100 cal" and "my cat" stay).
_IN_CONTEXT = (
    (re.compile(r"\b(?:tak|tal) (?=(?:to|with) )"), "talk "),
    (re.compile(r"\bcal (?=(?:me|back|us)\b)"), "call "),
    (
        re.compile(
            r"\b(?:cat|chart|caht) (?=with (?:a |an |the |some |your |one )?(?:real |live )?"
            r"(?:person|human|agent|someone|somebody|executive|representative|operator)\b)"
        ),
        "chat ",
    ),
)
# A digit for "to" after a verb of contact ("talk 2 someone", "connect me 2 an agent").
_TWO = re.compile(r"\b((?:talk|speak|chat|connect|transfer|put|reach)(?: me)?) 2\b")
# Expletives used as intensifiers ("chat with a damn agent", "the bloody invoice"): dropped
# where they would only split the words a rule looks for.
_EXPLETIVE = re.compile(
    r"\b(?:fucking|fuckin|freaking|frigging|friggin|bloody|damn|damned|goddamn|goddamned|"
    r"effing|bleeping|sodding|flipping|stupid)\s+(?=[a-z])"
)
# Words the rules key on. A token that is not a real word and is one typo (insertion, deletion,
# substitution, transposition) away from one of these is read as it ("eprson", "agnet", "tlak",
# "custmer"); two typos for words of 8 letters or more ("reprsentitive", "exicutve"), since
# customers type fast and the rules must not miss the few words a request is made of.
KEY_WORDS = (
    "person",
    "someone",
    "somebody",
    "human",
    "being",
    "agent",
    "operator",
    "representative",
    "executive",
    "assistant",
    "advisor",
    "manager",
    "supervisor",
    "staff",
    "speak",
    "speaking",
    "talk",
    "talking",
    "chat",
    "chatting",
    "call",
    "back",
    "contact",
    "contacting",
    "connect",
    "transfer",
    "escalate",
    "want",
    "need",
    "with",
    "help",
    "live",
    "real",
    "care",
    "customer",
    "consumer",
    "service",
    "support",
    "center",
    "centre",
    "number",
    "please",
    "assistance",
    "anyone",
    "anybody",
    "available",
    "answering",
    "responding",
    "replying",
    "picking",
    "answer",
    "schedule",
    "arrange",
    "reachable",
    "complaint",
    "reclamation",
    "against",
    "company",
    "business",
    "organization",
    "claim",
)
_KEY_SET = frozenset(KEY_WORDS)
# Words of 8 letters or more are read through two typos (shorter ones through one): one typo in
# a long word rarely makes another word, two in a short one often do.
_TWO_TYPOS_FROM = 8
# Never "corrected": real words a typo or two away from a key word (the generated list of
# `real_words`, and these, which it lacks).
_KEEP = REAL_WORDS | frozenset(
    {
        "parson", "prison", "persons", "humans", "humane", "agents", "agency", "talks",
        "talked", "chats", "contacts", "speaks", "services", "supports", "customers",
        "companies", "businesses", "operators", "claims", "clams", "clamp", "assistants",
        "consumers", "complaints", "complain", "complains", "complained", "executives",
        "managers", "managed", "manages", "supervisors", "teachable", "connects", "transfers",
        "escalated", "escalates", "someones", "pleased", "plead", "pleas", "speck", "spear",
        "spent", "attack", "contract", "compact", "calls", "called", "caller", "callers",
        "calling", "wants", "wanted", "needs", "needed", "helps", "helped", "cared", "cares",
        "caring", "lived", "lives", "liver", "reals", "centers", "centres", "numbers",
        "numbered", "backs", "staffs", "beings", "replies", "reply", "answered", "answers",
        "responds", "picked", "picks", "tak", "cal", "tal", "nee", "ned", "wan", "wit", "liv",
        "calle", "talc", "balk", "walks", "walked", "wanna", "gonna",
        # Words of the other supported languages (and romanised Hindi) that the rules match as
        # they are, or that mean something else there.
        "persona", "persone", "agente", "agentes", "humano", "humana", "umano", "umana",
        "operatore", "operador", "contacto", "contatto", "contacte", "contato", "mensch",
        "service", "servicio", "servizio", "servico", "assistente", "assistent", "consumo",
        "humain", "humaine", "humains", "persoon", "personen", "umane", "reklamation",
        "reclamacion", "wann", "mit", "cara", "caro", "vale", "vive", "reale", "wil", "wel",
        "kal", "bak", "kaal", "kab", "karo", "baat", "bat", "chal", "chalo", "wala", "wale",
        "wali", "nahi", "nai", "hai", "hua", "huwa", "kya", "kar",
    }
)  # fmt: skip


def _deletes(word: str, depth: int) -> set[str]:
    """`word` with up to `depth` letters left out (itself included)."""
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


def _typos(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    two neighbouring letters."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _allowed_typos(token: str, key: str) -> int:
    # Two typos only in a long word whose first letter is right ("reprsentitive"): "rollback"
    # is not "callback".
    if min(len(token), len(key)) >= _TWO_TYPOS_FROM and token[0] == key[0]:
        return 2
    return 1


# SymSpell-style index: the key words with up to one (two for long words) letters left out.
_DELETE_INDEX: dict[str, set[str]] = {}
for _w in KEY_WORDS:
    for _d in _deletes(_w, 2 if len(_w) >= _TWO_TYPOS_FROM else 1):
        _DELETE_INDEX.setdefault(_d, set()).add(_w)


@lru_cache(maxsize=8192)
def _fix_token(token: str) -> str:
    if len(token) < 3 or not token.isalpha() or token in _KEY_SET or token in _KEEP:
        return token
    depth = 2 if len(token) >= _TWO_TYPOS_FROM else 1
    candidates = {k for d in _deletes(token, depth) for k in _DELETE_INDEX.get(d, ())}
    scored = sorted(
        (n, k) for k in candidates if (n := _typos(token, k)) <= _allowed_typos(token, k)
    )
    if not scored:
        return token
    # Two key words equally close ("centr": center or centre): no guess.
    if len(scored) > 1 and scored[1][0] == scored[0][0]:
        return token
    return scored[0][1]


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """Lower case, no accents, single spaces, curly quotes straightened, chat-speak expanded,
    near-miss typos of key words corrected. Punctuation other than ' ? ! . , is dropped."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    text = strip_accents(text.lower())
    # Glued words from fast typing ("uhelp", "consumerclaim") are left alone: rare, and
    # splitting them guesses.
    text = re.sub(r"[^a-z0-9'?!.,\s]", " ", text)
    out: list[str] = []
    for raw in _SPACE.split(text.strip()):
        if not raw:
            continue
        m = re.fullmatch(r"([^a-z0-9']*)([a-z0-9']+)([^a-z0-9']*)", raw)
        if m is None:
            out.append(raw)
            continue
        pre, word, post = m.groups()
        word = _RUN.sub(r"\1\1", word)
        if _PLEASE.fullmatch(word) and word != "pleas":
            word = "please"
        word = _CHAT_SPEAK.get(word, word)
        if " " not in word:
            # Chat-speak again: the typo reading may land on a word it spells out ("callback").
            fixed = _fix_token(word)
            word = _CHAT_SPEAK.get(fixed, fixed)
        out.append(pre + word + post)
    joined = _SPLIT_WORDS.sub(r"\1one", " ".join(out))
    for pattern, meant in _IN_CONTEXT:
        joined = pattern.sub(meant, joined)
    return _TWO.sub(r"\1 to", joined)


def drop_expletives(norm: str) -> str:
    """`norm` (normalised text) without intensifying expletives."""
    return _EXPLETIVE.sub("", norm)


def words(text: str) -> list[str]:
    """Word tokens of already-normalised text."""
    return _WORD.findall(text)
