"""The rules' vocabulary: every word list and compiled pattern the extractor matches with.

Compiled once at import, so mining a message is a handful of scans. A change to what
counts as a stance ("I'm not keen on"), a negation, a name that is not a name ("Looking"),
a relation word ("fiancée"), a room or an event is a change here; the modules beside this
one hold the logic that reads the matches. Catalog vocabulary (styles, materials, colours,
categories, brands, products) is not here: ``Catalog`` owns it, as trie-shaped patterns.

Every pattern runs in time linear in its text, whatever the text (``tests/test_regex_linear.py``
checks each one): Python's ``re`` backtracks, and one quadratic pattern on a 20,000-character
message holds its process for seconds. So two quantifiers never compete for the same text (a
run of blanks goes to one possessive quantifier, never to two in a row); a pattern that starts
with a run of blanks enters it only at its start (a look-behind: from inside the run it would
scan to the run's end again at every character); a run of words (fillers before a cue, words
before a bare cue) is bounded (``MAX_FILLERS``: nobody writes more in a row).
"""

from __future__ import annotations

import re
from typing import Literal

from service.catalog import Catalog
from service.extraction.dates import MONTH_NAMES, WEEKDAY_NAMES

_I = re.IGNORECASE

# -- text shape ------------------------------------------------------------------------------
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+|(?<=[.!?])(?=[A-Z])")
CLAUSE_SPLIT = re.compile(
    r";\s*+|,?(?<!\s)\s++(?:but|though|although|whereas|so|because|and|while)\s++"
    r"(?=(?:i|i'm|i've|i'd|i'll|we|we're|we've|we'd|my|our)\b)"
    r"|,\s++(?=(?:i|i'm|i've|i'd|we|we're|we've|we'd|my|our|do you|does|did you|can you|could you|would you|will you|"
    r"is there|are there|what|how|where|which|any chance|any)\b)",
    _I,
)
LEAD_FILLER = re.compile(
    r"^(?:(?:hi|hey|hello|hiya|yo|there|well|oh|ah|so|yeah|yes|yep|ok|okay|um|uh|hmm+|haha+|lol|wow|honestly|anyway|"
    r"btw|by the way|and|but|plus|also|actually|guess what|you know what|fun fact|oh my god|omg)\b[\s,!.:;-]*)+",
    _I,
)
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d]+")
QUESTION_START = re.compile(
    r"^(?:who|what|when|where|why|how|which|whose|do|does|did|can|could|would|will|is|are|was|were|have|has|"
    r"should|shall|may|might|any chance|is there|are there)\b",
    _I,
)
FILLER = re.compile(
    r"^(?:thanks?|thank you|thx|ty|wow|cool|great|awesome|nice|amazing|ok|okay|sure|yes|no|yeah|yep|nope|lol|"
    r"haha|hi|hello|hey|bye|goodbye|good night|good morning|sounds good|sounds great|that's \w+|that is \w+|"
    r"congrats|congratulations|me too|same here|perfect|got it|no worries|of course|absolutely|definitely|"
    r"you too|take care|see you|talk soon|glad to hear|good to hear|i see|i agree|exactly|true|right)\b",
    _I,
)
# small talk: one of these stances, then "you" later in the sentence ("I'm so proud of you"); the
# two are found apart (memories.is_small_talk), as one pattern joined by [^.]* they scan each
# sentence again from every stance in it
SMALL_TALK = re.compile(
    r"\b(?:i|i'm|i am|we|we're)\s++(?:\w+\s+){0,2}(?:glad|happy|proud|hope|bet|agree|thank|appreciate|miss|wish|"
    r"sorry|know|understand|imagine|can't wait|excited for|love that|love how|love it|admire|think)\b",
    _I,
)
TO_YOU = re.compile(r"\byou", _I)
OPINION_ONLY = re.compile(
    r"^(?:i|we)\s+(?:\w+\s+)?(?:think|guess|mean|suppose|believe|agree|bet|wonder|hope|see)\b", _I
)
CLAUSE_VERB = re.compile(
    r"\b(?:i|we|he|she|they|it|you)(?:'m|'re|'ve|'d|'ll)?\s+\w+|\b(?:am|is|are|was|were|be|been|being|have|has|had|do|does|"
    r"did|can|could|will|would|should|\w+ed|\w{2,}ing|loves?|likes?|hates?|prefers?|wants?|needs?|adores?|dislikes?|"
    r"enjoys?|don't|doesn't|never)\b|'s\s+(?:been|got|\w+ing)\b",
    _I,
)
VAGUE = re.compile(r"\b(?:it|that|this|those|these|them)\b", _I)
FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|we're|we've|we'd|we'll|us|our|ours)\b", _I)
WORDS = re.compile(r"[\w'-]+")
LIKES = re.compile(
    r"^(?:i|we)\s+(?:really\s+|also\s+|just\s+|absolutely\s+|totally\s+)?"
    r"(?:love|like|enjoy|adore|hate|dislike|prefer)\s+(?!(?:it|that|this|them|you|to|so|too)\W*$)"
    r"(?!(?:it|that|this|them|you)\b)\w",
    _I,
)

