"""Is the customer frustrated? A formal complaint, abuse aimed at us, or strongly negative
sentiment (VADER). Swearing alone is not frustration: "where is my damn parcel" is an ordinary
question asked impatiently, and the bot can answer it."""

from __future__ import annotations

import re
import threading
from typing import Any

from .text import drop_expletives, normalise

# --- complaints ----------------------------------------------------------------------------------
_COMPLAINT_NOUN = r"(?:complaint|complain|reclamation|grievance)"
_ORG = r"(?:company|business|organization|organisation|firm|shop|store|service|brand|you)"
_EN_COMPLAINT = [
    # "file a complaint", "lodge a formal complaint", "make a customer reclamation"
    r"\b(?:file|filing|filed|lodge|lodging|make|making|submit|submitting|raise|raising|register|"
    r"registering|open|opening|write|writing|put in|send|sending|place|placing|issue|do|report)"
    r"\b(?: (?:a|an|the|my|this|official|formal|consumer|customer|new))*"
    rf" {_COMPLAINT_NOUN}s?\b",
    rf"\b{_COMPLAINT_NOUN}s? (?:against|about) (?:you|your|this|the)\b",
    r"\b(?:want|wish|need|would like|going|have|got) to complain\b",
    r"^\s*(?:complaint|i complain|formal complaint)\b",
    # "claim" is ambiguous (insurance, benefits, warranty): only a claim against us counts.
    rf"\bclaims? against (?:you|your|the|this) ?{_ORG}?\b",
    r"\b(?:consumer|customer) (?:claim|complaint|reclamation)s?\b",
    r"\blodg(?:e|ing) (?:a |an |my )?(?:\w+ )?claim\b",
    r"\b(?:unhappy|dissatisfied|disappointed|not satisfied|not happy|fed up|sick and tired)"
    r" with (?:you\b|(?:your|this|the) (?:service|company|support|business|work|product|"
    r"experience|team)\b)",
    r"\b(?:the )?experience with (?:you|your \w+) (?:was|has been|is) (?:too |so |really |very )?"
    r"(?:bad|awful|terrible|horrible|poor|disappointing)\b",
]
# Other supported languages (accent-free lower case).
_OTHER_COMPLAINT = [
    r"\b(?:beschwerde|beschweren|reklamation|reklamieren)\b",
    r"\b(?:plainte|reclamation|me plaindre|porter plainte)\b",
    r"\b(?:queja|quejarme|reclamacion|poner una reclamacion|denuncia)\b",
    r"\b(?:klacht|klagen|klacht indienen)\b",
    r"\b(?:reclamo|reclamare|lamentela|denuncia)\b",
    r"\b(?:reclamacao|queixa|reclamar)\b",
]
# "If I ever need to file a complaint, how does it work?" asks about the process.
_HYPOTHETICAL = re.compile(
    r"^(?:if|what if|in case|suppose|what happens if)\b|\bhow does .* work\b"
)

