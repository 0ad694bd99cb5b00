"""Text normalisation shared by the rules: case, accents, chat-speak and near-miss typos."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

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
}
# Words split in two by fast typing ("some one", "any one there?"), joined again. Not "some
# body" ("some body lotion"), and "no one" stays two words: the rules read it as it is.
_SPLIT_WORDS = re.compile(r"\b(some|any) one\b")
# A digit for "to" after a verb of contact ("talk 2 someone", "connect me 2 an agent").
_TWO = re.compile(r"\b((?:talk|speak|chat|connect|transfer|put|reach)(?: me)?) 2\b")
# Expletives used as intensifiers ("chat with a damn agent", "the bloody invoice"): dropped
# where they would only split the words a rule looks for.
_EXPLETIVE = re.compile(
    r"\b(?:fucking|fuckin|freaking|frigging|friggin|bloody|damn|damned|goddamn|goddamned|"
    r"effing|bleeping|sodding|flipping|stupid)\s+(?=[a-z])"
)
# Words the rules key on; a token one edit away from one of these (length >= 5) is read as it
# ("eprson", "somneone", "agnet"), since customers type fast and the rules must not miss them.
KEY_WORDS = (
    "person",
    "someone",
    "somebody",
    "human",
    "agent",
    "operator",
    "representative",
    "assistant",
    "advisor",
    "speak",
    "speaking",
    "talk",
    "talking",
    "contact",
    "contacting",
    "chat",
    "chatting",
    "complaint",
    "reclamation",
    "consumer",
    "customer",
    "against",
    "company",
    "business",
    "organization",
    "service",
    "support",
    "please",
    "assistance",
    "claim",
    "executive",
    "manager",
    "supervisor",
    "anyone",
    "anybody",
    "available",
    "answering",
    "reachable",
    "connect",
    "transfer",
    "escalate",
)
# Never "corrected": real words one edit away from a key word.
_KEEP = frozenset(
    {
        "parson",
        "prison",
        "persons",
        "humans",
        "humane",
        "agents",
        "agency",
        "talks",
        "talked",
        "chats",
        "contacts",
        "speaks",
        "services",
        "supports",
        "customers",
        "companies",
        "businesses",
        "operators",
        "claims",
        "clams",
        "clamp",
        "assistants",
        "consumers",
        "complaints",
        "complain",
        "complains",
        "complained",
        "executives",
        "managers",
        "managed",
        "manages",
        "supervisors",
        "teachable",
        "connects",
        "transfers",
        "escalated",
        "escalates",
        "someones",
        "pleased",
        "plead",
        "pleas",
        "speck",
        "spear",
        "spent",
        "attack",
        "contract",
        "compact",
        # Words of the other supported languages that the rules match as they are.
        "persona",
        "persone",
        "agente",
        "agentes",
        "humano",
        "humana",
        "umano",
        "umana",
        "operatore",
        "operador",
        "contacto",
        "contatto",
        "contacte",
        "contato",
        "mensch",
        "service",
        "servicio",
        "servizio",
        "servico",
        "assistente",
        "assistent",
        "consumo",
        "humain",
        "humaine",
        "humains",
        "persoon",
        "personen",
        "umane",
        "reklamation",
        "reclamacion",
    }
)


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


# SymSpell-style index: every key word and its one-deletion variants.
_DELETE_INDEX: dict[str, str] = {}
for _w in KEY_WORDS:
    _DELETE_INDEX.setdefault(_w, _w)
    for _d in _deletes(_w):
        _DELETE_INDEX.setdefault(_d, _w)


@lru_cache(maxsize=8192)
def _fix_token(token: str) -> str:
    if len(token) < 5 or token in _KEEP or _DELETE_INDEX.get(token) == token:
        return token
    # Insertion ("perrson"), deletion ("peson"), substitution/transposition ("eprson").
    hit = _DELETE_INDEX.get(token)
    if hit is not None and abs(len(hit) - len(token)) <= 1:
        return hit
    for d in _deletes(token):
        hit = _DELETE_INDEX.get(d)
        if hit is not None and abs(len(hit) - len(token)) <= 1:
            return hit
    return token


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
        word = _CHAT_SPEAK.get(word, word)
        if " " not in word:
            word = _fix_token(word)
        out.append(pre + word + post)
    joined = _SPLIT_WORDS.sub(r"\1one", " ".join(out))
    return _TWO.sub(r"\1 to", joined)


def drop_expletives(norm: str) -> str:
    """`norm` (normalised text) without intensifying expletives."""
    return _EXPLETIVE.sub("", norm)


def words(text: str) -> list[str]:
    """Word tokens of already-normalised text."""
    return _WORD.findall(text)