# -- customer name ------------------------------------------------------------------------------
NAME_WORD = r"[A-Z][a-zà-ÿ]+(?:-[A-Z][a-zà-ÿ]+)?"
NAME_PATTERNS = [
    re.compile(r"\b(?i:my\s+name(?:'s|\s+is))\s+(?P<name>[A-Za-zÀ-ÿ][a-zà-ÿ'-]+(?:\s+" + NAME_WORD + r")?)"),
    re.compile(
        r"(?:^|[.!?,]\s*+|\b(?i:hi|hey|hello)\b[\s,!]*+|\b(?i:and)\s++)(?i:i'm|i\s+am|im)\s++(?P<name>"
        + NAME_WORD
        + r"(?:\s+"
        + NAME_WORD
        + r")?)(?=\s*+(?:$|[.,!?;])|\s++(?i:and|from|here|by the way)\b)"
    ),
    re.compile(r"\b(?i:call\s+me)\s+(?P<name>" + NAME_WORD + r")(?=\s*+(?:$|[.,!?;])|\s++(?i:and|please)\b)"),
    re.compile(
        r"(?:^|\b(?i:hi|hey|hello)\b[\s,!]*+)(?i:this\s+is)\s++(?P<name>"
        + NAME_WORD
        + r"(?:\s+"
        + NAME_WORD
        + r")?)(?=\s*+(?:$|[.,!?;])|\s++(?i:here|from|speaking|and)\b)"
    ),
]
NOT_NAMES = (
    {
        w.lower()
        for w in [
            "looking",
            "not",
            "just",
            "here",
            "interested",
            "moving",
            "sorry",
            "fine",
            "good",
            "also",
            "still",
            "glad",
            "happy",
            "excited",
            "thinking",
            "planning",
            "trying",
            "going",
            "curious",
            "hoping",
            "sure",
            "afraid",
            "back",
            "done",
            "new",
            "ready",
            "really",
            "very",
            "super",
            "okay",
            "ok",
            "well",
            "always",
            "currently",
            "actually",
            "from",
            "in",
            "at",
            "on",
            "the",
            "a",
            "an",
            "totally",
            "definitely",
            "retired",
            "married",
            "single",
            "pregnant",
            "vegan",
            "so",
            "just",
            "only",
            "about",
            "into",
            "a",
            "bit",
            "kind",
            "sort",
            "back",
            "home",
            "off",
            "out",
            "over",
            "sick",
            "tired",
            "exhausted",
            "busy",
            "free",
            "open",
            "certain",
            "confused",
            "worried",
            "considering",
            "wondering",
            "shopping",
            "browsing",
            "after",
            "furnishing",
            "renovating",
            "redecorating",
            "decorating",
            "buying",
            "your",
            "their",
            "his",
            "her",
            "our",
            "my",
            "it",
            "that",
            "this",
            "there",
            "where",
            "what",
            "who",
            "how",
            "why",
            "when",
            "which",
            "yes",
            "no",
            "hi",
            "hello",
            "hey",
            "thanks",
            "thank",
            "please",
            "sir",
            "madam",
            "mr",
            "mrs",
            "ms",
            "dr",
            "mom",
            "mum",
            "dad",
            "mother",
            "father",
            "wife",
            "husband",
            "calling",
            "writing",
            "texting",
            "christmas",
            "easter",
            "today",
            "tomorrow",
            "yesterday",
            "american",
            "british",
            "canadian",
            "english",
            "french",
            "german",
            "italian",
            "spanish",
            "australian",
            "irish",
            "scottish",
        ]
    }
    | set(WEEKDAY_NAMES)
    | set(MONTH_NAMES)
)