# --- abuse aimed at us ---------------------------------------------------------------------------
_INSULT = (
    r"(?:stupid|useless|idiot|idiots|idiotic|dumb|moron|morons|moronic|incompetent|pathetic|"
    r"worthless|garbage|trash|rubbish|crap|crappy|shit|shitty|joke|clowns?|liars?|thieves|"
    r"scammers?|scam|fraud|frauds|ridiculous|hopeless|a disgrace|disgraceful|terrible|awful|"
    r"horrible|the worst)"
)
_SUBJECT = (
    r"(?:you|you guys|you people|y'all|your (?:company|service|bot|chatbot|support|app|website|"
    r"site|shop|store|team|staff|product|system|platform|people)|(?:this|the) (?:bot|chatbot|"
    r"company|service|support|app|website|site|shop|store|chat|thing|system|platform|team|"
    r"staff|product))"
)
_EN_ABUSE = [
    rf"\b{_SUBJECT}(?: (?:are|is|was|were|'re|really|so|such|just|totally|completely|utterly|"
    rf"absolutely|a|an|bunch of|the))* {_INSULT}\b",
    rf"\b{_INSULT} (?:bot|chatbot|machine|robot|company|service|support|people|app|website)\b",
    r"\b(?:fuck|screw|damn) (?:you|off|this|your)\b",
    r"\b(?:shut up|go to hell|piss off|bugger off)\b",
    r"\bwaste of (?:my )?(?:time|money)\b",
    # Said about oneself: the mood, not the matter.
    r"\b(?:i'm|i am|i feel|i've been|i have been|i'm getting|i am getting)(?: so| really| very|"
    r" absolutely| extremely| completely| totally| beyond)? (?:furious|livid|outraged|disgusted|"
    r"pissed(?: off)?|fed up|sick of this|fuming|angry|mad|upset|frustrated|annoyed|"
    r"disappointed|sick and tired)\b",
    r"\b(?:this is|that's|that is|it's|it is|what a)(?: absolutely| completely| totally| just|"
    r" so| really)? (?:unacceptable|outrageous|a joke|ridiculous|a scam|a disgrace|insane|absurd|"
    r"terrible|awful|horrible|pathetic|shameful|appalling|disgraceful|infuriating)\b",
    r"\b(?:worst|terrible|awful|horrible|appalling) (?:service|company|support|experience|"
    r"customer service|bot|chatbot|shop|store|app)\b",
    # Said in two or three words, as real customers do: "poor service", "Bad Service!!",
    # "pathetic customer care", "waste app". (Not "bad service area": the network, a fault.)
    r"\b(?:poor|pathetic|lousy|useless|rubbish|disgusting|third class|very bad|so bad|such bad|"
    r"bad) (?:customer )?(?:service|support|care)\b(?! (?:area|coverage|signal|provider|plan|"
    r"center|centre|number|hours)\b)",
    r"^(?:very |so |really |too |such (?:a )?)?(?:poor|bad|pathetic|worst|horrible|terrible|"
    r"awful|useless|rubbish|lousy|third class|disgusting|waste|worthless)(?: of)?(?: (?:customer|"
    r"your|this))? (?:service|support|care|experience|response|app|company|bot|chatbot|"
    r"website)s?(?: ever)?[\s!.?]*$",
    r"\bi (?:hate|despise|can't stand|cannot stand) (?:you|this|your|dealing)\b",
    r"\b(?:never|not) (?:buy|buying|ordering|using) (?:from )?(?:you|your \w+) again\b",
    r"\b(?:you|this)(?: still)? (?:don't|do not|didn't|did not|never) (?:help|understand|listen|"
    r"answer|read)\b",
    r"\b(?:you're|you are|this is|that's|that is|it's|it is) not (?:helping|helpful|listening|"
    r"working for me|what i asked)\b",
    r"\b(?:how many times|for the (?:third|fourth|fifth|tenth|last) time|(?:third|fourth|fifth)"
    r" time (?:i|i'm|i am|i've|i have)|i (?:already|just) (?:told|asked|said)|asked (?:this|that|"
    r"you) (?:already|before|twice))\b",
    r"\b(?:nothing|none of this|none of (?:your|the) answers) (?:works|worked|helps|helped|"
    r"is working|makes sense)\b",
]
_OTHER_ABUSE = [
    # German
    r"\b(?:unverschamt|unverschamtheit|inakzeptabel|eine frechheit|eine katastrophe|"
    r"sauerei|nutzlos|idioten|betruger|abzocke|mir reicht'?s|ich bin (?:sehr )?wutend)\b",
    # French
    r"\b(?:inadmissible|inacceptable|scandaleux|honteux|nuls|incompetents|arnaque|escrocs|"
    r"je suis (?:tres )?(?:en colere|furieux|furieuse|enerve|enervee)|ras le bol|j'en ai marre)\b",
    # Spanish
    r"\b(?:inaceptable|vergonzoso|una verguenza|inutiles|incompetentes|estafa|estafadores|"
    r"estoy (?:muy )?(?:enfadado|enfadada|harto|harta|furioso|furiosa|molesto|molesta))\b",
    # Dutch
    r"\b(?:onacceptabel|schandalig|belachelijk|waardeloos|oplichters|oplichting|"
    r"ik ben (?:echt |heel )?(?:boos|woedend|het zat))\b",
    # Italian
    r"\b(?:inaccettabile|vergognoso|una vergogna|inutili|incompetenti|truffa|truffatori|"
    r"sono (?:molto )?(?:arrabbiato|arrabbiata|furioso|furiosa|stufo|stufa))\b",
    # Portuguese
    r"\b(?:inaceitavel|vergonhoso|uma vergonha|inuteis|incompetentes|golpe|golpistas|"
    r"estou (?:muito )?(?:irritado|irritada|furioso|furiosa|farto|farta|chateado|chateada))\b",
]
_COMPLAINT_RE = re.compile("|".join(f"(?:{p})" for p in _EN_COMPLAINT + _OTHER_COMPLAINT))
_ABUSE_RE = re.compile("|".join(f"(?:{p})" for p in _EN_ABUSE + _OTHER_ABUSE))
# Expletives used as intensifiers ("the damn invoice"): dropped before scoring sentiment,
# since impatience alone is not frustration (abuse aimed at us is matched above).
_EXPLETIVE = re.compile(
    r"\b(?:fucking|fuckin|freaking|frigging|bloody|damn|damned|goddamn|goddamned|effing|"
    r"bleeping|sodding|bloody hell)\b"
)
# Mild words VADER scores as strongly negative in support messages ("problem", "error", "back
# pain" describe the issue, not the mood): neutralised so "I have a problem with a payment
# error" stays calm.
_ISSUE_WORDS = re.compile(
    r"\b(?:problem|problems|issue|issues|error|errors|fail|failed|failing|failure|declined|"
    r"decline|lost|missing|cancel|cancelled|canceled|cancellation|delete|deleted|fee|fees|"
    r"charge|charged|penalty|fraud alert|wrong|broken|stuck|unable|can't|cannot|no|"
    r"pain|pains|painful|ache|aches|aching|backache|headache|injury|injured)\b"
)

_vader_lock = threading.Lock()
_vader: Any = None


def _analyzer() -> Any:
    # The lexicon loads from disk: once per process, on first use.
    global _vader
    if _vader is None:
        with _vader_lock:
            if _vader is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                _vader = SentimentIntensityAnalyzer()
    return _vader


# A conditional describes a situation ("what if my card was stolen?"), not the customer's mood.
_CONDITIONAL = re.compile(r"\b(?:if|in case|suppose|supposing|whether)\b")


def strongly_negative(text: str, threshold: float) -> bool:
    """VADER says strongly negative (at or below `threshold`) and it is not a conditional."""
    if _CONDITIONAL.search(text.lower()):
        return False
    return sentiment(text) <= threshold


def sentiment(text: str) -> float:
    """VADER compound score in -1..1 of the message without expletive intensifiers (pure)."""
    calm = _EXPLETIVE.sub(" ", text.lower())
    calm = _ISSUE_WORDS.sub(" ", calm)
    return float(_analyzer().polarity_scores(calm)["compound"])


def is_complaint(text: str) -> bool:
    norm = drop_expletives(normalise(text))
    if _HYPOTHETICAL.search(norm):
        return False
    return _COMPLAINT_RE.search(norm) is not None


def is_abusive(text: str) -> bool:
    return _ABUSE_RE.search(normalise(text)) is not None
