"""The deterministic rule-based extractor: the offline default and the LLM's cheap pre-pass.

One user message in, one ``Extraction`` out, in well under a millisecond for a chat-sized
message. Every regex is compiled at import; catalog vocabulary comes from ``Catalog``'s
own precompiled matchers. The message is split into sentences and clauses; each clause
yields

- preferences: a subject + cue ("I love", "we don't want", "I've gone off") governs the
  catalog words that follow it until the clause ends or another cue starts;
- purchases: "I/we bought|ordered|purchased|got ..." followed by a catalog product or
  category, with price, quantity, order id and the date the sentence names;
- interests: requests and questions naming products or categories;
- entities and relations: family, partners, friends, pets, rooms, places, workplaces,
  events (dated from the sentence);
- memories: the clause rewritten in the third person ("I" -> the speaker's name) with
  relative dates replaced by absolute ones, so it stands on its own later.

Only the customer's own turns ("user") are mined: assistant and system turns return an
empty ``Extraction``. A bug in the rules raises: an empty result would silently lose the
message's facts, while an exception fails only that message's ingestion job (the pipeline
reports it and retries it; the other messages go on).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from service.catalog import Catalog, Product
from service.extraction.dates import DateMention, find_dates, format_day
from service.extraction.models import (
    MAX_AMOUNT,
    Entity,
    Extraction,
    MemoryCandidate,
    Preference,
    ProductInterest,
    Purchase,
    Relation,
)

MAX_CHARS = 20_000      # longer messages are mined on their first 20k characters
MAX_SENTENCES = 300

_I = re.IGNORECASE

# -- text shape ------------------------------------------------------------------------------
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+|(?<=[.!?])(?=[A-Z])")
_CLAUSE_SPLIT = re.compile(
    r";\s*|,?\s+(?:but|though|although|whereas|so|because|and|while)\s+(?=(?:i|i'm|i've|i'd|i'll|we|we're|we've|we'd|my|our)\b)"
    r"|,\s+(?=(?:i|i'm|i've|i'd|we|we're|we've|we'd|my|our|do you|does|did you|can you|could you|would you|will you|"
    r"is there|are there|what|how|where|which|any chance|any)\b)", _I)
_LEAD_FILLER = re.compile(
    r"^(?:(?:hi|hey|hello|hiya|yo|there|well|oh|ah|so|yeah|yes|yep|ok|okay|um|uh|hmm+|haha+|lol|wow|honestly|anyway|"
    r"btw|by the way|and|but|plus|also|actually|guess what|you know what|fun fact|oh my god|omg)\b[\s,!.:;-]*)+", _I)
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D]+")
_QUESTION_START = re.compile(
    r"^(?:who|what|when|where|why|how|which|whose|do|does|did|can|could|would|will|is|are|was|were|have|has|"
    r"should|shall|may|might|any chance|is there|are there)\b", _I)
_FILLER = re.compile(
    r"^(?:thanks?|thank you|thx|ty|wow|cool|great|awesome|nice|amazing|ok|okay|sure|yes|no|yeah|yep|nope|lol|"
    r"haha|hi|hello|hey|bye|goodbye|good night|good morning|sounds good|sounds great|that's \w+|that is \w+|"
    r"congrats|congratulations|me too|same here|perfect|got it|no worries|of course|absolutely|definitely|"
    r"you too|take care|see you|talk soon|glad to hear|good to hear|i see|i agree|exactly|true|right)\b", _I)
_SMALL_TALK = re.compile(
    r"\b(?:i|i'm|i am|we|we're)\s+(?:\w+\s+){0,2}(?:glad|happy|proud|hope|bet|agree|thank|appreciate|miss|wish|"
    r"sorry|know|understand|imagine|can't wait|excited for|love that|love how|love it|admire|think)\b[^.]*\byou", _I)
_OPINION_ONLY = re.compile(
    r"^(?:i|we)\s+(?:\w+\s+)?(?:think|guess|mean|suppose|believe|agree|bet|wonder|hope|see)\b", _I)
_CLAUSE_VERB = re.compile(
    r"\b(?:i|we|he|she|they|it|you)(?:'m|'re|'ve|'d|'ll)?\s+\w+|\b(?:am|is|are|was|were|be|been|being|have|has|had|do|does|"
    r"did|can|could|will|would|should|\w+ed|\w{2,}ing|loves?|likes?|hates?|prefers?|wants?|needs?|adores?|dislikes?|"
    r"enjoys?|don't|doesn't|never)\b|'s\s+(?:been|got|\w+ing)\b", _I)
_VAGUE = re.compile(r"\b(?:it|that|this|those|these|them)\b", _I)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|we're|we've|we'd|we'll|us|our|ours)\b", _I)
_WORDS = re.compile(r"[\w'-]+")
_LIKES = re.compile(r"^(?:i|we)\s+(?:really\s+|also\s+|just\s+|absolutely\s+|totally\s+)?"
                    r"(?:love|like|enjoy|adore|hate|dislike|prefer)\s+(?!(?:it|that|this|them|you|to|so|too)\W*$)"
                    r"(?!(?:it|that|this|them|you)\b)\w", _I)

# -- customer name ------------------------------------------------------------------------------
_NAME_WORD = r"[A-Z][a-zà-ÿ]+(?:-[A-Z][a-zà-ÿ]+)?"
_NAME_PATTERNS = [
    re.compile(r"\b(?i:my\s+name(?:'s|\s+is))\s+(?P<name>[A-Za-zÀ-ÿ][a-zà-ÿ'-]+(?:\s+" + _NAME_WORD + r")?)"),
    re.compile(r"(?:^|[.!?,]\s*|\b(?i:hi|hey|hello)\b[\s,!]*|\b(?i:and)\s+)(?i:i'm|i\s+am|im)\s+(?P<name>" + _NAME_WORD
               + r"(?:\s+" + _NAME_WORD + r")?)(?=\s*(?:$|[.,!?;]|\s+(?i:and|from|here|by the way)\b))"),
    re.compile(r"\b(?i:call\s+me)\s+(?P<name>" + _NAME_WORD + r")(?=\s*(?:$|[.,!?;]|\s+(?i:and|please)\b))"),
    re.compile(r"(?:^|\b(?i:hi|hey|hello)\b[\s,!]*)(?i:this\s+is)\s+(?P<name>" + _NAME_WORD + r"(?:\s+" + _NAME_WORD
               + r")?)(?=\s*(?:$|[.,!?;]|\s+(?i:here|from|speaking|and)\b))"),
]
_NOT_NAMES = {
    w.lower() for w in """
    looking not just here interested moving sorry fine good also still glad happy excited thinking planning trying
    going curious hoping sure afraid back done new ready really very super okay ok well always currently actually
    from in at on the a an totally definitely retired married single pregnant vegan so just only about into
    a bit kind sort back home off out over sick tired exhausted busy free open certain confused worried
    considering wondering shopping browsing after furnishing renovating redecorating decorating buying
    your their his her our my it that this there where what who how why when which yes no hi hello hey thanks
    thank please sir madam mr mrs ms dr mom mum dad mother father wife husband calling writing texting
    christmas easter monday tuesday wednesday thursday friday saturday sunday january february march april
    may june july august september october november december today tomorrow yesterday
    american british canadian english french german italian spanish australian irish scottish
    """.split()
}

# -- preferences -----------------------------------------------------------------------------------
_FILLERS = (r"(?:\s+(?:really|truly|absolutely|totally|just|also|still|definitely|do|does|would|am|are|is|have|has|"
            r"kind\s+of|kinda|sort\s+of|all|both|actually|now|honestly|generally|usually|always|mostly|so|very|quite|"
            r"personally|tend\s+to|seriously|particularly|especially|much|reckon\s+we|even|ever))*")
# a negation between the subject and its cue flips the cue: "I don't love", "I'm not a fan of", "we never liked"
_NEG = (r"(?:don't|dont|do\s+not|doesn't|does\s+not|didn't|did\s+not|never|not|won't|will\s+not|wouldn't|would\s+not|"
        r"can't|cannot|isn't|aren't|wasn't|weren't|no\s+longer|hardly)")
# (cue regex, polarity, strength, intent?) - order matters: negatives before positives
_CUES: list[tuple[str, str, float, bool]] = [
    (r"(?:hate|hates|hated|detest|detests|loathe|loathes|despise|despises|can't\s+stand|cannot\s+stand|can't\s+bear|cannot\s+bear|can't\s+do)", "dislikes", 0.9, False),
    (r"(?:dislike|dislikes|disliked)", "dislikes", 0.7, False),
    (r"(?:not\s+a\s+(?:big\s+|huge\s+)?fan\s+of|not\s+into|not\s+keen\s+on|not\s+crazy\s+about|allergic\s+to|tired\s+of|sick\s+of|over\s+the\s+whole)", "dislikes", 0.6, False),
    (r"(?:gone\s+off|went\s+off|go\s+off|no\s+longer\s+(?:like|love|want|into|a\s+fan\s+of|keen\s+on)|no\s+longer|moved\s+on\s+from|avoid|avoiding|stay\s+away\s+from|steer\s+clear\s+of|want\s+to\s+avoid)", "dislikes", 0.6, False),
    (r"(?:love|loves|loved|loving|adore|adores|adored|obsessed\s+with|crazy\s+about|a\s+(?:big|huge)\s+fan\s+of|big\s+fans?\s+of|huge\s+fans?\s+of|in\s+love\s+with|passionate\s+about)", "prefers", 0.9, False),
    (r"(?:prefer|prefers|preferred|rather\s+have|rather|lean\s+towards|leaning\s+towards|leaning\s+toward|lean\s+toward|opt\s+for|go\s+with|going\s+with|set\s+on|switch(?:ed|ing)?\s+to)", "prefers", 0.7, False),
    (r"(?:want|wants|wanted|need|needs|needed|looking\s+for|searching\s+for|shopping\s+for|in\s+the\s+market\s+for|after|hoping\s+for|hoping\s+to\s+(?:get|find|buy)|planning\s+to\s+(?:get|buy)|thinking\s+of\s+(?:getting|buying)|like\s+to\s+(?:get|buy|find)|saving\s+up\s+for)", "prefers", 0.7, True),
    (r"(?:show\s+me|show\s+us)", "prefers", 0.6, True),
    (r"(?:like|likes|liked|enjoy|enjoys|enjoyed|into|really\s+into|(?:a\s+)?fans?\s+of|keen\s+on|drawn\s+to|partial\s+to|fond\s+of|dig|go\s+for)", "prefers", 0.6, False),
]
_CUE_PARTS = [re.compile(r"^(?:" + c[0] + r")$", _I) for c in _CUES]
_SPAN_END = re.compile(r"[.;!?]|,?\s+but\b(?!\s+not\b)|,\s+(?:though|however|just|only|rather|instead|except|while|whereas)\b"
                       r"|\s+(?:and|or)\s+(?:i|we)\b|\s+(?:because|whereas)\b", _I)
_INVERSE = re.compile(r"\b(?:rather\s+than|instead\s+of|over|not|but\s+not|as\s+opposed\s+to|no|never|without)\b", _I)
_REPLACES = re.compile(
    r"\b(?:actually|changed\s+(?:my|our)\s+minds?|change\s+of\s+(?:heart|plans?)|instead|no\s+longer|gone\s+off|went\s+off|"
    r"any\s*more|these\s+days|switch(?:ed|ing)?\s+to|moved\s+on\s+from|not\s+(?:into|keen\s+on)\s+\w+\s+now)\b"
    r"|(?<!right\s)\bnow\b", _I)
_SIZE = re.compile(
    r"\b(small|smaller|compact|apartment[-\s]sized|tiny|space[-\s]saving|narrow|large|larger|big|bigger|huge|oversized|"
    r"extra[-\s]large|spacious|roomy|deep|deeper|low|tall|king[-\s]size|queen[-\s]size)\b", _I)
_SIZE_CANON = {"small": "small", "smaller": "small", "compact": "small", "tiny": "small", "narrow": "narrow",
               "large": "large", "larger": "large", "big": "large", "bigger": "large", "huge": "large",
               "oversized": "large", "spacious": "large", "roomy": "large", "deep": "deep", "deeper": "deep",
               "low": "low", "tall": "tall"}
_NUMBER = r"(?P<num>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(?P<mult>k|thousand|grand)?\b(?:\s*(?P<curword>dollars|bucks|usd|eur|euros|pounds))?"
_BUDGET_LIMIT = re.compile(
    r"\b(?P<word>under|below|less\s+than|no\s+more\s+than|not\s+more\s+than|max(?:imum)?|at\s+most|up\s+to|within|around|about|"
    r"roughly|budget(?:\s+is|\s+of)?(?:\s+(?:around|about|roughly|under|of|is))*|spend(?:ing)?(?:\s+(?:up\s+to|around|about|roughly|under|max))*|cap\s+of)"
    r"\s*(?:of\s+)?(?:a\s+)?(?P<cur>[$£€])?\s?" + _NUMBER
    + r"(?!\s*(?:cm|mm|m\b|in\b|inch|inches|ft|feet|foot|\"|%|people|guests|seats|years|kids|days|weeks|months|hours|minutes|miles|km|kg|lbs))", _I)
_BUDGET_AFTER = re.compile(r"(?P<cur>[$£€])\s?(?P<num>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(?P<mult>k|thousand|grand)?\s+(?:budget|max|maximum|tops|or\s+less|or\s+under)\b", _I)

# -- purchases ----------------------------------------------------------------------------------------
_PURCHASE = re.compile(
    r"(?:\b(?:i|we|my\s+(?:wife|husband|partner|girlfriend|boyfriend|mom|mum|dad|parents|family))(?:'ve|'d)?"
    r"(?:\s+(?:just|recently|finally|already|actually|also|have|had|went\s+ahead\s+and|ended\s+up))*\s+"
    # or no subject at all: "Just bought the Arlo sofa", "Finally ordered the rug"
    r"|^\s*(?:(?:just|recently|finally|already|also)\s+)*)"
    r"(?P<verb>bought|purchased|ordered|got|picked\s+up|splurged\s+on|treated\s+(?:myself|ourselves)\s+to|"
    r"invested\s+in|went\s+with|brought\s+home|snagged|grabbed)\b", _I)
_ORDER_ID = re.compile(r"\border\s*(?:#|no\.?|number|num|id|ref)?\s*[:#]?\s*#?\s*(?P<id>[A-Z0-9][A-Z0-9-]{2,})\b|#\s?(?P<id2>[A-Z0-9][A-Z0-9-]{2,})\b", _I)
_PRICE = re.compile(r"[$£€]\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s*(k)?\b|\b(\d{1,3}(?:,\d{3})+|\d+)\s*(?:dollars|bucks|usd)\b", _I)
_QUANTITY = re.compile(
    r"(?:\b(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten|twelve|a\s+pair\s+of|pair\s+of|a\s+couple\s+of|"
    r"a\s+set\s+of\s+(?:two|three|four|five|six|eight|\d{1,2})|set\s+of\s+(?:two|three|four|five|six|eight|\d{1,2})))"
    r"(?:\s+[\w'-]+){0,3}?\s*$", _I)
_QTY_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
              "twelve": 12, "pair": 2, "couple": 2}
_ARTICLES = re.compile(r"^(?:(?:a|an|the|some|our|my|new|brand\s+new|this|that|these|those|\d+|two|three|four|six|pair\s+of|set\s+of)\s+)+", _I)

# -- interests -------------------------------------------------------------------------------------------
_INTEREST_CUE = re.compile(
    r"\b(?:show\s+me|can\s+i\s+see|could\s+i\s+see|let\s+me\s+see|do\s+you\s+(?:have|sell|carry|stock|do)|have\s+you\s+got|"
    r"got\s+any|any|looking\s+for|look(?:ing)?\s+at|searching\s+for|shopping\s+for|in\s+the\s+market\s+for|"
    r"tell\s+me\s+(?:more\s+)?about|what\s+about|how\s+about|recommend|suggest|interested\s+in|need|want|"
    r"browsing|how\s+much|price\s+of|details\s+(?:on|about)|info(?:rmation)?\s+(?:on|about)|compare|options\s+for|"
    r"in\s+stock|available|thinking\s+(?:of|about)|considering|after)\b", _I)
_VIEWED_CUE = re.compile(r"\b(?:saw|seen|looked\s+at|checked\s+out|viewed|was\s+browsing|been\s+eyeing|eyeing|"
                         r"spotted|came\s+across)\b", _I)

# -- entities -------------------------------------------------------------------------------------------------
_PARTNERS = ["wife", "husband", "partner", "spouse", "girlfriend", "boyfriend", "fiancée", "fiancee", "fiancé",
             "fiance", "hubby"]
_FAMILY = ["mom", "mum", "mother", "dad", "father", "sister", "brother", "son", "daughter", "kids", "children",
           "kid", "child", "baby", "twins", "grandma", "grandmother", "grandpa", "grandfather", "aunt", "uncle",
           "cousin", "niece", "nephew", "parents", "in-laws", "mother-in-law", "father-in-law", "sister-in-law",
           "brother-in-law", "stepson", "stepdaughter", "grandkids", "grandchildren", "toddler", "teenager",
           "sons", "daughters", "sisters", "brothers", "family"]
_FRIENDS = ["best friend", "friend", "friends", "bff", "roommate", "flatmate", "housemate"]
_OTHERS = ["neighbour", "neighbor", "colleague", "coworker", "co-worker", "boss", "mentor", "landlord", "landlady"]
_PETS = ["dog", "dogs", "cat", "cats", "puppy", "pup", "kitten", "rabbit", "bunny", "parrot", "bird", "hamster",
         "guinea pig", "fish", "turtle", "tortoise", "horse", "lizard", "snake", "pet"]
_REL_TYPE = {**{w: "PARTNER_OF" for w in _PARTNERS}, **{w: "FAMILY_OF" for w in _FAMILY},
             **{w: "FRIEND_OF" for w in _FRIENDS}, **{w: "RELATED_TO" for w in _OTHERS},
             **{w: "PET_OF" for w in _PETS}}
_REL_WORDS = sorted(_REL_TYPE, key=len, reverse=True)
_REL_ALT = "|".join(re.escape(w) for w in _REL_WORDS)
_ADJ = (r"(?:(?i:little|older|younger|big|baby|twin|late|new|two|three|four|elder|eldest|youngest|oldest|best|dear|"
        r"lovely|old|sweet|fur|rescue|adorable|crazy|amazing|wonderful|beautiful|husky|lab|golden)\s+)*")
_FAMILY_RE = re.compile(
    r"\b(?i:my|our)\s+" + _ADJ + r"(?P<rel>(?i:" + _REL_ALT + r"))(?P<poss>'s)?\b"
    r"(?:(?:\s*,\s*|\s+)(?:(?i:named|called)\s+)?(?P<name>" + _NAME_WORD + r"))?")
_NAMED_RE = re.compile(
    r"\b(?i:a|an|our|my|the)\s+" + _ADJ + r"(?P<rel>(?i:" + "|".join(re.escape(w) for w in _PETS + _FAMILY + _FRIENDS)
    + r"))\s+(?i:named|called)\s+(?P<name>" + _NAME_WORD + r")")
_NAME_IS_RE = re.compile(
    r"\b(?i:my|our)\s+(?P<rel>(?i:" + _REL_ALT + r"))(?i:'s\s+name\s+is|\s+is\s+called|\s+is\s+named)\s+(?P<name>" + _NAME_WORD + r")")
_HAVE_KIDS = re.compile(
    r"\b(?:i|we)(?:'ve)?\s+(?:have|got|have\s+got)\s+(?:(?:a|an|one|two|three|four|five|\d)\s+)?(?:\w+\s+)?"
    r"(?P<rel>kids|children|sons|daughters|dogs|cats|son|daughter|dog|cat|puppy|kitten|baby)\b", _I)

# -- who is speaking in a clause ----------------------------------------------------------------------------
# The customer's own stance ("I", "we", "our family", "me and my wife") feeds their preferences; anyone
# else's ("my wife Emma", "he", "Tom", "Dana's husband") is remembered about that person instead.
_NAME_SUBJ = (r"(?-i:(?!(?:Not|Never|No|Nope|Don't|Do|Does|Did|Didn't|Doesn't|Can't|Won't|Really|Honestly|Just|Also|Still|"
              r"Totally|Absolutely|Definitely|Love|Loving|Like|Hate|Looking|Show|Please|Maybe|Actually|So|And|But|Then|"
              r"Well|Anyway|Hi|Hey|Hello|Yes|Yeah|Ok|Okay|Oh|Now|Personally|Seriously|My|Our|His|Her|Their|Your|The|A|An|It|Its|"
              r"This|That|These|Those|There|Here|What|When|Where|How|Why|Who|Which|If|We|I|He|She|They|You|Me|Us)\b)[A-Z][a-zà-ÿ]+(?:-[A-Z][a-zà-ÿ]+)?)")
_SELF_SUBJ = (r"(?:me\s+and\s+(?:(?:my|our)\s+\w+|" + _NAME_SUBJ + r")|(?:(?:my|our)\s+\w+|" + _NAME_SUBJ + r")\s+and\s+(?:i|me)"
              r"|(?:our|my)\s+(?:whole\s+)?(?:family|household)|the\s+whole\s+family|(?:both|all|the\s+two)\s+of\s+us"
              r"|i'm|im|i've|i'd|i'll|i|we're|we've|we'd|we'll|we)")
_OTHER_SUBJ = (r"(?:(?:my|our|his|her|their|your|the)\s+" + _ADJ + r"(?:" + _REL_ALT + r")(?:'s\s+(?:" + _REL_ALT + r"))?"
               r"(?:,?\s+" + _NAME_SUBJ + r"(?:\s+" + _NAME_SUBJ + r")?(?=[\s,]),?)?"
               r"|" + _NAME_SUBJ + r"(?:'s\s+(?:" + _REL_ALT + r"))?"
               r"|he|she|they|you|he's|she's|they're|you're|he'd|she'd|they'd|you'd|he'll|she'll|they'll"
               r"|everyone|everybody|nobody|no\s+one)")
_CUE_ALT = "|".join(f"(?:{c[0]})" for c in _CUES)
_BARE = (r"no\s+longer\s+into|not\s+into|not\s+keen\s+on|loving|loved|loves|love|hated|hates|hate|liked|likes|like|adored|"
         r"adores|adore|preferred|prefers|prefer|disliked|dislikes|dislike|enjoyed|enjoy|can't\s+stand|obsessed\s+with|"
         r"really\s+into|into|gone\s+off|wants|want|needs|need|looking\s+for|searching\s+for|shopping\s+for|"
         r"in\s+the\s+market\s+for|show\s+me|show\s+us")
_CUE_RE = re.compile(
    r"\b(?:(?P<self>" + _SELF_SUBJ + r")|(?P<other>" + _OTHER_SUBJ + r"))\b" + _FILLERS
    + r"(?:\s+(?P<neg>" + _NEG + r"))?" + _FILLERS + r"\s+(?P<cue>" + _CUE_ALT + r")\b"
    r"|(?P<free>\b(?:(?:my|our)\s+favou?rite(?:\s+\w+)?\s+(?:is|are|has\s+to\s+be)|not\s+a\s+(?:big\s+|huge\s+)?fan\s+of"
    r"|(?:a\s+)?(?:big|huge)\s+fans?\s+of|(?:as\s+)?for\s+(?:me|us)\s*,?\s+(?:it's|it\s+is|it\s+has\s+to\s+be|it\s+must\s+be"
    r"|nothing\s+beats))\b)"
    r"|(?P<ofav>\b(?:his|her|their|(?:my|our)\s+(?:" + _REL_ALT + r")'s|" + _NAME_SUBJ + r"'s)\s+favou?rite(?:\s+\w+)?\s+(?:is|are)\b)"
    # cues with the subject left out: "Loving the velvet", "never liked leather", "show me oak tables",
    # "I love walnut and hate glass" (the subject of "hate" is the one before "and")
    r"|(?:^|[,;:.!]\s*|\b(?P<conj>and|but|or|yet|then|plus)\s+)"
    r"(?:(?:hi|hey|hello|well|oh|ok|okay|so|um|honestly|anyway|really|totally|also|still|just|actually|currently|mainly|"
    r"mostly|now|please|can\s+you|could\s+you|would\s+you)[\s,!]+)*"
    r"(?:(?P<bneg>" + _NEG + r")\s+(?:really\s+|particularly\s+|much\s+|even\s+|ever\s+)?)?(?P<bare>" + _BARE + r")\b",
    _I)
_LEAD_SUBJ = re.compile(
    r"(?:(?P<self>" + _SELF_SUBJ + r")|(?P<other>" + _OTHER_SUBJ + r")|(?P<forme>(?:as\s+)?for\s+(?:me|us)\b|me\s*,))(?!\w)", _I)
# a new clause starts where a conjunction or comma is followed by a new subject:
# "I love walnut and my wife Emma hates glass", "but he prefers", ", while Tom likes", "; she loves"
_SUBJ_CUT = re.compile(
    r"(?:\s*;\s*|,?\s+(?:and|but|or|so|yet|while|whereas|though|although|because|plus)\s+|,\s+(?:while|whereas|but|though|although)\s+|,\s+)"
    r"(?=(?:(?P<self>" + _SELF_SUBJ + r")|(?P<other>" + _OTHER_SUBJ + r"))(?![\w'])" + _FILLERS + r"(?:\s+(?P<next>[\w']+)))", _I)
_VERBISH = re.compile(
    r"^(?:" + _CUE_ALT + r"|" + _NEG + r"|\w+s|\w+ed|is|was|has|had|does|did|can|could|will|would|should|might|must|"
    r"thinks?|says?|went|got|bought|made|took|came)$", _I)
_OTHER_STANCE = re.compile(r"(?:" + _OTHER_SUBJ + r")" + _FILLERS + r"(?:\s+" + _NEG + r")?" + _FILLERS
                           + r"\s+(?:loves|likes|hates|adores|enjoys|prefers|dislikes|loved|liked|hated|adored|enjoyed|"
                           r"is\s+(?:obsessed\s+with|into|a\s+(?:big\s+|huge\s+)?fan\s+of)|can't\s+stand)\b", _I)
_OTHER_PRONOUNS = {"he", "she", "they", "you", "he's", "she's", "they're", "you're", "he'd", "she'd", "they'd", "you'd",
                   "he'll", "she'll", "they'll", "everyone", "everybody", "nobody", "no"}
# "Me and my husband", "My wife and I", "Some friends from church and I", "Max and I": one compound subject
_COMPOUND_HEAD = re.compile(r"^\s*(?:(?:me|my|our|some|the|a|an|his|her|their)\b(?:\s+[\w'-]+){0,4}|" + _NAME_SUBJ + r")\s*$", _I)
_AND_SEP = re.compile(r"^,?\s+and\s+$", _I)
_STANCE_WORD = re.compile(r"^(?:" + _CUE_ALT + r"|" + _NEG + r"|obsessed|crazy|into|keen|fond|allergic)$", _I)
_PRONOUN_OBJECT = re.compile(r"[^.,;!?]{0,30}?\b(?:it|them|that|this|him|her|me|us|you)\b[^.,;!?\w]*(?:$|[.,;!?])", _I)
_REQUEST_BARE = re.compile(r"^(?:show\s+(?:me|us)|looking\s+for|searching\s+for|shopping\s+for|in\s+the\s+market\s+for)$", _I)
_NOT_SUBJECT = _NOT_NAMES | {
    "really", "honestly", "personally", "totally", "absolutely", "seriously", "still", "definitely", "kinda", "mostly",
    "generally", "usually", "always", "now", "then", "and", "but", "plus", "or", "never", "loving", "love", "hate",
    "like", "please", "maybe", "perhaps", "anyway", "anyways", "everything", "nothing", "something", "which",
}

_ROOMS = ["living room", "family room", "sitting room", "front room", "great room", "lounge", "master bedroom",
          "main bedroom", "guest bedroom", "guest room", "spare room", "spare bedroom", "bedroom", "dining room",
          "kitchen", "breakfast nook", "home office", "office", "study", "nursery", "kids' room", "kids room",
          "playroom", "den", "basement", "attic", "patio", "balcony", "garden", "backyard", "back yard", "terrace",
          "porch", "deck", "entryway", "hallway", "foyer", "mudroom", "sunroom", "conservatory", "reading nook",
          "bathroom", "laundry room", "media room", "games room", "game room", "library", "loft bedroom",
          "studio apartment", "apartment", "flat", "condo", "house", "cabin", "cottage"]
_HOME_TYPES = {"studio apartment", "apartment", "flat", "condo", "house", "cabin", "cottage"}
_ROOM_RE = re.compile(
    r"\b(?P<det>my|our|the|a|an|new|his|her|their|for\s+the|in\s+the)?\s*(?P<room>"
    + "|".join(re.escape(r) for r in sorted(_ROOMS, key=len, reverse=True)) + r")(?:s)?\b"
    r"(?!\s*(?:table|chair|stool|set|sofa|couch|furniture|bench|lamp|rug|light|sectional|mirror|cabinet|shelf|"
    r"desk|island|ideas?|party|warming|plants?|hunting|keys?|work|supplies|equipment))", _I)
_PLACE = r"(?P<place>[A-Z][a-zA-Z]+(?:[ -](?:[A-Z][a-zA-Z]+|de|del|la|upon|on))*(?:,\s*[A-Z]{2}\b)?)"
_PLACE_CUES: list[tuple[re.Pattern[str], str, str | None]] = [
    (re.compile(r"\b(?i:live|lives|living|reside|resides|based|settled|staying)\s+(?i:in|near)\s+" + _PLACE), "lives in", "LIVES_IN"),
    (re.compile(r"\b(?i:moved|relocated)\s+(?i:to)\s+" + _PLACE), "lives in", "LIVES_IN"),
    (re.compile(r"\b(?i:moving|relocating|move|relocate)\s+(?i:to)\s+" + _PLACE), "moving to", "RELATED_TO"),
    (re.compile(r"\b(?i:moved|moving|relocating|relocated)\s+(?i:from)\s+" + _PLACE), "moved from", "RELATED_TO"),
    (re.compile(r"\b(?i:grew\s+up|born|raised)\s+(?i:in)\s+" + _PLACE), "grew up in", "RELATED_TO"),
    (re.compile(r"\b(?i:i'm|i\s+am|we're|we\s+are|originally|come|comes)\s+(?i:originally\s+)?(?i:from)\s+" + _PLACE), "from", "RELATED_TO"),
    (re.compile(r"\b(?i:visited|visiting|visit|trip\s+to|flew\s+to|travel(?:l)?ed\s+to|drove\s+to|went\s+to|going\s+to|holiday\s+in|vacation\s+in|vacationing\s+in)\s+" + _PLACE), "visited", "RELATED_TO"),
    (re.compile(r"\b(?i:in|from|near)\s+" + _PLACE), "mentioned", None),
]
_NOT_PLACES = {
    w.lower() for w in """
    i i'm the a an my our this that these those it he she they we you mom mum dad loft christmas easter thanksgiving
    hanukkah halloween diwali eid monday tuesday wednesday thursday friday saturday sunday january february march
    april may june july august september october november december spring summer fall autumn winter english spanish
    french german italian chinese japanese lgbtq lgbt pride god ok okay there then actually however also
    """.split()
}
_WORK_RE = re.compile(
    r"\b(?i:i|we)(?:'m|\s+am)?\s+(?i:work|works|worked|working|volunteer|volunteering|intern|interning)\s+(?i:at|for|with)\s+"
    r"(?P<org>[A-Z][\w&.'-]*(?:\s+(?:[A-Z][\w&.'-]*|&|of))*)")
_EVENT_WORDS = (
    r"housewarming(?:\s+party)?|house\s*warming(?:\s+party)?|(?:dinner|birthday|surprise|engagement|graduation|holiday|"
    r"christmas|garden|pool|retirement|going-away|farewell|tea|launch|costume|halloween)\s+party|party|wedding(?:\s+anniversary)?|"
    r"anniversary|birthday|baby\s+shower|bridal\s+shower|graduation|retirement|reunion|christmas|thanksgiving|easter|"
    r"hanukkah|diwali|eid|new\s+year'?s(?:\s+eve)?|renovation|remodel|support\s+group|conference|concert|festival|"
    r"vacation|holiday|road\s+trip|camping\s+trip|trip|marathon|race|parade|workshop|class|exhibition|exhibit|meetup|"
    r"game\s+night|funeral|barbecue|bbq|picnic|recital|competition|ceremony|fundraiser|gala|retreat|interview|"
    r"move|moving\s+day|due\s+date|baby\s+is\s+due|appointment|hike|camping")
_EVENT_RE = re.compile(r"\b(?P<event>" + _EVENT_WORDS + r")s?\b", _I)
_EVENT_STOP = {
    "a", "an", "the", "my", "our", "his", "her", "their", "this", "that", "to", "at", "for", "of", "in", "on", "went",
    "go", "going", "attend", "attended", "having", "have", "had", "host", "hosting", "throwing", "throw", "is", "was",
    "i", "we", "and", "or", "with", "from", "next", "last", "big", "first", "after", "before", "it", "about", "be",
    "planning", "plan", "some", "another", "upcoming", "recent", "ran", "run", "joined", "join", "took", "take",
    "its", "it's", "your", "me", "us", "so", "just", "really", "finally", "after", "since",
}
_ATTENDED = re.compile(r"\b(?:went\s+to|attended|was\s+at|were\s+at|joined|took\s+part\s+in|participated\s+in|ran|"
                       r"hosted|celebrated|had|threw|got\s+back\s+from|came\s+back\s+from|been\s+to)\b", _I)
_HOSTING = re.compile(r"\b(?:hosting|throwing|having|host|throw|organi[sz]ing|planning)\b", _I)
_FUTURE_HINT = re.compile(r"\b(?:will|going\s+to|gonna|plan|plans|planning|next|upcoming|soon|thinking\s+about|"
                          r"hoping\s+to|want\s+to)\b|'ll\b", _I)
_PAST_VERB = re.compile(
    r"\b(?:went|was|were|did|had|bought|purchased|ordered|got|made|took|saw|moved|visited|attended|started|finished|"
    r"met|came|left|spent|gave|told|found|felt|ran|painted|joined|adopted|celebrated|hosted|tried|won|lost|read|"
    r"wrote|built|learned|learnt|signed|finished|graduated|received|drew|sang|played|watched|cooked|baked|picked|"
    r"ordered|decided|completed|volunteered|traveled|travelled|hiked|camped|visited|organized|organised)\b", _I)

# -- pronoun rewriting for memories -------------------------------------------------------------------------
_PRONOUN_RE = re.compile(
    r"\b(?P<i>i)(?P<contr>'m|'ve|'d|'ll)?\b(?P<neg>\s+(?:don't|do\s+not|haven't|have\s+not|am\s+not|was\s+not|wasn't))?"
    r"(?P<advs>(?:\s+(?:really|just|also|still|never|always|usually|often|recently|finally|already|actually|totally|no\s+longer|"
    r"absolutely|definitely|sometimes|mostly|kind\s+of|kinda|sort\s+of|now|even|only|first|both))*)"
    r"(?:\s+(?P<verb>[a-z][a-z'-]*))?"
    r"|\b(?P<we>we)(?P<wecontr>'re|'ve|'d|'ll)?\b"
    r"|\b(?P<other>my|mine|me|myself|us|our|ours|ourselves)\b", _I)
_IRREGULAR_3RD = {"am": "is", "have": "has", "do": "does", "go": "goes", "was": "was", "are": "is", "don't": "doesn't",
                  "haven't": "hasn't", "aren't": "isn't", "'m": "is"}
_KEEP_VERB = {
    "can", "could", "will", "would", "should", "might", "must", "may", "shall", "can't", "couldn't", "won't",
    "wouldn't", "shouldn't", "didn't", "did", "was", "wasn't", "never", "not", "had", "hadn't", "went", "got",
    "bought", "made", "took", "saw", "came", "left", "spent", "gave", "told", "found", "felt", "ran", "met", "won",
    "lost", "read", "wrote", "built", "learnt", "drew", "sang", "thought", "knew", "began", "brought", "caught",
    "taught", "sold", "kept", "slept", "swam", "flew", "drove", "rode", "ate", "drank", "fell", "forgot", "heard",
    "held", "paid", "put", "said", "sat", "set", "stood", "understood", "wore", "became", "chose", "grew", "hung",
    "led", "let", "lit", "meant", "quit", "rang", "rose", "shot", "shut", "spoke", "stole", "struck", "swore",
    "threw", "woke", "and", "too", "as", "or", "to", "in", "at", "on", "with", "for", "of", "if",
}
_MODIFIER_KIND = ("style", "material", "color", "brand")
_AND_BEFORE = re.compile(r"\band\s+$", _I)
# a verb sharing the speaker's "I" after a conjunction: "I love walnut and hate glass" -> "... and hates glass"
_COORD_VERB = re.compile(
    r"\b(?P<conj>and|but|or|yet)(?P<advs>(?:\s+(?:also|really|still|totally|absolutely|just|even))*)\s+"
    r"(?P<verb>love|like|hate|prefer|want|need|adore|dislike|enjoy|don't|do\s+not)\b", _I)


def _third_person_verb(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR_3RD:
        return _IRREGULAR_3RD[low]
    if low in _KEEP_VERB or low.endswith(("ed", "n't", "'d", "ing")) or not low.isalpha():
        return verb
    if low.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def third_person(text: str, subject: str, coordinate: bool = False) -> str:
    """Rewrite first-person text about ``subject``: "I love my oak table" -> "Sarah loves Sarah's oak table"."""
    possessive = subject + ("'" if subject.endswith("s") else "'s")
    named = False  # after the first mention, "my"/"me" read better as "their"/"them"
    conjugated = False  # "I <verb>" became "<subject> <verb>s": verbs sharing that subject follow suit

    def repl(m: re.Match[str]) -> str:
        nonlocal named, conjugated
        if m.group("i") or m.group("we"):
            named = True
        if m.group("i"):
            contr = (m.group("contr") or "").lower()
            neg = m.group("neg") or ""
            advs = m.group("advs") or ""
            verb = m.group("verb") or ""
            if contr == "'m":
                head = f"{subject} is"
            elif contr == "'ve":
                head = f"{subject} has"
            elif contr == "'d":
                head = f"{subject} " + ("had" if verb.lower() in ("been", "never", "already", "just", "gone") or verb.lower().endswith("ed") else "would")
            elif contr == "'ll":
                head = f"{subject} will"
            else:
                head = subject
            if neg:
                n = re.sub(r"\s+", " ", neg.strip().lower())
                conjugated = conjugated or (not contr and n in ("don't", "do not"))
                neg = " " + {"don't": "doesn't", "do not": "does not", "haven't": "hasn't", "have not": "has not",
                             "am not": "is not"}.get(n, n)
                return f"{head}{neg}{advs}" + (f" {verb}" if verb else "")
            if verb and not contr:
                if _AND_BEFORE.search(text, 0, m.start()):
                    return f"{head}{advs} {verb}"  # "Emma and I love" -> "Emma and Sarah love"
                conjugated = True
                return f"{head}{advs} {_third_person_verb(verb)}"
            return f"{head}{advs}" + (f" {verb}" if verb else "")
        if m.group("we"):
            contr = (m.group("wecontr") or "").lower()
            return f"{subject} and family" + {"'re": " are", "'ve": " have", "'d": " would", "'ll": " will"}.get(contr, "")
        word = m.group("other").lower()
        if named and word in ("my", "me", "mine"):
            return {"my": "their", "me": "them", "mine": "theirs"}[word]
        named = True
        if word in ("my", "mine", "our", "ours"):
            return possessive
        if word in ("us", "ourselves"):
            return f"{possessive} family"
        if word == "myself":
            return "themself"
        return subject

    out = _PRONOUN_RE.sub(repl, text)
    if conjugated and coordinate:
        out = _COORD_VERB.sub(lambda m: f"{m.group('conj')}{m.group('advs')} "
                              + ("does not" if m.group("verb").lower().startswith("do ") else _third_person_verb(m.group("verb"))),
                              out)
    return out


def _clean_name(name: str) -> str | None:
    words = name.split()
    kept: list[str] = []
    for w in words:
        if w.lower() in _NOT_NAMES:
            break
        kept.append(w[:1].upper() + w[1:])
    if not kept or len(kept[0]) < 2:
        return None
    return " ".join(kept)


def _amount(number: str, mult: str | None) -> float | None:
    """A money amount, or None when it is not a plausible one (too many digits to be a
    price, or beyond ``MAX_AMOUNT``)."""
    digits = number.replace(",", "")
    if len(digits) > 12:
        return None
    try:
        value = float(digits)
    except ValueError:
        return None
    if mult and mult.lower() in ("k", "thousand", "grand"):
        value *= 1000
    return value if math.isfinite(value) and 0 <= value <= MAX_AMOUNT else None


def _fmt_amount(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.2f}"


class _Clause:
    """A stretch of a sentence with one subject: whose stance it states ("self" or "other") and whether that
    someone else is named ("my wife Emma", "Tom") rather than a bare pronoun ("she")."""

    __slots__ = ("start", "end", "owner", "named")

    def __init__(self, start: int, end: int):
        self.start, self.end, self.owner, self.named = start, end, "self", False


class _Mention:
    """A catalog word found in a clause."""

    __slots__ = ("start", "end", "attribute", "value", "product")

    def __init__(self, start: int, end: int, attribute: str, value: str, product: Product | None = None):
        self.start, self.end, self.attribute, self.value, self.product = start, end, attribute, value, product


class RuleExtractor:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    # -- public ------------------------------------------------------------------------------------
    def extract(self, text: str, *, at: datetime, speaker: str | None = None, role: str = "user") -> Extraction:
        if role != "user" or not isinstance(text, str) or not text.strip():
            return Extraction()
        if not isinstance(at, datetime):
            at = datetime.now(UTC)
        return self._extract(text[:MAX_CHARS], at, speaker.strip() if isinstance(speaker, str) and speaker.strip() else None)

    # -- pipeline ------------------------------------------------------------------------------------
    def _extract(self, text: str, at: datetime, speaker: str | None) -> Extraction:
        text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
        out = Extraction()
        name = self._customer_name(text)
        out.customer_name = name
        subject = speaker or name or "The customer"
        known_people = {n.lower() for n in (speaker, name) if n}
        if name:
            out.memories.append(MemoryCandidate(kind="fact", text=f"The customer's name is {name}.", importance=0.9))

        sentences = [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()][:MAX_SENTENCES]
        for sentence in sentences:
            self._sentence(sentence, at, subject, known_people, out)
        self._dedupe(out)
        return out

    def _customer_name(self, text: str) -> str | None:
        for pattern in _NAME_PATTERNS:
            m = pattern.search(text)
            if m:
                name = _clean_name(m.group("name"))
                if name and not self._is_catalog_word(name):
                    return name
        return None

    def _is_catalog_word(self, word: str) -> bool:
        c = self.catalog
        return bool(c.match_styles(word) or c.match_materials(word) or c.match_colors(word)
                    or c.match_categories(word))

    def _sentence(self, sentence: str, at: datetime, subject: str, known_people: set[str], out: Extraction) -> None:
        dates = find_dates(sentence, at)
        date_value = dates[0].value if dates else None
        is_question = sentence.rstrip().endswith("?") or bool(_QUESTION_START.match(_LEAD_FILLER.sub("", sentence)))

        clauses = self._clauses(sentence, known_people)
        prefs, others, dislike_spans = self._preferences(sentence, clauses, known_people)
        purchases, purchase_span = ([], None) if is_question else self._purchases(sentence, at, date_value)
        interests = self._interests(sentence, is_question, dislike_spans, purchase_span)
        entities, relations = self._entities(sentence, at, date_value, known_people)

        out.preferences.extend(prefs)
        out.purchases.extend(purchases)
        out.interests.extend(interests)
        out.entities.extend(entities)
        out.relations.extend(relations)
        self._memories(sentence, at, subject, dates, clauses, prefs, others, purchases, entities, out)

    # -- clauses and who they are about -------------------------------------------------------------------
    def _subject_owner(self, phrase: str, known_people: set[str]) -> str | None:
        """"other" for someone else ("my wife Emma", "he", "Tom"), "self" for the speaker's own name,
        None when the phrase is no subject at all ("Honestly", "Walnut", a lone "Our")."""
        words = phrase.split()
        if not words:
            return None
        first = words[0].lower()
        if first in _OTHER_PRONOUNS:
            return "other"
        if first in ("my", "our", "his", "her", "their", "your", "the"):
            return "other" if len(words) > 1 else None
        name = re.split(r"'s\b", phrase)[0].strip()
        if name.lower() in _NOT_SUBJECT or self._is_catalog_word(name) or self.catalog.match_brands(name):
            return None
        if name.lower() in known_people and "'s" not in phrase:
            return "self"
        return "other"

    def _clauses(self, sentence: str, known_people: set[str]) -> list[_Clause]:
        """Split a sentence where a new subject starts; each clause knows whose stance it states."""
        cuts: list[tuple[int, int]] = []

        def compound(sep: str, start: int) -> bool:
            head = sentence[max((e for _, e in cuts if e <= start), default=0):start]
            return bool(_AND_SEP.match(sep) and _COMPOUND_HEAD.match(head) and not _CLAUSE_VERB.search(head))

        for m in _CLAUSE_SPLIT.finditer(sentence):
            if m.end() > m.start() and not compound(m.group(), m.start()):
                cuts.append((m.start(), m.end()))
        for m in _SUBJ_CUT.finditer(sentence):
            if m.group("other"):
                owner = self._subject_owner(m.group("other"), known_people)
                if owner is None:
                    continue
                first = m.group("other").split()[0].lower()
                following = m.group("next") or ""
                if first in _OTHER_PRONOUNS:
                    if not _STANCE_WORD.match(following) or _PRONOUN_OBJECT.match(sentence, m.end()):
                        continue  # "..., they really make me keep going", "and they loved it" stay; "but he prefers oak" splits
                elif first not in ("my", "our", "his", "her", "their", "your", "the") and not _VERBISH.match(following):
                    continue  # "and Emma last week": a name, not a new subject
            prev = max((e for s, e in cuts if e <= m.start()), default=0)
            if not _CLAUSE_VERB.search(sentence, prev, m.start()) or compound(m.group(), m.start()):
                continue  # "Me and Emma": no clause before the conjunction yet
            cuts.append((m.start(), m.end()))
        cuts.sort()
        clauses: list[_Clause] = []
        pos = 0
        for s, e in cuts:
            if s < pos:
                pos = max(pos, e)
                continue
            if s > pos:
                clauses.append(_Clause(pos, s))
            pos = e
        if pos < len(sentence):
            clauses.append(_Clause(pos, len(sentence)))
        owner = "self"  # a subjectless first clause is the speaker's: "show me oak tables", "never liked leather"
        for clause in clauses:
            text = sentence[clause.start:clause.end]
            lead = _LEAD_FILLER.match(text)
            m = _LEAD_SUBJ.match(text, lead.end() if lead else 0)
            if m and (m.group("self") or m.group("forme")):
                owner = "self"
            elif m and m.group("other"):
                who = self._subject_owner(m.group("other"), known_people)
                if who is not None:
                    owner = who
                    clause.named = who == "other" and m.group("other").split()[0].lower() not in _OTHER_PRONOUNS
            clause.owner = owner
        return clauses

    @staticmethod
    def _clause_at(clauses: list[_Clause], pos: int) -> _Clause | None:
        for clause in clauses:
            if clause.start <= pos < clause.end:
                return clause
        return None

    # -- preferences ----------------------------------------------------------------------------------
    def _mentions(self, text: str) -> list[_Mention]:
        c = self.catalog
        found = [_Mention(s, e, "product", p.sku, p) for s, e, p in c.product_spans(text)]

        def free(s: int, e: int) -> bool:
            return all(e <= m.start or s >= m.end for m in found)

        for attribute, spans in (("style", c.style_spans(text)), ("material", c.material_spans(text)),
                                 ("color", c.color_spans(text)), ("brand", c.brand_spans(text)),
                                 ("category", c.category_spans(text))):
            for s, e, v in spans:
                if free(s, e):
                    found.append(_Mention(s, e, attribute, v))
        found.sort(key=lambda m: m.start)
        return found

    def _preferences(self, sentence: str, clauses: list[_Clause], known_people: set[str]
                     ) -> tuple[list[Preference], list[Preference], list[tuple[int, int]]]:
        """The customer's preferences, other people's stated likes and dislikes, and the spans of everything
        disliked (which are no product interest)."""
        prefs: list[Preference] = []
        others: list[Preference] = []
        dislike_spans: list[tuple[int, int]] = []
        cues = []
        for cue in _CUE_RE.finditer(sentence):
            bare = cue.group("bare")
            if bare and bare.lower().startswith("like") and not cue.group("bneg") and \
                    (cue.group("conj") or "").lower() not in ("and", "but"):
                continue  # "Like I said, ..."
            cues.append(cue)
        mentions = self._mentions(sentence) if cues or "$" in sentence or " in " in sentence.lower() else []
        replaces = bool(cues) and bool(_REPLACES.search(sentence))
        covered: list[tuple[int, int]] = []
        current: dict[int, str] = {}  # clause start -> whose stance the latest subject in it stated

        for i, cue in enumerate(cues):
            clause = self._clause_at(clauses, cue.end() - 1)
            key = clause.start if clause else -1
            owner = current.get(key, clause.owner if clause else "self")
            negated = False
            if cue.group("free"):
                word = re.sub(r"\s+", " ", cue.group("free").lower())
                polarity, strength, intent = ("dislikes", 0.6, False) if word.startswith("not") else (
                    ("prefers", 0.9, False) if "fan" in word else ("prefers", 0.85, False))
                if word.startswith(("my ", "our ", "for ", "as for ")):
                    owner = "self"
            elif cue.group("ofav"):
                polarity, strength, intent = "prefers", 0.85, False
                owner = "other"
            elif cue.group("bare"):
                word = re.sub(r"\s+", " ", cue.group("bare").lower())
                polarity, strength, intent = {
                    "loving": ("prefers", 0.9, False),
                    "no longer into": ("dislikes", 0.6, False),
                }.get(word) or self._cue_meaning(word)
                negated = bool(cue.group("bneg"))
                if _REQUEST_BARE.match(word):
                    owner = "self"  # a request is always the speaker's own
            else:
                polarity, strength, intent = self._cue_meaning(cue.group("cue"))
                negated = bool(cue.group("neg"))
                if cue.group("self"):
                    owner = "self"
                else:
                    owner = self._subject_owner(cue.group("other"), known_people) or owner
            current[key] = owner
            if negated:
                if polarity == "dislikes":
                    polarity = None  # "I don't hate oak": no stance either way
                else:
                    polarity, strength = "dislikes", 0.6
            start = cue.end()
            limit = cues[i + 1].start() if i + 1 < len(cues) else len(sentence)
            if clause:
                limit = min(limit, clause.end)
            end_m = _SPAN_END.search(sentence, start, limit) if start < limit else None
            end = end_m.start() if end_m else max(start, limit)
            if polarity is None:
                continue
            target = prefs if owner == "self" else others
            if owner == "self":
                covered.append((start, end))
            if polarity == "dislikes":
                dislike_spans.append((start, end))
            inside = [m for m in mentions if start <= m.start < end]
            inverse_at = None
            if polarity == "prefers":
                inv = _INVERSE.search(sentence, start, end)
                inverse_at = inv.start() if inv else None
            modifiers = [m for m in inside if m.attribute in _MODIFIER_KIND]
            for m in inside:
                pol, st, conf = polarity, strength, 0.8
                if inverse_at is not None and m.start > inverse_at:
                    pol, st, conf = "dislikes", 0.5, 0.6
                    dislike_spans.append((m.start, m.end))
                if m.attribute == "category" and not (intent and pol == "prefers"):
                    # "I hate glass tables" is about glass, not about tables
                    if any(0 <= m.start - x.end <= 12 for x in modifiers):
                        continue
                target.append(Preference(attribute=m.attribute, value=m.value, polarity=pol, strength=st,
                                         confidence=conf, replaces=replaces and owner == "self"))
            if polarity == "prefers" and owner == "self":
                segment = sentence[start:end]
                has_category = any(m.attribute in ("category", "product") for m in inside)
                for sm in _SIZE.finditer(segment):
                    if has_category or re.search(r"\bsomething\b", segment, _I):
                        word = re.sub(r"[-\s]+", "-", sm.group(1).lower())
                        value = _SIZE_CANON.get(word, word.replace("-size", "").replace("-sized", ""))
                        if value.startswith("apartment") or value.startswith("space"):
                            value = "small"
                        prefs.append(Preference(attribute="size", value=value, polarity="prefers", strength=strength,
                                                confidence=0.7, replaces=replaces))

        def someone_elses(pos: int) -> bool:
            clause = self._clause_at(clauses, pos)
            return bool(clause and clause.owner != "self")

        # budgets need no cue: "under $2,000", "$1.5k max", "our budget is 3000"
        for m in _BUDGET_LIMIT.finditer(sentence):
            if someone_elses(m.start()):
                continue
            word = m.group("word").lower()
            has_currency = bool(m.group("cur") or m.group("mult") or m.group("curword")) or word.startswith(("budget", "spend"))
            value = _amount(m.group("num"), m.group("mult"))
            if has_currency and value and value >= 20:
                approx = word in ("around", "about", "roughly")
                prefs.append(Preference(attribute="budget", value=_fmt_amount(value), polarity="prefers",
                                        strength=0.6 if approx else 0.7, confidence=0.8, replaces=replaces))
        for m in _BUDGET_AFTER.finditer(sentence):
            if someone_elses(m.start()):
                continue
            value = _amount(m.group("num"), m.group("mult"))
            if value and value >= 20:
                prefs.append(Preference(attribute="budget", value=_fmt_amount(value), polarity="prefers",
                                        strength=0.7, confidence=0.8, replaces=replaces))

        # "in navy", "in velvet" outside any cue span: a softer wish
        low = sentence.lower()
        for m in mentions:
            if m.attribute not in ("color", "material") or any(s <= m.start < e for s, e in covered):
                continue
            if someone_elses(m.start) or any(s <= m.start < e for s, e in dislike_spans) \
                    or any(p.value == m.value for p in others):
                continue
            before = low[max(0, m.start - 12): m.start]
            if re.search(r"\b(?:in|with)\s+(?:a\s+|the\s+)?(?:\w+\s+)?$", before):
                prefs.append(Preference(attribute=m.attribute, value=m.value, polarity="prefers", strength=0.6,
                                        confidence=0.6, replaces=False))
        return prefs, others, dislike_spans

    @staticmethod
    def _cue_meaning(cue: str) -> tuple[str, float, bool]:
        cue = re.sub(r"\s+", " ", cue.strip())
        for (_, polarity, strength, intent), part in zip(_CUES, _CUE_PARTS, strict=True):
            if part.match(cue):
                return polarity, strength, intent
        return "prefers", 0.6, False

    # -- purchases --------------------------------------------------------------------------------------
    def _purchases(self, sentence: str, at: datetime, date_value: datetime | None) -> tuple[list[Purchase], tuple[int, int] | None]:
        m = _PURCHASE.search(sentence)
        if not m:
            return [], None
        start = m.end()
        end_m = re.compile(r"[.;!?]|,?\s+but\b|\s+and\s+(?:i|we|it|she|he|they)\b", _I).search(sentence, start)
        end = end_m.start() if end_m else len(sentence)
        span = sentence[start:end]
        when = date_value or at
        order = _ORDER_ID.search(sentence)
        order_id = None
        if order:
            candidate = order.group("id") or order.group("id2")
            if candidate and any(ch.isdigit() for ch in candidate):
                order_id = candidate.upper()
        prices = [p for p in (self._price(pm) for pm in _PRICE.finditer(span)) if p]
        items: list[Purchase] = []
        products = self.catalog.product_spans(span)
        taken = [(s, e) for s, e, _ in products]
        for s, e, p in products:
            items.append(Purchase(product_name=p.name, sku=p.sku, category=p.category,
                                  quantity=self._quantity(span[:s]), price=None, order_id=order_id, at=when))
        for s, e, cat in self.catalog.category_spans(span):
            if any(s < te and ts < e for ts, te in taken):
                continue
            phrase = span[:e]
            # the noun phrase ending in the category word: "a new couch" -> "new couch"
            phrase = re.split(r"[,;:]|\b(?:and|with|for|from|at|on|in)\b", phrase, flags=_I)[-1].strip()
            words = phrase.split()[-5:]
            phrase = _ARTICLES.sub("", " ".join(words)).strip() or cat
            items.append(Purchase(product_name=phrase, category=cat, quantity=self._quantity(span[:s]),
                                  order_id=order_id, at=when))
            taken.append((s, e))
        if len(items) == 1:
            items[0].price = prices[0] if prices else (self.catalog.product(items[0].sku).price if items[0].sku else None)
        else:
            for item in items:
                if item.sku:
                    item.price = self.catalog.product(item.sku).price
        return items, ((start, end) if items else None)

    @staticmethod
    def _price(m: re.Match[str]) -> float | None:
        if m.group(1):
            value = _amount(m.group(1) + (f".{m.group(2)}" if m.group(2) else ""), m.group(3))
        else:
            value = _amount(m.group(4), None)
        return value if value and value > 0 else None

    @staticmethod
    def _quantity(before: str) -> int:
        m = _QUANTITY.search(before[-40:])
        if not m:
            return 1
        word = m.group(1).lower().split()
        for w in reversed(word):
            if w.isdigit():
                return max(1, min(int(w), 99))
            if w in _QTY_WORDS:
                return _QTY_WORDS[w]
        return 1

    # -- interests --------------------------------------------------------------------------------------------
    def _interests(self, sentence: str, is_question: bool, dislike_spans: list[tuple[int, int]],
                   purchase_span: tuple[int, int] | None) -> list[ProductInterest]:
        cue = _INTEREST_CUE.search(sentence)
        viewed = _VIEWED_CUE.search(sentence)
        if not (cue or viewed or is_question):
            return []
        kind = "viewed" if viewed and not cue else "asked_about"

        def excluded(s: int, e: int) -> bool:
            if purchase_span and purchase_span[0] <= s < purchase_span[1]:
                return True
            return any(ds <= s < de for ds, de in dislike_spans)

        out: list[ProductInterest] = []
        products = self.catalog.product_spans(sentence)
        for s, e, p in products:
            if not excluded(s, e):
                out.append(ProductInterest(sku=p.sku, category=p.category, kind=kind))
        for s, e, cat in self.catalog.category_spans(sentence):
            if any(s < pe and ps < e for ps, pe, _ in products) or excluded(s, e):
                continue
            out.append(ProductInterest(category=cat, kind=kind))
        return out

    # -- entities ----------------------------------------------------------------------------------------------------
    def _entities(self, sentence: str, at: datetime, date_value: datetime | None,
                  known_people: set[str]) -> tuple[list[Entity], list[Relation]]:
        entities: list[Entity] = []
        relations: list[Relation] = []
        named: set[str] = set()

        def add_person(rel_word: str, name: str | None) -> None:
            rel_word = rel_word.lower()
            rtype = _REL_TYPE.get(rel_word, "RELATED_TO")
            etype = "pet" if rtype == "PET_OF" else "person"
            if name and (name.lower() in _NOT_NAMES or name.lower() in _NOT_PLACES or self._is_catalog_word(name)):
                name = None
            entity_name = name or rel_word
            relation = {"mum": "mother", "mom": "mother", "dad": "father", "hubby": "husband"}.get(rel_word, rel_word)
            entities.append(Entity(type=etype, name=entity_name, relation=relation))
            relations.append(Relation(source=entity_name, target="customer", type=rtype))
            if name:
                named.add(name.lower())

        for m in _NAME_IS_RE.finditer(sentence):
            add_person(m.group("rel"), m.group("name"))
        for m in _NAMED_RE.finditer(sentence):
            if m.group("name").lower() not in named:
                add_person(m.group("rel"), m.group("name"))
        for m in _FAMILY_RE.finditer(sentence):
            name = m.group("name")
            if m.group("poss"):
                name = None
            if name and name.lower() in named:
                continue
            if not name and any(e.relation == m.group("rel").lower() for e in entities):
                continue
            add_person(m.group("rel"), name)
        for m in _HAVE_KIDS.finditer(sentence):
            rel = m.group("rel").lower()
            if not any(e.relation == rel or e.name.lower() == rel for e in entities):
                add_person(rel, None)

        for m in _ROOM_RE.finditer(sentence):
            room = m.group("room").lower()
            if room in ("office", "study", "library", "deck", "den", "flat", "house", "cabin", "cottage", "lounge") and not m.group("det"):
                continue  # "study" / "house" as verbs or in passing
            if room in ("office",) and (m.group("det") or "").lower() not in ("my", "our", "home", "new"):
                continue
            etype = "place" if room in _HOME_TYPES else "room"
            relation = "home" if room in _HOME_TYPES else "room"
            if not any(e.name == room for e in entities):
                entities.append(Entity(type=etype, name=room, relation=relation))

        seen_places: set[str] = set()
        for pattern, relation, rtype in _PLACE_CUES:
            for m in pattern.finditer(sentence):
                place = m.group("place").strip()
                first = place.split()[0].lower()
                if (first in _NOT_PLACES or place.lower() in known_people or place.lower() in named
                        or place.lower() in seen_places or self._is_catalog_word(place)
                        or self.catalog.match_brands(place) or self.catalog.product_spans(place + " sofa")):
                    continue
                if sentence[m.end("place"):m.end("place") + 2] == "'s":
                    continue  # "at Anna's" is a person
                if m.start("place") == 0:
                    continue
                seen_places.add(place.lower())
                entities.append(Entity(type="place", name=place, relation=None if relation == "mentioned" else relation))
                if rtype:
                    relations.append(Relation(source="customer", target=place, type=rtype))

        for m in _WORK_RE.finditer(sentence):
            org = m.group("org").strip().rstrip(".'-")
            if org.split()[0].lower() in _NOT_PLACES:
                continue
            entities.append(Entity(type="organization", name=org, relation="works at"))
            relations.append(Relation(source="customer", target=org, type="WORKS_AT"))

        for m in _EVENT_RE.finditer(sentence):
            event = re.sub(r"\s+", " ", m.group("event").lower())
            if event == "move" and not re.search(r"\b(?:the|our|my|big)\s+move\b", sentence, _I):
                continue
            if event in ("class", "race", "trip", "holiday", "party", "camping", "hike", "interview", "appointment") and not (
                    date_value or _ATTENDED.search(sentence) or _HOSTING.search(sentence)):
                continue
            name = self._event_name(sentence, m.start("event"), m.group("event"))
            when = date_value
            past = bool(_ATTENDED.search(sentence[: m.start()])) or (when is not None and when < datetime(at.year, at.month, at.day, tzinfo=at.tzinfo))
            if past:
                relation = "attended"
            elif _HOSTING.search(sentence):
                relation = "hosting"
            elif when is not None or _FUTURE_HINT.search(sentence):
                relation = "planned"
            else:
                relation = "mentioned"
            if any(e.type == "event" and e.name.lower() == name.lower() for e in entities):
                continue
            entities.append(Entity(type="event", name=name, relation=relation, at=when))
            if past:
                relations.append(Relation(source="customer", target=name, type="ATTENDED"))
        return entities, relations

    @staticmethod
    def _event_name(sentence: str, start: int, word: str) -> str:
        before = _WORDS.findall(sentence[max(0, start - 40):start])
        mods: list[str] = []
        for w in reversed(before[-2:] if before else []):
            if w.lower() in _EVENT_STOP or w.lower() in _NOT_NAMES and not w.isupper():
                break
            mods.insert(0, w)
        return " ".join([*mods, re.sub(r"\s+", " ", word)]).strip()

    # -- memories -----------------------------------------------------------------------------------------------------
    def _memories(self, sentence: str, at: datetime, subject: str, dates: list[DateMention], clauses: list[_Clause],
                  prefs: list[Preference], others: list[Preference], purchases: list[Purchase],
                  entities: list[Entity], out: Extraction) -> None:
        possessive = subject + ("'" if subject.endswith("s") else "'s")
        if subject == "The customer":
            possessive = "the customer's"
        for e in entities:
            # named people and pets get a plain statement of who they are
            if e.type in ("person", "pet") and e.relation and e.name.lower() != e.relation:
                out.memories.append(MemoryCandidate(
                    kind="fact", text=f"{e.name} is {possessive} {e.relation}.", importance=0.8))
        today = datetime(at.year, at.month, at.day, tzinfo=at.tzinfo)
        for span in clauses:
            clause = sentence[span.start:span.end].strip()
            stripped = _LEAD_FILLER.sub("", clause).strip()
            stripped = _EMOJI.sub("", stripped).strip(" ,-")
            if not stripped:
                continue
            if stripped.endswith("?") or _QUESTION_START.match(stripped):
                continue
            if any(p.search(stripped) for p in _NAME_PATTERNS) and len(_WORDS.findall(stripped)) <= 6:
                continue  # the name itself is already a fact
            words = _WORDS.findall(stripped)
            if len(words) < 3 or _FILLER.match(stripped) and len(words) < 6:
                continue
            if span.owner == "self":
                clause_prefs = [p for p in prefs if self._names_value(stripped, p)]
            else:  # someone else's stance: remembered about them, never the customer's preference
                clause_prefs = [p for p in others if self._names_value(stripped, p)]
            # a named someone's stance ("Tom likes leather", "Gina loves dancing") is worth remembering about them
            other_stance = span.owner == "other" and span.named and bool(clause_prefs or _OTHER_STANCE.match(stripped))
            about_named_other = other_stance
            if not (_FIRST_PERSON.search(stripped) or about_named_other) or not _CLAUSE_VERB.search(stripped):
                continue  # not about the speaker, or a fragment ("my wife Emma and our dog Max")
            clause_purchases = [p for p in purchases if p.product_name.lower() in stripped.lower()
                                or (p.category and self.catalog.match_categories(stripped).count(p.category))]
            clause_entities = [e for e in entities if e.name.lower() in stripped.lower()]
            structured = bool(clause_prefs or clause_purchases or clause_entities)
            if not structured:
                if _SMALL_TALK.search(stripped) or _OPINION_ONLY.match(stripped):
                    continue
                if len(words) < 6 and _VAGUE.search(stripped):
                    continue
                if len(words) < 4 and not (span.owner == "self" and _LIKES.match(stripped)):
                    continue  # "I love reading" is short but still says something about the speaker

            clause_dates = find_dates(stripped, at)
            rewritten = stripped
            for d in sorted(clause_dates, key=lambda d: d.start, reverse=True):
                rewritten = rewritten[: d.start] + d.phrase + rewritten[d.end:]
            rewritten = third_person(rewritten, subject, coordinate=bool(clause_prefs))
            if subject == "The customer":
                rewritten = re.sub(r"(?<=\S\s)The customer", "the customer", rewritten)
            rewritten = rewritten.rstrip(" ,;:-")
            rewritten = re.sub(r"[!?.]+$", "", rewritten)
            past = bool(_PAST_VERB.search(stripped))

            when = clause_dates[0].value if clause_dates else None
            if clause_purchases:
                kind, importance, when = "event", 0.8, clause_purchases[0].at or when or today
            elif clause_dates and not clause_prefs:
                # a dated happening, however much else it mentions
                kind = "event"
                importance = 0.7 if any(e.type in ("person", "pet") for e in clause_entities) else 0.6
            elif clause_prefs:
                kind = "preference"
                base = 0.5 if span.owner == "self" else 0.45
                importance = min(1.0, base + 0.3 * max(p.strength for p in clause_prefs))
            elif any(e.type in ("person", "pet") for e in clause_entities):
                # "My wife and I hosted a get-together": something that happened, with someone
                kind, importance = ("event", 0.7) if past and not clause_prefs else ("fact", 0.8)
            elif any(e.type in ("place", "organization") for e in clause_entities):
                kind, importance = "fact", 0.7
            elif clause_dates or any(e.type == "event" for e in clause_entities):
                kind, importance = "event", 0.6
            elif past:
                kind, importance = "event", 0.5
            elif re.search(r"\bfavou?rite\b", stripped, _I):
                kind, importance = "preference", 0.6
            elif span.owner == "self" and _LIKES.match(stripped) or other_stance:
                kind, importance = "preference", 0.55
            else:
                kind, importance = "fact", 0.45 if len(words) >= 6 else 0.35
            if kind == "event" and not clause_dates:
                when = when or today
                if not clause_purchases or not dates:
                    rewritten += f" (mentioned on {format_day(today)})"
            if kind == "event" and clause_dates and not when:
                when = clause_dates[0].value
            text = rewritten[:1].upper() + rewritten[1:] + "."
            out.memories.append(MemoryCandidate(kind=kind, text=text, importance=round(importance, 2), at=when))

    def _names_value(self, clause: str, pref: Preference) -> bool:
        low = clause.lower()
        c = self.catalog
        if pref.attribute == "style":
            return pref.value in c.match_styles(clause)
        if pref.attribute == "material":
            return pref.value in c.match_materials(clause)
        if pref.attribute == "color":
            return pref.value in c.match_colors(clause)
        if pref.attribute == "category":
            return pref.value in c.match_categories(clause)
        if pref.attribute == "brand":
            return pref.value in c.match_brands(clause)
        if pref.attribute == "product":
            return any(p.sku == pref.value for p in c.match_products(clause))
        if pref.attribute == "budget":
            digits = re.sub(r"\D", "", low)
            return pref.value.split(".")[0][:2] in digits
        return pref.value in low

    # -- tidy -----------------------------------------------------------------------------------------------------
    @staticmethod
    def _dedupe(out: Extraction) -> None:
        prefs: dict[tuple[str, str, str], Preference] = {}
        for p in out.preferences:
            key = (p.attribute, p.value, p.polarity)
            if key not in prefs or p.strength > prefs[key].strength:
                prefs[key] = p if key not in prefs else p.model_copy(update={"replaces": p.replaces or prefs[key].replaces})
        # the same value both preferred and disliked in one message: keep the stronger, explicit one
        final: list[Preference] = []
        for p in prefs.values():
            other = prefs.get((p.attribute, p.value, "dislikes" if p.polarity == "prefers" else "prefers"))
            if other and (other.strength, other.confidence) > (p.strength, p.confidence):
                continue
            final.append(p)
        out.preferences = final
        seen_i: set[tuple] = set()
        out.interests = [i for i in out.interests
                         if (k := (i.sku, i.category, i.kind)) not in seen_i and not seen_i.add(k)]
        seen_e: set[tuple] = set()
        out.entities = [e for e in out.entities
                        if (k := (e.type, e.name.lower(), e.relation)) not in seen_e and not seen_e.add(k)]
        seen_r: set[tuple] = set()
        out.relations = [r for r in out.relations
                         if (k := (r.source.lower(), r.target.lower(), r.type)) not in seen_r and not seen_r.add(k)]
        seen_m: set[str] = set()
        out.memories = [m for m in out.memories if (k := m.text.lower()) not in seen_m and not seen_m.add(k)]