# -- preferences -----------------------------------------------------------------------------------
# the words between a subject and its cue ("I really do love"): at most MAX_FILLERS of them, each a
# whole word; possessive in CUE_RE, where a filler never has to give its word back (no cue but
# "really into", which means what "into" does, starts with one), greedy where a cue may
# ("my wife is into": "is" is a filler)
MAX_FILLERS = 8
FILLERS = (
    r"(?:\s++(?:really|truly|absolutely|totally|just|also|still|definitely|do|does|would|am|are|is|have|has|"
    r"kind\s+of|kinda|sort\s+of|all|both|actually|now|honestly|generally|usually|always|mostly|so|very|quite|"
    r"personally|tend\s+to|seriously|particularly|especially|much|reckon\s+we|even|ever)\b)"
    rf"{{0,{MAX_FILLERS}}}"
)
# a negation between the subject and its cue flips the cue: "I don't love", "I'm not a fan of", "we never liked"
NEG = (
    r"(?:don't|dont|do\s+not|doesn't|does\s+not|didn't|did\s+not|never|not|won't|will\s+not|wouldn't|would\s+not|"
    r"can't|cannot|isn't|aren't|wasn't|weren't|no\s+longer|hardly)"
)
# (cue regex, polarity, strength, intent?) - order matters: negatives before positives
CUES: list[tuple[str, Literal["prefers", "dislikes"], float, bool]] = [
    (
        r"(?:hate|hates|hated|detest|detests|loathe|loathes|despise|despises|can't\s+stand|cannot\s+stand|can't\s+bear|cannot\s+bear|can't\s+do)",
        "dislikes",
        0.9,
        False,
    ),
    (r"(?:dislike|dislikes|disliked)", "dislikes", 0.7, False),
    (
        r"(?:not\s+a\s+(?:big\s+|huge\s+)?fan\s+of|not\s+into|not\s+keen\s+on|not\s+crazy\s+about|allergic\s+to|tired\s+of|sick\s+of|over\s+the\s+whole)",
        "dislikes",
        0.6,
        False,
    ),
    (
        r"(?:gone\s+off|went\s+off|go\s+off|no\s+longer\s+(?:like|love|want|into|a\s+fan\s+of|keen\s+on)|no\s+longer|moved\s+on\s+from|avoid|avoiding|stay\s+away\s+from|steer\s+clear\s+of|want\s+to\s+avoid)",
        "dislikes",
        0.6,
        False,
    ),
    (
        r"(?:love|loves|loved|loving|adore|adores|adored|obsessed\s+with|crazy\s+about|a\s+(?:big|huge)\s+fan\s+of|big\s+fans?\s+of|huge\s+fans?\s+of|in\s+love\s+with|passionate\s+about)",
        "prefers",
        0.9,
        False,
    ),
    (
        r"(?:prefer|prefers|preferred|rather\s+have|rather|lean\s+towards|leaning\s+towards|leaning\s+toward|lean\s+toward|opt\s+for|go\s+with|going\s+with|set\s+on|switch(?:ed|ing)?\s+to)",
        "prefers",
        0.7,
        False,
    ),
    (
        r"(?:want|wants|wanted|need|needs|needed|looking\s+for|searching\s+for|shopping\s+for|in\s+the\s+market\s+for|after|hoping\s+for|hoping\s+to\s+(?:get|find|buy)|planning\s+to\s+(?:get|buy)|thinking\s+of\s+(?:getting|buying)|like\s+to\s+(?:get|buy|find)|saving\s+up\s+for)",
        "prefers",
        0.7,
        True,
    ),
    (r"(?:show\s+me|show\s+us)", "prefers", 0.6, True),
    (
        r"(?:like|likes|liked|enjoy|enjoys|enjoyed|into|really\s+into|(?:a\s+)?fans?\s+of|keen\s+on|drawn\s+to|partial\s+to|fond\s+of|dig|go\s+for)",
        "prefers",
        0.6,
        False,
    ),
]
CUE_PARTS = [re.compile(r"^(?:" + c[0] + r")$", _I) for c in CUES]
SPAN_END = re.compile(
    r"[.;!?]|,?(?<!\s)\s++but\b(?!\s+not\b)|,\s++(?:though|however|just|only|rather|instead|except|while|whereas)\b"
    r"|(?<!\s)\s++(?:and|or)\s++(?:i|we)\b|(?<!\s)\s++(?:because|whereas)\b",
    _I,
)
INVERSE = re.compile(r"\b(?:rather\s+than|instead\s+of|over|not|but\s+not|as\s+opposed\s+to|no|never|without)\b", _I)
REPLACES = re.compile(
    r"\b(?:actually|changed\s+(?:my|our)\s+minds?|change\s+of\s+(?:heart|plans?)|instead|no\s+longer|gone\s+off|went\s+off|"
    r"any\s*more|these\s+days|switch(?:ed|ing)?\s+to|moved\s+on\s+from|not\s+(?:into|keen\s+on)\s+\w+\s+now)\b"
    r"|(?<!right\s)\bnow\b",
    _I,
)
# catalog words that modify furniture: "I hate glass tables" is about glass, not tables
MODIFIER_KIND = ("style", "material", "color", "brand")
# bare cues whose meaning is not their catalog cue's
BARE_CUE_MEANINGS: dict[str, tuple[Literal["prefers", "dislikes"], float, bool]] = {
    "loving": ("prefers", 0.9, False),
    "no longer into": ("dislikes", 0.6, False),
}
SIZE = re.compile(
    r"\b(small|smaller|compact|apartment[-\s]sized|tiny|space[-\s]saving|narrow|large|larger|big|bigger|huge|oversized|"
    r"extra[-\s]large|spacious|roomy|deep|deeper|low|tall|king[-\s]size|queen[-\s]size)\b",
    _I,
)
SIZE_CANON = {
    "small": "small",
    "smaller": "small",
    "compact": "small",
    "tiny": "small",
    "narrow": "narrow",
    "large": "large",
    "larger": "large",
    "big": "large",
    "bigger": "large",
    "huge": "large",
    "oversized": "large",
    "spacious": "large",
    "roomy": "large",
    "deep": "deep",
    "deeper": "deep",
    "low": "low",
    "tall": "tall",
}
NUMBER = (
    r"(?P<num>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s*+(?P<mult>k|thousand|grand)\b|\s++(?=\w)|\b)"
    r"(?:\s*+(?P<curword>dollars|bucks|usd|eur|euros|pounds))?"
)
BUDGET_LIMIT = re.compile(
    r"\b(?P<word>under|below|less\s+than|no\s+more\s+than|not\s+more\s+than|max(?:imum)?|at\s+most|up\s+to|within|around|about|"
    r"roughly|budget(?:\s+is|\s+of)?(?:\s+(?:around|about|roughly|under|of|is))*|spend(?:ing)?(?:\s+(?:up\s+to|around|about|roughly|under|max))*|cap\s+of)"
    r"\s*(?:of\s+)?(?:a\s+)?(?P<cur>[$£€])?\s?"
    + NUMBER
    + r"(?!\s*(?:cm|mm|m\b|in\b|inch|inches|ft|feet|foot|\"|%|people|guests|seats|years|kids"
    + r"|days|weeks|months|hours|minutes|miles|km|kg|lbs))",
    _I,
)
APPROXIMATE = ("around", "about", "roughly")
BUDGET_AFTER = re.compile(
    r"(?P<cur>[$£€])\s?(?P<num>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s*+(?P<mult>k|thousand|grand))?"
    r"\s++(?:budget|max|maximum|tops|or\s+less|or\s+under)\b",
    _I,
)

# a size word counts with a category in the span, or with "something": "something compact"
SOMETHING = re.compile(r"\bsomething\b", _I)
# "in navy", "with a velvet ...": a colour or material wished for outside any stance (on lower-cased text)
SOFT_WISH_BEFORE = re.compile(r"\b(?:in|with)\s+(?:a\s+|the\s+)?(?:\w+\s+)?$")

# -- purchases ----------------------------------------------------------------------------------------
PURCHASE = re.compile(
    r"(?:\b(?:i|we|my\s+(?:wife|husband|partner|girlfriend|boyfriend|mom|mum|dad|parents|family))(?:'ve|'d)?"
    r"(?:\s+(?:just|recently|finally|already|actually|also|have|had|went\s+ahead\s+and|ended\s+up))*\s+"
    # or no subject at all: "Just bought the Arlo sofa", "Finally ordered the rug"
    r"|^\s*(?:(?:just|recently|finally|already|also)\s+)*)"
    r"(?P<verb>bought|purchased|ordered|got|picked\s+up|splurged\s+on|treated\s+(?:myself|ourselves)\s+to|"
    r"invested\s+in|went\s+with|brought\s+home|snagged|grabbed)\b",
    _I,
)
ORDER_ID = re.compile(
    r"\border\s*+(?:#|no\.?|number|num|id|ref)?\s*+[:#]?\s*+#?\s*+(?P<id>[A-Z0-9][A-Z0-9-]{2,})\b"
    r"|#\s?(?P<id2>[A-Z0-9][A-Z0-9-]{2,})\b",
    _I,
)
# a price never starts inside another number's groups of digits ("1,234,567" is read from "1",
# not again from "234" and "567")
PRICE = re.compile(
    r"[$£€]\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s*(k)?\b"
    r"|(?<!\d,)\b(\d{1,3}(?:,\d{3})++|\d+)\s*+(?:dollars|bucks|usd)\b",
    _I,
)
QUANTITY = re.compile(
    r"(?:\b(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten|twelve|a\s+pair\s+of|pair\s+of|a\s+couple\s+of|"
    r"a\s+set\s+of\s+(?:two|three|four|five|six|eight|\d{1,2})|set\s+of\s+(?:two|three|four|five|six|eight|\d{1,2})))"
    r"(?:\s+[\w'-]+){0,3}?\s*$",
    _I,
)
QTY_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "pair": 2,
    "couple": 2,
}
ARTICLES = re.compile(
    r"^(?:(?:a|an|the|some|our|my|new|brand\s+new|this|that|these|those|\d+|two|three|four|six|pair\s+of|set\s+of)\s+)+",
    _I,
)

# what was bought ends at the sentence's end, a "but", or a new subject
PURCHASE_END = re.compile(r"[.;!?]|,?(?<!\s)\s++but\b|(?<!\s)\s++and\s++(?:i|we|it|she|he|they)\b", _I)
# a purchased item's noun phrase starts after the last of these: "a sofa and a new couch" -> "a new couch"
PHRASE_BREAK = re.compile(r"[,;:]|\b(?:and|with|for|from|at|on|in)\b", _I)

# -- interests -------------------------------------------------------------------------------------------
INTEREST_CUE = re.compile(
    r"\b(?:show\s+me|can\s+i\s+see|could\s+i\s+see|let\s+me\s+see|do\s+you\s+(?:have|sell|carry|stock|do)|have\s+you\s+got|"
    r"got\s+any|any|looking\s+for|look(?:ing)?\s+at|searching\s+for|shopping\s+for|in\s+the\s+market\s+for|"
    r"tell\s+me\s+(?:more\s+)?about|what\s+about|how\s+about|recommend|suggest|interested\s+in|need|want|"
    r"browsing|how\s+much|price\s+of|details\s+(?:on|about)|info(?:rmation)?\s+(?:on|about)|compare|options\s+for|"
    r"in\s+stock|available|thinking\s+(?:of|about)|considering|after)\b",
    _I,
)
VIEWED_CUE = re.compile(
    r"\b(?:saw|seen|looked\s+at|checked\s+out|viewed|was\s+browsing|been\s+eyeing|eyeing|"
    r"spotted|came\s+across)\b",
    _I,
)

# -- people and pets -----------------------------------------------------------------------------------------
PARTNERS = [
    "wife",
    "husband",
    "partner",
    "spouse",
    "girlfriend",
    "boyfriend",
    "fiancée",
    "fiancee",
    "fiancé",
    "fiance",
    "hubby",
]
FAMILY = [
    "mom",
    "mum",
    "mother",
    "dad",
    "father",
    "sister",
    "brother",
    "son",
    "daughter",
    "kids",
    "children",
    "kid",
    "child",
    "baby",
    "twins",
    "grandma",
    "grandmother",
    "grandpa",
    "grandfather",
    "aunt",
    "uncle",
    "cousin",
    "niece",
    "nephew",
    "parents",
    "in-laws",
    "mother-in-law",
    "father-in-law",
    "sister-in-law",
    "brother-in-law",
    "stepson",
    "stepdaughter",
    "grandkids",
    "grandchildren",
    "toddler",
    "teenager",
    "sons",
    "daughters",
    "sisters",
    "brothers",
    "family",
]
FRIENDS = ["best friend", "friend", "friends", "bff", "roommate", "flatmate", "housemate"]
OTHERS = ["neighbour", "neighbor", "colleague", "coworker", "co-worker", "boss", "mentor", "landlord", "landlady"]
PETS = [
    "dog",
    "dogs",
    "cat",
    "cats",
    "puppy",
    "pup",
    "kitten",
    "rabbit",
    "bunny",
    "parrot",
    "bird",
    "hamster",
    "guinea pig",
    "fish",
    "turtle",
    "tortoise",
    "horse",
    "lizard",
    "snake",
    "pet",
]
REL_TYPE = {
    **dict.fromkeys(PARTNERS, "PARTNER_OF"),
    **dict.fromkeys(FAMILY, "FAMILY_OF"),
    **dict.fromkeys(FRIENDS, "FRIEND_OF"),
    **dict.fromkeys(OTHERS, "RELATED_TO"),
    **dict.fromkeys(PETS, "PET_OF"),
}
REL_WORDS = sorted(REL_TYPE, key=len, reverse=True)
REL_ALT = "|".join(re.escape(w) for w in REL_WORDS)
ADJ = (
    r"(?:(?i:little|older|younger|big|baby|twin|late|new|two|three|four|elder|eldest|youngest|oldest|best|dear|"
    r"lovely|old|sweet|fur|rescue|adorable|crazy|amazing|wonderful|beautiful|husky|lab|golden)\s+)*"
)
FAMILY_RE = re.compile(
    r"\b(?i:my|our)\s+" + ADJ + r"(?P<rel>(?i:" + REL_ALT + r"))(?P<poss>'s)?\b"
    r"(?:(?:\s*,\s*|\s+)(?:(?i:named|called)\s+)?(?P<name>" + NAME_WORD + r"))?"
)
NAMED_RE = re.compile(
    r"\b(?i:a|an|our|my|the)\s+"
    + ADJ
    + r"(?P<rel>(?i:"
    + "|".join(re.escape(w) for w in PETS + FAMILY + FRIENDS)
    + r"))\s+(?i:named|called)\s+(?P<name>"
    + NAME_WORD
    + r")"
)
# a relation word as the customer would say it -> as the graph records it
RELATION_NAMES = {"mum": "mother", "mom": "mother", "dad": "father", "hubby": "husband"}
NAME_IS_RE = re.compile(
    r"\b(?i:my|our)\s+(?P<rel>(?i:"
    + REL_ALT
    + r"))(?i:'s\s+name\s+is|\s+is\s+called|\s+is\s+named)\s+(?P<name>"
    + NAME_WORD
    + r")"
)
HAVE_KIDS = re.compile(
    r"\b(?:i|we)(?:'ve)?\s+(?:have|got|have\s+got)\s+(?:(?:a|an|one|two|three|four|five|\d)\s+)?(?:\w+\s+)?"
    r"(?P<rel>kids|children|sons|daughters|dogs|cats|son|daughter|dog|cat|puppy|kitten|baby)\b",
    _I,
)

# -- who is speaking in a clause ----------------------------------------------------------------------------
# The customer's own stance ("I", "we", "our family", "me and my wife") feeds their preferences; anyone
# else's ("my wife Emma", "he", "Tom", "Dana's husband") is remembered about that person instead.
NAME_SUBJ = (
    r"(?-i:(?!(?:Not|Never|No|Nope|Don't|Do|Does|Did|Didn't|Doesn't|Can't|Won't|Really|Honestly|Just|Also|Still|"
    r"Totally|Absolutely|Definitely|Love|Loving|Like|Hate|Looking|Show|Please|Maybe|Actually|So|And|But|Then|"
    r"Well|Anyway|Hi|Hey|Hello|Yes|Yeah|Ok|Okay|Oh|Now|Personally|Seriously|My|Our|His|Her|Their|Your|The|A|An|It|Its|"
    r"This|That|These|Those|There|Here|What|When|Where|How|Why|Who|Which|If|We|I|He|She|They|You|Me|Us)\b)[A-Z][a-zà-ÿ]+(?:-[A-Z][a-zà-ÿ]+)?)"
)
SELF_SUBJ = (
    r"(?:me\s+and\s+(?:(?:my|our)\s+\w+|" + NAME_SUBJ + r")|(?:(?:my|our)\s+\w+|" + NAME_SUBJ + r")\s+and\s+(?:i|me)"
    r"|(?:our|my)\s+(?:whole\s+)?(?:family|household)|the\s+whole\s+family|(?:both|all|the\s+two)\s+of\s+us"
    r"|i'm|im|i've|i'd|i'll|i|we're|we've|we'd|we'll|we)"
)
OTHER_SUBJ = (
    r"(?:(?:my|our|his|her|their|your|the)\s+" + ADJ + r"(?:" + REL_ALT + r")(?:'s\s+(?:" + REL_ALT + r"))?"
    r"(?:,?\s+" + NAME_SUBJ + r"(?:\s+" + NAME_SUBJ + r")?(?=[\s,]),?)?"
    r"|" + NAME_SUBJ + r"(?:'s\s+(?:" + REL_ALT + r"))?"
    r"|he|she|they|you|he's|she's|they're|you're|he'd|she'd|they'd|you'd|he'll|she'll|they'll"
    r"|everyone|everybody|nobody|no\s+one)"
)
CUE_ALT = "|".join(f"(?:{c[0]})" for c in CUES)
BARE = (
    r"no\s+longer\s+into|not\s+into|not\s+keen\s+on|loving|loved|loves|love|hated|hates|hate|liked|likes|like|adored|"
    r"adores|adore|preferred|prefers|prefer|disliked|dislikes|dislike|enjoyed|enjoy|can't\s+stand|obsessed\s+with|"
    r"really\s+into|into|gone\s+off|wants|want|needs|need|looking\s+for|searching\s+for|shopping\s+for|"
    r"in\s+the\s+market\s+for|show\s+me|show\s+us"
)
# the words before a cue whose subject is left out ("Honestly, really loving the velvet"), at most
# MAX_FILLERS of them
LEAD_WORDS = (
    r"(?:(?:hi|hey|hello|well|oh|ok|okay|so|um|honestly|anyway|really|totally|also|still|just|actually|currently|mainly|"
    r"mostly|now|please|can\s+you|could\s+you|would\s+you)[\s,!]++)"
    rf"{{0,{MAX_FILLERS}}}+"
)
CUE_RE = re.compile(
    r"\b(?:(?P<self>"
    + SELF_SUBJ
    + r")|(?P<other>"
    + OTHER_SUBJ
    + r"))\b"
    + FILLERS
    + r"+(?:\s+(?P<neg>"
    + NEG
    + r"))?"
    + FILLERS
    + r"+\s+(?P<cue>"
    + CUE_ALT
    + r")\b"
    r"|(?P<free>\b(?:(?:my|our)\s+favou?rite(?:\s+\w+)?\s+(?:is|are|has\s+to\s+be)|not\s+a\s+(?:big\s+|huge\s+)?fan\s+of"
    r"|(?:a\s+)?(?:big|huge)\s+fans?\s+of|(?:as\s+)?for\s+(?:me|us)(?:\s*+,)?\s++(?:it's|it\s+is|it\s+has\s+to\s+be|it\s+must\s+be"
    r"|nothing\s+beats))\b)"
    r"|(?P<ofav>\b(?:his|her|their|(?:my|our)\s+(?:"
    + REL_ALT
    + r")'s|"
    + NAME_SUBJ
    + r"'s)\s+favou?rite(?:\s+\w+)?\s+(?:is|are)\b)"
    # cues with the subject left out: "Loving the velvet", "never liked leather", "show me oak tables",
    # "I love walnut and hate glass" (the subject of "hate" is the one before "and")
    r"|(?:^|[,;:.!]\s*+|\b(?P<conj>and|but|or|yet|then|plus)\s++)"
    + LEAD_WORDS
    + r"(?:(?P<bneg>"
    + NEG
    + r")\s+(?:really\s+|particularly\s+|much\s+|even\s+|ever\s+)?)?(?P<bare>"
    + BARE
    + r")\b",
    _I,
)
LEAD_SUBJ = re.compile(
    r"(?:(?P<self>"
    + SELF_SUBJ
    + r")|(?P<other>"
    + OTHER_SUBJ
    + r")|(?P<forme>(?:as\s+)?for\s+(?:me|us)\b|me\s*,))(?!\w)",
    _I,
)
# a new clause starts where a conjunction or comma is followed by a new subject:
# "I love walnut and my wife Emma hates glass", "but he prefers", ", while Tom likes", "; she loves"
SUBJ_CUT = re.compile(
    r"(?:(?<!\s)\s*+;\s*+|,?(?<!\s)\s++(?:and|but|or|so|yet|while|whereas|though|although|because|plus)\s++"
    r"|,\s++(?:while|whereas|but|though|although)\s++|,\s++)"
    r"(?=(?:(?P<self>"
    + SELF_SUBJ
    + r")|(?P<other>"
    + OTHER_SUBJ
    + r"))(?![\w'])"
    + FILLERS
    + r"(?:\s+(?P<next>[\w']+)))",
    _I,
)
VERBISH = re.compile(
    r"^(?:" + CUE_ALT + r"|" + NEG + r"|\w+s|\w+ed|is|was|has|had|does|did|can|could|will|would|should|might|must|"
    r"thinks?|says?|went|got|bought|made|took|came)$",
    _I,
)
OTHER_STANCE = re.compile(
    r"(?:"
    + OTHER_SUBJ
    + r")"
    + FILLERS
    + r"(?:\s+"
    + NEG
    + r")?"
    + FILLERS
    + r"\s+(?:loves|likes|hates|adores|enjoys|prefers|dislikes|loved|liked|hated|adored|enjoyed|"
    r"is\s+(?:obsessed\s+with|into|a\s+(?:big\s+|huge\s+)?fan\s+of)|can't\s+stand)\b",
    _I,
)
OTHER_PRONOUNS = {
    "he",
    "she",
    "they",
    "you",
    "he's",
    "she's",
    "they're",
    "you're",
    "he'd",
    "she'd",
    "they'd",
    "you'd",
    "he'll",
    "she'll",
    "they'll",
    "everyone",
    "everybody",
    "nobody",
    "no",
}
# a determiner or possessive opening a subject: "my wife", "the kids" (alone it is no subject)
POSSESSIVE_HEADS = ("my", "our", "his", "her", "their", "your", "the")
# "Me and my husband", "My wife and I", "Some friends from church and I", "Max and I": one compound subject
COMPOUND_HEAD = re.compile(
    r"^\s*(?:(?:me|my|our|some|the|a|an|his|her|their)\b(?:\s+[\w'-]+){0,4}|" + NAME_SUBJ + r")\s*$", _I
)
AND_SEP = re.compile(r"^,?\s+and\s+$", _I)
STANCE_WORD = re.compile(r"^(?:" + CUE_ALT + r"|" + NEG + r"|obsessed|crazy|into|keen|fond|allergic)$", _I)
PRONOUN_OBJECT = re.compile(r"[^.,;!?]{0,30}?\b(?:it|them|that|this|him|her|me|us|you)\b[^.,;!?\w]*(?:$|[.,;!?])", _I)
REQUEST_BARE = re.compile(
    r"^(?:show\s+(?:me|us)|looking\s+for|searching\s+for|shopping\s+for|in\s+the\s+market\s+for)$", _I
)
NOT_SUBJECT = NOT_NAMES | {
    "really",
    "honestly",
    "personally",
    "totally",
    "absolutely",
    "seriously",
    "still",
    "definitely",
    "kinda",
    "mostly",
    "generally",
    "usually",
    "always",
    "now",
    "then",
    "and",
    "but",
    "plus",
    "or",
    "never",
    "loving",
    "love",
    "hate",
    "like",
    "please",
    "maybe",
    "perhaps",
    "anyway",
    "anyways",
    "everything",
    "nothing",
    "something",
    "which",
}

# -- rooms, homes, places, workplaces, events ------------------------------------------------------------
ROOMS = [
    "living room",
    "family room",
    "sitting room",
    "front room",
    "great room",
    "lounge",
    "master bedroom",
    "main bedroom",
    "guest bedroom",
    "guest room",
    "spare room",
    "spare bedroom",
    "bedroom",
    "dining room",
    "kitchen",
    "breakfast nook",
    "home office",
    "office",
    "study",
    "nursery",
    "kids' room",
    "kids room",
    "playroom",
    "den",
    "basement",
    "attic",
    "patio",
    "balcony",
    "garden",
    "backyard",
    "back yard",
    "terrace",
    "porch",
    "deck",
    "entryway",
    "hallway",
    "foyer",
    "mudroom",
    "sunroom",
    "conservatory",
    "reading nook",
    "bathroom",
    "laundry room",
    "media room",
    "games room",
    "game room",
    "library",
    "loft bedroom",
    "studio apartment",
    "apartment",
    "flat",
    "condo",
    "house",
    "cabin",
    "cottage",
]
HOME_TYPES = {"studio apartment", "apartment", "flat", "condo", "house", "cabin", "cottage"}
ROOM_RE = re.compile(
    r"\b(?P<det>my|our|the|a|an|new|his|her|their|for\s+the|in\s+the)?\s*(?P<room>"
    + "|".join(re.escape(r) for r in sorted(ROOMS, key=len, reverse=True))
    + r")(?:s)?\b"
    r"(?!\s*(?:table|chair|stool|set|sofa|couch|furniture|bench|lamp|rug|light|sectional|mirror|cabinet|shelf|"
    r"desk|island|ideas?|party|warming|plants?|hunting|keys?|work|supplies|equipment))",
    _I,
)
# "study", "house" are verbs or passing words unless a determiner makes them rooms ("my study")
ROOMS_NEEDING_A_DETERMINER = (
    "office",
    "study",
    "library",
    "deck",
    "den",
    "flat",
    "house",
    "cabin",
    "cottage",
    "lounge",
)
# "office" is a room only as the customer's own: "my office", "our new office"
OFFICE_OWNERS = ("my", "our", "home", "new")
PLACE = r"(?P<place>[A-Z][a-zA-Z]+(?:[ -](?:[A-Z][a-zA-Z]+|de|del|la|upon|on))*(?:,\s*[A-Z]{2}\b)?)"
PLACE_CUES: list[tuple[re.Pattern[str], str, str | None]] = [
    (
        re.compile(r"\b(?i:live|lives|living|reside|resides|based|settled|staying)\s+(?i:in|near)\s+" + PLACE),
        "lives in",
        "LIVES_IN",
    ),
    (re.compile(r"\b(?i:moved|relocated)\s+(?i:to)\s+" + PLACE), "lives in", "LIVES_IN"),
    (re.compile(r"\b(?i:moving|relocating|move|relocate)\s+(?i:to)\s+" + PLACE), "moving to", "RELATED_TO"),
    (re.compile(r"\b(?i:moved|moving|relocating|relocated)\s+(?i:from)\s+" + PLACE), "moved from", "RELATED_TO"),
    (re.compile(r"\b(?i:grew\s+up|born|raised)\s+(?i:in)\s+" + PLACE), "grew up in", "RELATED_TO"),
    (
        re.compile(r"\b(?i:i'm|i\s+am|we're|we\s+are|originally|come|comes)\s+(?i:originally\s+)?(?i:from)\s+" + PLACE),
        "from",
        "RELATED_TO",
    ),
    (
        re.compile(
            r"\b(?i:visited|visiting|visit|trip\s+to|flew\s+to|travel(?:l)?ed\s+to|drove\s+to|went\s+to|going\s+to|holiday\s+in|vacation\s+in|vacationing\s+in)\s+"
            + PLACE
        ),
        "visited",
        "RELATED_TO",
    ),
    (re.compile(r"\b(?i:in|from|near)\s+" + PLACE), "mentioned", None),
]
NOT_PLACES = (
    {
        w.lower()
        for w in [
            "i",
            "i'm",
            "the",
            "a",
            "an",
            "my",
            "our",
            "this",
            "that",
            "these",
            "those",
            "it",
            "he",
            "she",
            "they",
            "we",
            "you",
            "mom",
            "mum",
            "dad",
            "loft",
            "christmas",
            "easter",
            "thanksgiving",
            "hanukkah",
            "halloween",
            "diwali",
            "eid",
            "spring",
            "summer",
            "fall",
            "autumn",
            "winter",
            "english",
            "spanish",
            "french",
            "german",
            "italian",
            "chinese",
            "japanese",
            "lgbtq",
            "lgbt",
            "pride",
            "god",
            "ok",
            "okay",
            "there",
            "then",
            "actually",
            "however",
            "also",
        ]
    }
    | set(WEEKDAY_NAMES)
    | set(MONTH_NAMES)
)
WORK_RE = re.compile(
    r"\b(?i:i|we)(?:'m|\s+am)?\s+(?i:work|works|worked|working|volunteer|volunteering|intern|interning)\s+(?i:at|for|with)\s+"
    r"(?P<org>[A-Z][\w&.'-]*(?:\s+(?:[A-Z][\w&.'-]*|&|of))*)"
)
EVENT_WORDS = (
    r"housewarming(?:\s+party)?|house\s*warming(?:\s+party)?|(?:dinner|birthday|surprise|engagement|graduation|holiday|"
    r"christmas|garden|pool|retirement|going-away|farewell|tea|launch|costume|halloween)\s+party|party|wedding(?:\s+anniversary)?|"
    r"anniversary|birthday|baby\s+shower|bridal\s+shower|graduation|retirement|reunion|christmas|thanksgiving|easter|"
    r"hanukkah|diwali|eid|new\s+year'?s(?:\s+eve)?|renovation|remodel|support\s+group|conference|concert|festival|"
    r"vacation|holiday|road\s+trip|camping\s+trip|trip|marathon|race|parade|workshop|class|exhibition|exhibit|meetup|"
    r"game\s+night|funeral|barbecue|bbq|picnic|recital|competition|ceremony|fundraiser|gala|retreat|interview|"
    r"move|moving\s+day|due\s+date|baby\s+is\s+due|appointment|hike|camping"
)
EVENT_RE = re.compile(r"\b(?P<event>" + EVENT_WORDS + r")s?\b", _I)
EVENT_STOP = {
    "a",
    "an",
    "the",
    "my",
    "our",
    "his",
    "her",
    "their",
    "this",
    "that",
    "to",
    "at",
    "for",
    "of",
    "in",
    "on",
    "went",
    "go",
    "going",
    "attend",
    "attended",
    "having",
    "have",
    "had",
    "host",
    "hosting",
    "throwing",
    "throw",
    "is",
    "was",
    "i",
    "we",
    "and",
    "or",
    "with",
    "from",
    "next",
    "last",
    "big",
    "first",
    "after",
    "before",
    "it",
    "about",
    "be",
    "planning",
    "plan",
    "some",
    "another",
    "upcoming",
    "recent",
    "ran",
    "run",
    "joined",
    "join",
    "took",
    "take",
    "its",
    "it's",
    "your",
    "me",
    "us",
    "so",
    "just",
    "really",
    "finally",
    "since",
}
# "move" alone is a verb; "the big move" is an event
THE_MOVE = re.compile(r"\b(?:the|our|my|big)\s+move\b", _I)
# event words too common to be events without a date, "went to" or "hosting" in the sentence
EVENTS_NEEDING_CONTEXT = ("class", "race", "trip", "holiday", "party", "camping", "hike", "interview", "appointment")
ATTENDED = re.compile(
    r"\b(?:went\s+to|attended|was\s+at|were\s+at|joined|took\s+part\s+in|participated\s+in|ran|"
    r"hosted|celebrated|had|threw|got\s+back\s+from|came\s+back\s+from|been\s+to)\b",
    _I,
)
HOSTING = re.compile(r"\b(?:hosting|throwing|having|host|throw|organi[sz]ing|planning)\b", _I)
FUTURE_HINT = re.compile(
    r"\b(?:will|going\s+to|gonna|plan|plans|planning|next|upcoming|soon|thinking\s+about|"
    r"hoping\s+to|want\s+to)\b|'ll\b",
    _I,
)

# -- memories ------------------------------------------------------------------------------------------------
FAVOURITE = re.compile(r"\bfavou?rite\b", _I)
PAST_VERB = re.compile(
    r"\b(?:went|was|were|did|had|bought|purchased|ordered|got|made|took|saw|moved|visited|attended|started|finished|"
    r"met|came|left|spent|gave|told|found|felt|ran|painted|joined|adopted|celebrated|hosted|tried|won|lost|read|"
    r"wrote|built|learned|learnt|signed|finished|graduated|received|drew|sang|played|watched|cooked|baked|picked|"
    r"ordered|decided|completed|volunteered|traveled|travelled|hiked|camped|visited|organized|organised)\b",
    _I,
)

# -- pronoun rewriting for memories -------------------------------------------------------------------------
PRONOUN_RE = re.compile(
    r"\b(?P<i>i)(?P<contr>'m|'ve|'d|'ll)?\b(?P<neg>\s+(?:don't|do\s+not|haven't|have\s+not|am\s+not|was\s+not|wasn't))?"
    r"(?P<advs>(?:\s+(?:really|just|also|still|never|always|usually|often|recently|finally|already|actually|totally|no\s+longer|"
    r"absolutely|definitely|sometimes|mostly|kind\s+of|kinda|sort\s+of|now|even|only|first|both))*)"
    r"(?:\s+(?P<verb>[a-z][a-z'-]*))?"
    r"|\b(?P<we>we)(?P<wecontr>'re|'ve|'d|'ll)?\b"
    r"|\b(?P<other>my|mine|me|myself|us|our|ours|ourselves)\b",
    _I,
)
IRREGULAR_3RD = {
    "am": "is",
    "have": "has",
    "do": "does",
    "go": "goes",
    "was": "was",
    "are": "is",
    "don't": "doesn't",
    "haven't": "hasn't",
    "aren't": "isn't",
    "'m": "is",
}
KEEP_VERB = {
    "can",
    "could",
    "will",
    "would",
    "should",
    "might",
    "must",
    "may",
    "shall",
    "can't",
    "couldn't",
    "won't",
    "wouldn't",
    "shouldn't",
    "didn't",
    "did",
    "was",
    "wasn't",
    "never",
    "not",
    "had",
    "hadn't",
    "went",
    "got",
    "bought",
    "made",
    "took",
    "saw",
    "came",
    "left",
    "spent",
    "gave",
    "told",
    "found",
    "felt",
    "ran",
    "met",
    "won",
    "lost",
    "read",
    "wrote",
    "built",
    "learnt",
    "drew",
    "sang",
    "thought",
    "knew",
    "began",
    "brought",
    "caught",
    "taught",
    "sold",
    "kept",
    "slept",
    "swam",
    "flew",
    "drove",
    "rode",
    "ate",
    "drank",
    "fell",
    "forgot",
    "heard",
    "held",
    "paid",
    "put",
    "said",
    "sat",
    "set",
    "stood",
    "understood",
    "wore",
    "became",
    "chose",
    "grew",
    "hung",
    "led",
    "let",
    "lit",
    "meant",
    "quit",
    "rang",
    "rose",
    "shot",
    "shut",
    "spoke",
    "stole",
    "struck",
    "swore",
    "threw",
    "woke",
    "and",
    "too",
    "as",
    "or",
    "to",
    "in",
    "at",
    "on",
    "with",
    "for",
    "of",
    "if",
}
NEGATION_3RD = {
    "don't": "doesn't",
    "do not": "does not",
    "haven't": "hasn't",
    "have not": "has not",
    "am not": "is not",
}
WE_VERB = {"'re": " are", "'ve": " have", "'d": " would", "'ll": " will"}
# "I'd been", "I'd gone", "I'd finished": had; otherwise "I'd" is would
HAD_AFTER_D = ("been", "never", "already", "just", "gone")
# after the speaker is named once, "my"/"me"/"mine" read better as these
LATER_MENTION = {"my": "their", "me": "them", "mine": "theirs"}
AND_BEFORE = re.compile(r"\band\s+$", _I)
# a verb sharing the speaker's "I" after a conjunction: "I love walnut and hate glass" -> "... and hates glass"
COORD_VERB = re.compile(
    r"\b(?P<conj>and|but|or|yet)(?P<advs>(?:\s+(?:also|really|still|totally|absolutely|just|even))*)\s+"
    r"(?P<verb>love|like|hate|prefer|want|need|adore|dislike|enjoy|don't|do\s+not)\b",
    _I,
)


def is_catalog_word(catalog: Catalog, word: str) -> bool:
    """A style, material, colour or category ("Walnut", "Modern"): never a name or a place."""
    return bool(
        catalog.match_styles(word)
        or catalog.match_materials(word)
        or catalog.match_colors(word)
        or catalog.match_categories(word)
    )
