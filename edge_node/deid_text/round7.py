"""Round 7: more identifiers by their class rather than by a listed instance.

Organisations by their kind word at either end (Lodge, Grange, Co-op, Foundation,
Cathedral, Home Care, Elderly Home; Masjid…, Gurdwara…, Temple…; 教堂, 工会, 会馆,
安老院, 寺, 宫); rural and postal addresses by shape (PO Box, RR/Rural Route + Box,
numbered streets, a Chinese county–township–village–group chain, a town before its
own hospital); people by a title or a kin or role word before them even where the
name is also an English word (Dr Faith …, granddaughter Joy), same-line sign-offs
with a credential, romanised and Chinese names side by side; ages over 89 spelled
out or in a record's sex|age cells; MAC addresses, licence and warrant numbers,
share codes.

Called from `generic.detect`; every scan starts with a literal or a character class
or runs only when its key word is in the note (see "Speed pass" in docs/deid-text.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise

from edge_node.deid_text.lexicon import lexicon, trie_pattern
from edge_node.deid_text.rules import HAN, LO, UP, Hit, common_word, has_han, in_windows, windows
from edge_node.deid_text.unknown import dictionary_word


def _split(spaced: str) -> list[str]:
    return spaced.split()


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


def _class_first(words: list[str]) -> str:
    """An alternation of words that starts with one character class, so that `re` skips
    ahead to a possible first letter (a plain alternation is tried at every position):
    `[LG](?:(?<=L)odge|(?<=G)range)`."""
    firsts = sorted({w[0] for w in words})
    branches = [
        f"(?<={re.escape(f)}){trie_pattern(w[1:] for w in words if w[0] == f)}" for f in firsts
    ]
    return f"[{''.join(re.escape(f) for f in firsts)}](?:{'|'.join(branches)})"


def _both_cases(words: str) -> list[str]:
    return [v for w in _split(words) for v in (w, w[0].upper() + w[1:])]


_CAP = rf"[{UP}][\w'’.\-]*"
_JOIN = r"(?:[ \t]+(?:of|and|&|the|de|du|la)(?=[ \t]+[{UP}]))?[ \t]+".replace("{UP}", UP)

# --- English organisations --------------------------------------------------------------
# A kind word that names an organisation whatever the words before it.
_KIND_END = (
    r"Lodge|Grange|Co-op|Co-operative|Cooperative|Foundation|Synagogue|Mosque|Cathedral|"
    r"Parish|Chapel|Gurdwara|Temple|Home[ \t]Care|Elderly[ \t]Home|Care[ \t]Home|"
    r"Nursing[ \t]Home|Rest[ \t]Home|Retirement[ \t](?:Home|Village)|University|Polytechnic|"
    r"Company|Systems|Services|Battalion|Guards|Regiment|(?:sub-)?Branch|Pvt[ \t]Ltd|Ltd|GAA|"
    r"Union|Workers|Club|League|Legion"
)
_EN_ORG_END = re.compile(
    rf"[{UP}][\w'’.\-]*(?:{_JOIN}{_CAP}){{0,5}}?[ \t]+(?:{_KIND_END})(?![\w\-])"
    r"(?:[ \t]+(?:No\.?|Local|Lodge|Branch|Post|Chapter|Council|conseil)[ \t]*\d{1,5})?"
)
_ORG_END_GATE = re.compile(
    _class_first(
        _split(
            "Lodge Grange Co-op Coop Cooperative Co-operative Foundation Synagogue Mosque "
            "Cathedral Parish Chapel Gurdwara Temple Care Home Village University Polytechnic "
            "Company Systems Services Battalion Guards Regiment Branch Ltd GAA Union Workers Club "
            "League Legion"
        )
    )
    + "(?![a-z])"
)
# A kind word first: "Masjid An-Nur …", "Gurdwara …", "Temple …", "Universiti …",
# "Cooperative of Fishers", "Chevaliers de … conseil 1234".
_EN_ORG_START = re.compile(
    rf"(?:Masjid|Gurdwara|Temple|Synagogue|Universiti|Universidad|Université|Cooperative[ \t]of|"
    rf"Chevaliers[ \t]de)[ \t]+{_CAP}(?:{_JOIN}{_CAP}){{0,4}}"
    r"(?:[ \t]+(?:conseil|council|No\.?)[ \t]*\d{1,5})?"
)
_ORG_START_GATE = re.compile(
    _class_first(_split("Masjid Gurdwara Temple Synagogue Universi Cooperative Chevaliers"))
)
_STREET_WORDS = _words(
    "Road Rd Street St Avenue Ave Lane Ln Drive Dr Way Close Court Place Terrace "
    "Crescent Boulevard Blvd Highway Hwy Route Square"
)
# Words that open a clause or name a clinical service: never an organisation's first word.
_NOT_FIRST = _words(
    "The A An His Her Their Our Your This That Home Social Cancer Oncology Palliative "
    "Community Support Patient Hospital Medical Health Nursing Day Night Care Family "
    "Children Renal Pharmacy Radiology Pathology Clinical Emergency Ambulance Lab "
    "Laboratory Dietetic Dietetics Physiotherapy Interpreter Interpreting Transport "
    "Chaplaincy Spiritual Bereavement Hospice Macmillan Marie Curie Both No Not And Or"
)
# A kind word that is generic on its own: one more word must name the organisation.
_WEAK_KINDS = frozenset({"Services", "Systems", "Company", "Union", "Workers", "Club", "League"})
_INSTITUTION = frozenset(
    {"Hospital", "Hospice", "Infirmary", "Clinic", "Institute", "Centre", "Center", "NHS"}
)

# "works as a night porter at X", "member of X", "steward with X"
_ROLE_WORDS = _both_cases(
    "work works worked working member steward cook driver cleaner guard warden logger volunteer"
)
_EN_AFTER_ROLE = re.compile(
    r"(?:[ \t]+as[ \t]+(?:an?[ \t]+)?[a-z\-]+(?:[ \t]+[a-z\-]+){0,2})?"
    r"[ \t]+(?:at|of|with|for|from)?[ \t]*(?:the[ \t]+)?"
    rf"([{UP}][\w'’\-]*(?:[ \t]+(?:[{UP}][\w'’\-]*|the|of|&)){{0,4}})"
)


def _org_ok(value: str, weak: bool) -> bool:
    words = [w.strip(".,;:()") for w in value.split()]
    if not words or words[0] in _NOT_FIRST or any(w in _INSTITUTION for w in words):
        return False
    if words[0].lower() in ("on", "in", "at", "to", "from", "with", "for", "by"):
        return False
    if words[-1] in _STREET_WORDS or (len(words) > 1 and words[1] in _STREET_WORDS):
        return False
    lex = lexicon()
    if value in lex.clinical or words[0] in lex.clinical:
        return False
    if not weak:
        return True
    named = [w for w in words[:-1] if w and w[0].isupper() and w not in ("Home", "Care")]
    if any(f"{a} {b}" in lex.places_en for a, b in pairwise(words)):
        return True  # "Hong Kong … Company": a two-word place names it
    return any(
        (w.isupper() and len(w) >= 2) or not dictionary_word(w) or w in lex.places_en for w in named
    )


def _trim(text: str, s: int, e: int) -> int:
    while e > s and text[e - 1] in " \t.,;:":
        e -= 1
    return e


def en_organizations(text: str, cues: Cued) -> Iterator[Hit]:
    for m in in_windows(_EN_ORG_END, text, windows(_ORG_END_GATE, text, 100, 30)):
        words = m.group().split()
        # a numbered lodge, local or branch is an organisation whatever its words
        weak = words[-1 if not words[-1].isdigit() else -3] in _WEAK_KINDS
        if _org_ok(m.group(), weak and not words[-1].isdigit()):
            yield Hit(m.start(), _trim(text, m.start(), m.end()), "ORGANIZATION", True)
    for m in in_windows(_EN_ORG_START, text, windows(_ORG_START_GATE, text, 0, 90)):
        words = m.group().split()
        if len(words) > 1 and words[1] not in _STREET_WORDS:
            yield Hit(m.start(), _trim(text, m.start(), m.end()), "ORGANIZATION", True)
    for s1, e1, *_ in cues.get(_EN_AFTER_ROLE, ()):
        words = text[s1:e1].split()
        while words and words[-1] in ("the", "of", "&"):
            words.pop()
        value = " ".join(words)
        if len(words) >= 2 and _org_ok(value, True):
            yield Hit(s1, s1 + len(value), "ORGANIZATION", True)


# --- English addresses -------------------------------------------------------------------
_TOWN = rf"[{UP}][{LO}'’\-]+(?:[ \t][{UP}][{LO}'’\-]+){{0,2}}"
# "PO Box 2291, Elkhorn", "RR 4 Box 72, Marlinton", "Rural Route 3, Box 15B, Tamworth"
_BOX = re.compile(
    r"(?:P\.?[ \t]?O\.?[ \t]Box[ \t]*#?\d{1,5}[A-Z]?|Rural[ \t]Route[ \t]*\d{1,4}"
    r"(?:,?[ \t]+Box[ \t]+\d{1,5}[A-Z]?)?|(?:RR|R\.R\.)[ \t]*\d{1,4},?[ \t]+Box[ \t]+\d{1,5}[A-Z]?)"
    rf"(?:,[ \t]*{_TOWN})?"
)
# A numbered street with a number or a non-English word for its name, then a town:
# "9120 152 St, Fleetwood", "5 Ōtaki Gorge Road, Ōtaki 5581", "4 County Route 9, Alma",
# "Lot 12, 4410 Old Mill Rd, Harwood", "No. 14/3, Galle Road, Dehiwala".
_STREET_TYPE = (
    r"St|Street|Rd|Road|Ave|Avenue|Dr|Drive|Route|Hwy|Highway|Esplanade|Lane|Way|Blvd|Crescent|"
    r"Terrace|Place|Close|Court"
)
_NUMBERED_STREET = re.compile(
    r"\d{1,6}(?:/\d{1,4})?[A-Za-z]?,?[ \t]+"
    rf"(?:\d{{1,4}}(?:st|nd|rd|th)?|[{UP}][\w'’\-]*)(?:[ \t]+(?:de|la|del|[{UP}][\w'’\-]*|\d{{1,4}})){{0,4}}?"  # noqa: E501
    rf"[ \t]+(?:{_STREET_TYPE})(?:[ \t]+\d{{1,4}})?(?:[ \t]+(?:NE|NW|SE|SW|N|S|E|W))?"
    rf"(?:,[ \t]*(?:Apt|Unit|Suite|Flat)\.?[ \t]*\d{{1,5}}[A-Z]?)?"
    rf",[ \t]*{_TOWN}(?:[ \t]+\d{{4}}(?![\d]))?"
)
_UNIT_SLASH = re.compile(
    rf"Unit[ \t]+\d{{1,4}}/\d{{1,5}}[ \t]+[{UP}][\w'’\-]*(?:[ \t][{UP}][\w'’\-]*){{0,2}},[ \t]*{_TOWN}"  # noqa: E501
)
# A UK or Irish postcode line: the house and town before it ("3 Ferry Cottages,
# Port Isaac, Wadebridge PL29 3SB", "7 Borve, Barra, HS9 5XR").
_UK_POSTCODE_LINE = re.compile(
    rf"\d{{1,4}}[ \t]+[{UP}][\w'’\-]*(?:[ \t]+[{UP}][\w'’\-]*){{0,3}}"
    rf"(?:,[ \t]*[{UP}][\w'’\-]*(?:[ \t]+[{UP}][\w'’\-]*){{0,3}}){{1,3}},?[ \t]+"
    r"[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}(?![\w])"
)
_PLACE_BEFORE = re.compile(r"(?:Isle[ \t]of|Island[ \t]of)[ \t]+[A-Z][a-z]+")
_FILIPINO = re.compile(
    rf"(?:Sitio|Purok|Brgy\.?|Barangay)[ \t]+[{UP}][\w\-]*(?:[ \t,]+(?:Brgy\.?[ \t]+)?[{UP}][\w\-]*){{0,8}}"  # noqa: E501
    r"(?:[ \t]+\d{4}(?!\d))?"
)


# (the street word before the comma and town every match has: "Dr Smith" opens no window)
_STREET_GATE = re.compile(
    _class_first(
        _split(
            "St Street Rd Road Ave Avenue Dr Drive Route Hwy Highway Esplanade Lane Way Blvd "
            "Crescent Terrace Place Close Court"
        )
    )
    + r"(?:[ \t]+\d{1,4})?(?:[ \t]+(?:NE|NW|SE|SW|N|S|E|W))?,"
)
_POSTCODE_GATE = re.compile(r"[A-Z](?:[A-Z]\d|\d)[A-Z\d]?[ \t]\d[A-Z]{2}(?![\w])")
_ADDRESS_GATE = re.compile(
    _class_first(_split("Box Route Unit Isle Island Sitio Purok Brgy Barangay"))
)


# what may stand before the house number: "Lot 12, ", "No. "
_PITCH_BEFORE = re.compile(r"(?:(?:Space|Lot|Site|Pad)[ \t]*\d{1,5},[ \t]*|No\.[ \t]*)$")


def en_addresses(text: str) -> Iterator[Hit]:
    for m in in_windows(_NUMBERED_STREET, text, windows(_STREET_GATE, text, 80, 60)):
        pitch = _PITCH_BEFORE.search(text, max(0, m.start() - 16), m.start())
        yield Hit(pitch.start() if pitch else m.start(), m.end(), "ADDRESS", True)
    found = list(in_windows(_UK_POSTCODE_LINE, text, windows(_POSTCODE_GATE, text, 90, 10)))
    if _ADDRESS_GATE.search(text) is not None:
        for p in (_BOX, _UNIT_SLASH, _PLACE_BEFORE, _FILIPINO):
            found += p.finditer(text)
    for m in found:
        yield Hit(m.start(), m.end(), "ADDRESS", True)


# --- English people ----------------------------------------------------------------------
_NAME = rf"[{UP}][{LO}]+(?:-[{UP}][{LO}]+)?"
_SURNAME = rf"(?:O['’]|Mc|Mac|D['’])?[{UP}][{LO}'’\-]+"
# A title before a given name that is also an English word: "Dr Faith Abernathy",
# "Rabbi Feldstein", "Imam …", "Aunty May", "Lola …".
_TITLE_WORDS = _split(
    "Dr Rabbi Imam Pastor Father Fr Rev Revd Aunty Auntie Uncle Lola Lolo Puan Encik Tuan "
    "Ustaz Bhai Swami Nurse"
)
_TITLE_NAME = re.compile(
    r"\.?[ \t]+"
    rf"({_NAME}(?:[ \t]{_SURNAME})?)(?![\w'’])"
)
# A kin or role word before a given name: "granddaughter Joy", "co-worker Dee",
# "cousins Paulo and Bettina", "hospice nurse Crystal", "Contact: Ann", "via Ivy".
_KIN_WORDS = _both_cases(
    "daughter granddaughter son grandson child grandchild niece nephew coworker co-worker "
    "colleague cousin friend neighbour neighbor carer caregiver nurse wife husband partner "
    "sister brother aunt uncle contact: caller: via coordinator father mother"
)
_KIN_NAME = re.compile(
    rf"s?[ \t]({_NAME}(?:[ \t]{_SURNAME})?(?:[ \t](?:Sr|Jr)\.?)?)(?![\w'’])"
    rf"(?:[ \t]+and[ \t]+({_NAME}))?"
)
# Words a kin or role word is often followed by that are no names.
_NOT_GIVEN = _words(
    "The Who Was Is Has Had And But Not Present Aware Informed Called Phoned Visited "
    "Here There Today Tomorrow Yesterday Mother Father Daughter Son Wife Husband Nurse "
    "Doctor Dr Team Specialist Practitioner Navigator Coordinator Lead Manager "
    "Consultant Oncology Palliative Hospice District Community Charge Clinic Ward Unit "
    "Also Then All Both Will Can Did Does May Might Would Should"
)
# A same-line sign-off: "Marguerite Dufresne, LCSW  03/02/2025", "Jo P, RN".
_SIGNOFF = re.compile(
    rf"(?m)^[ \t]*({_NAME}(?:[ \t]+(?:{_SURNAME}|[{UP}]\.?)){{1,2}}),[ \t]*"
    r"(?:RN|LCSW|LPN|MSW|NP|PA-C|PA|MD|DO|RD|RPh|PharmD|CNS|BSN|MSN|APRN|OT|PT|SLP|CNA|EMT|"
    r"Paramedic|ANP|CNM|RGN|RMN|SRN)(?![\w])"
)
# A handle after a role: "Triage RN pmcdowell" (the line ends with it).
_ROLE_HANDLE = re.compile(r"(?:RN|MD|NP|LPN|Tech|tech)[ \t]+([a-z]{4,14})(?=[ \t]*$)", re.M)
# "Ah Keong": a Cantonese or Hokkien form of address and a given name.
_AH_NAME = re.compile(rf"Ah[ \t]+[{UP}][{LO}]{{1,8}}(?![\w])")
# "MacINTYRE, Fiona": a capitalised surname with its prefix before the given name.
_MC_CAPS = re.compile(rf"[MO](?:(?<=M)a?c|(?<=O)['’])[A-Z]{{3,}},[ \t]*{_NAME}")
# Initials in a table cell: "| K.L.M. |".
_INITIALS_CELL = re.compile(r"\|[ \t]*((?:[A-Z]\.){2,4})[ \t]*\|")


def _given_ok(word: str) -> bool:
    first = word.split(maxsplit=1)[0]
    if first in _NOT_GIVEN or len(first) < 3:
        return False
    return first not in lexicon().clinical


def en_people(text: str, cues: Cued) -> Iterator[Hit]:
    for p in (_TITLE_NAME, _KIN_NAME, _REAL_NAME):
        for s1, e1, s2, e2, *_ in cues.get(p, ()):
            for s, e in ((s1, e1), (s2, e2)):
                if s >= 0 and _given_ok(text[s:e]):
                    yield Hit(s, e, "NAME", True)
    for m in _SIGNOFF.finditer(text):
        if _given_ok(m.group(1)):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ROLE_HANDLE.finditer(text):
        if not dictionary_word(m.group(1)):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for p in (_AH_NAME, _MC_CAPS, _INITIALS_CELL):
        for m in p.finditer(text):
            g = 1 if p.groups else 0
            if g == 0 and dictionary_word(m.group().split()[-1]):
                continue
            yield Hit(m.start(g), m.end(g), "NAME", True)


# --- English ages and numbers ------------------------------------------------------------
_NINETY = re.compile(
    r"[NnOo](?<![\w\-][NnOo])(?:(?<=[Nn])inety(?:[\-  ](?:one|two|three|four|five|six|seven|eight|nine))?|"  # noqa: E501
    r"(?<=[Oo])ne[\-  ]hundred(?:[\-  ](?:and[\-  ])?[a-z]+)?)(?![A-Za-z\-])"
    r"(?![ \t]*(?:percent|per|%|minutes?|mins?|seconds?|hours?|days?|weeks?|months?|mg|ml|mL|"
    r"units?|cc|beats|bpm|mmHg|degrees|times|patients|cases|cycles|doses|tablets|pounds|lbs?|kg))"
)
# "97 YOF", "93 YOM", "95 y.o."
_AGE_ABBR = re.compile(r"(9\d|1[01]\d)[ \t]*(?:YOF|YOM|YO|yo|y\.o\.|y/o|yof|yom)(?![A-Za-z])")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}(?![0-9A-Fa-f:])")
_MAC_GATE = re.compile(r":(?<=[0-9A-Fa-f]{2}:)[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}:")
_LICENCE_WORDS = [*_both_cases("licence license claim badge collar"), "warrant card"]
_LICENCE = re.compile(
    r"(?:[ \t]+(?:no\.?|number|#))?[ \t:,()]*(?:seen,[ \t]*no\.?[ \t]*)?"
    r"((?:[A-Z]{2,8}[ \t])?[A-Z]{0,3}\d[\d\-]{3,14})(?![\w])"
)
_KEY_CODE = re.compile(r"[Kk]ey[\-  ]?safe(?:[ \t]+code)?[ \t:#]*(\d{3,8})(?!\d)")
_INCIDENT_WORDS = _split("Incident Run Call Case Event Report")
_INCIDENT = re.compile(r"[ \t]*(?:#|No\.?|number)[ \t:]*([A-Z0-9][\w\-]{3,16})")


# A Malaysian identity card number (YYMMDD-PB-###G); an international number with
# its country code ("+44 7700 900123"); "2nd Battalion, Rifles"; a row's subject
# number in a pipe table ("11-004 | K.L.M. |"); a person's "real name".
_MYKAD = re.compile(r"-(?<=\d{6}-)\d{2}-\d{4}(?!\d)")  # from its first dash
_INTL_PHONE = re.compile(r"\+\d{1,3}(?:[ \t\-]\d{2,5}){2,4}(?![\d])")
_MILITARY_UNIT = re.compile(
    r"[snrt](?<=\d[snrt])(?:(?<=s)t|(?<=n)d|(?<=r)d|(?<=t)h)[ \t]+(?:Battalion|Regiment|Brigade|Division|Squadron|Platoon)"  # noqa: E501
    rf"(?:,?[ \t]+(?:{_CAP})(?:[ \t]+{_CAP}){{0,3}})?"
)
_TABLE_ROW_ID = re.compile(r"(?m)^(\d{2,3}-\d{3,4})[ \t]*\|")
_REAL_WORDS = _split("real legal full birth registered")
_REAL_NAME = re.compile(
    r"[ \t]name[ \t:]+"
    rf"({_NAME}(?:[ \t]+(?:de|dela|del|da|do|dos|van|von|bin|binti|{_SURNAME})){{1,4}})"
)


# Every cue word above in one scan, from the character before the word (one class, then
# a prefix tree: the engine skips the letters of every word); each word's own patterns
# are then tried where it ends.
_CUES: dict[str, list[re.Pattern[str]]] = {}
for _words_list, _after in (
    (_ROLE_WORDS, _EN_AFTER_ROLE),
    (_TITLE_WORDS, _TITLE_NAME),
    (_KIN_WORDS, _KIN_NAME),
    (_LICENCE_WORDS, _LICENCE),
    (_INCIDENT_WORDS, _INCIDENT),
    (_REAL_WORDS, _REAL_NAME),
):
    for _w in _words_list:
        _CUES.setdefault(_w, []).append(_after)
_CUE_SCAN = re.compile(f"[^\\w]({trie_pattern(_CUES)})")
Cued = dict[re.Pattern[str], list[tuple[int, int, int, int, int, int]]]


def cued(text: str) -> Cued:
    """Each cue pattern's matches after its words, as the spans of its groups 1 and 2
    in `text` ((-1, -1) where a group is absent) and the whole match."""
    out: Cued = {}
    padded = "\n" + text  # a word opening the note has a character before it too
    for m in _CUE_SCAN.finditer(padded):
        for after in _CUES[m.group(1)]:
            a = after.match(padded, m.end())
            if a is not None:
                g2 = a.span(2) if after.groups >= 2 else (-1, -1)
                s1, e1 = a.span(1)
                out.setdefault(after, []).append(
                    (s1 - 1, e1 - 1, g2[0] - 1, g2[1] - 1, a.start() - 1, a.end() - 1)
                )
    return out


def en_numbers(text: str, cues: Cued) -> Iterator[Hit]:
    for m in _NINETY.finditer(text):
        yield Hit(m.start(), m.end(), "AGE", True)
    for m in _AGE_ABBR.finditer(text):
        yield Hit(m.start(1), m.end(1), "AGE", True)
    for p in (_LICENCE, _INCIDENT):
        for s1, e1, *_ in cues.get(p, ()):
            yield Hit(s1, e1, "OTHER", True)
    for m in _KEY_CODE.finditer(text):
        yield Hit(m.start(1), m.end(1), "OTHER", True)
    if ":" in text and _MAC_GATE.search(text) is not None:
        for m in _MAC.finditer(text):
            yield Hit(m.start(), m.end(), "DEVICE_ID", True)
    for m in _INTL_PHONE.finditer(text):
        yield Hit(m.start(), m.end(), "PHONE", True)
    for m in _MILITARY_UNIT.finditer(text):
        s = m.start() - 1 - (text[m.start() - 2 : m.start() - 1].isdigit())
        yield Hit(s, m.end(), "ORGANIZATION", True)
    for m in _MYKAD.finditer(text):
        yield Hit(m.start() - 6, m.end(), "ID_NUMBER", True)
    for m in _TABLE_ROW_ID.finditer(text) if "|" in text else ():
        yield Hit(m.start(1), m.end(1), "OTHER", True)


# --- Chinese -----------------------------------------------------------------------------
# Organisations by their kind word: churches, temples, unions, guild halls, care homes,
# charities, restaurants, industrial parks, railway bureaus.
_ZH_ORG_KINDS = (
    r"(?:基督教堂|教堂|天主堂|堂区|堂區|教[区區](?:[\u4e00-\u9fff]{1,3}堂)?|清真寺|寺|庙|廟|"
    r"(?<![子清示刮])[宫宮](?![颈頸旁腔体體内內外底角])|工会|工會|总会|總會|基金会|基金會|慈善会|会馆|會館|同乡会|同鄉會|俱乐部|俱樂部|合作社|"
    r"养老院|安老院|敬老院|老人院|福利院|护理院|護理院|颐养院|科技园|工业园|產業園|产业园|"
    r"药店|藥店|大药房|大藥房|餐厅|餐廳|饭店|飯店|酒楼|酒樓|食堂|攤|摊|铁路局|鐵路局|电业局|電業局|矿务局|礦務局)"
)
_ZH_ORG_KIND = re.compile(
    rf"[{HAN}A-Za-z]{{2,14}}?{_ZH_ORG_KINDS}(?![{HAN}]{{0,1}}(?:医院|醫院|卫生院|科|病))"
)
# (the kind word alone opens a window for the full pattern: fewer places to try it)
_ZH_ORG_KIND_GATE = re.compile(_ZH_ORG_KINDS)
_ZH_HOSPITAL_GATE = re.compile(r"[医醫生健]院")
_ZH_ORG_CUT = (
    "在于於去交到向从從给給由为為至和与與及的是已把被请請往赴读讀任拜营營经經：:，,；;、。（("
)
_ZH_ORG_BAD = re.compile(r"^(?:医院|醫院|食堂|寺|庙|宫|宮|子宫|子宮|宫颈|宮頸)")
# A county or town before its own hospital or health centre (石门镇卫生院), or a city
# after "local"/"outside" (当地某某市人民医院): the treating hospital's city is kept.
_ZH_TOWN_HOSPITAL = re.compile(
    rf"(?:(?<=当地|當地|外院|转自|轉自|来自|來自)[{HAN}]{{2,4}}?市|[{HAN}]{{2,4}}?(?:县|縣|镇|鎮|乡|鄉))"
    r"(?=(?:第[一二三四五六七八九十]+)?(?:人民医院|中医院|中醫院|卫生院|衛生院|医院|醫院|妇幼保健院))"
)
# An administrative chain below the province: 黔南州瓮安县, 湄潭县兴隆镇龙凤村三组,
# 屏東縣萬丹鄉; a street with its house number and what follows it (院, 楼, 室).
_ZH_CHAIN = re.compile(
    rf"[{HAN}]{{1,5}}?(?:州|县|縣|区|區|市)[{HAN}]{{1,4}}?(?:县|縣|乡|鄉|镇|鎮|区|區)"
    rf"(?:[{HAN}]{{1,4}}?(?:村|社区|社區|街道))?(?:[一二三四五六七八九十\d]{{1,3}}(?:组|組|队|隊))?"
)
_ZH_STREET_NO = re.compile(
    rf"[{HAN}]{{2,8}}?(?:路|街|大街|道|巷|弄)\d{{1,5}}(?:号|號)"
    r"(?:院)?(?:\d{1,3}(?:号楼|號樓|栋|棟|幢|座))?(?:\d{1,3}(?:单元|單元))?(?:\d{1,5}(?:室|房))?"
    rf"(?:附近[{HAN}]{{1,4}})?"
)
_ZH_PLACE_CUT = "在到至住居迁遷搬供：:，,；;、。（("
_SG_POSTCODE = re.compile(r"新加坡[ \t]*(\d{6})(?!\d)")
# A name's formal or registered form: 身份证名马小兰, 户籍名…, 实名….
_ZH_REAL_NAME = re.compile(
    rf"(?:身份证名|身份證名|户籍名|戶籍名|实名|實名|证件名|證件名|本名|真名|叫)[：:是]?([{HAN}]{{2,3}}?)(?=[），,。；;\s)、]|$)"
)
# A person after a role or kin word, including 小/老/阿 forms: 牧师…, 网格员小杜,
# 工友老…, 钟点工阿…, 男友…, 兒子….
_ZH_ROLE_PERSON = re.compile(
    r"(?:牧师|牧師|神父|修女|阿訇|网格员|網格員|钟点工|鐘點工|工友|护工|護工|保姆|社工|志愿者|"
    r"志願者|男友|女友|男朋友|女朋友|同事|邻居|鄰居|兒子|女兒|丈夫|妻子|老公|老婆|姑娘|仔|孫|孙子)"
    rf"((?:[小老阿][{HAN}]|阿[A-Z][a-z]+)|[{HAN}]{{2,3}}?)(?=[，,。；;、（(）)\s]|每|常|已|亦|住|来|來|陪|$|\d)"
)
# A surname before a job title (龚营养师, …心理治疗师, …处长) or after a head
# nurse's title (护士长蒋负责).
_ZH_SURNAME_TITLE = re.compile(
    rf"([{HAN}])(?=(?:营养师|營養師|心理治疗师|心理治療師|治疗师|治療師|处长|處長|科长|科長|干事|社工))"
)
_ZH_AFTER_TITLE = re.compile(
    rf"(?:护士长|護士長|主管医生|主管醫生|主治医生|联络人|聯絡人)([{HAN}])(?=负责|負責|[。，,；;）)\s]|$)"
)
# A patient by position: 患儿豆豆（, 患者白雪，女，34岁 (a common word only where the
# sex or the age follows it); a doubled pet name is a name.
_ZH_PATIENT = re.compile(
    rf"(?:患者|患儿|患兒|服务对象|服務對象)[：:]?([{HAN}]{{2,3}}?)(?=[，,（(])"
)
_ZH_SEX_AGE_AFTER = re.compile(r"[，,](?:男|女|\d{1,3}岁|\d{1,3}歲)|[（(]")
# Romanised then Chinese: "LEUNG Kwok Wai 梁國偉".
_ZH_ROMAN_HAN = re.compile(
    rf"[A-Z]{{2,}}(?:[ \t][A-Z][a-z]+){{1,3}}[ \t]*([{HAN}]{{2,4}})(?![{HAN}])"
)
# An elder's form of address and a bare age: 王伯 94, … is 九十四; a record's
# sex|age cells (|女|93|); a share code (提取码x7q2).
_ZH_ELDER_AGE = re.compile(r"[伯婆叔公嫲奶爷爺][ \t]+(9\d|1[01]\d)(?![\d.])")
_ZH_WORD_AGE = re.compile(r"九十[一二三四五六七八九]?(?=[ \t]*(?:岁|歲|and|$|[，,。 \t]))")
_SEX_AGE_CELL = re.compile(r"[|｜](?:男|女|M|F)[|｜](9\d|1[01]\d)(?=[|｜])")
_SHARE_CODE = re.compile(r"(?:提取码|提取碼|密码|密碼|验证码|驗證碼)[：:]?[ \t]*([A-Za-z0-9]{4,8})")


# A department and a bare surname before a colon (胸外科殷：); a Latin name after a
# Chinese role label (药师：Jenny Ho) or a kin word (丈夫…) or before its Chinese form
# (Ana de Sousa（苏安娜）); an extension after 联系.
_ZH_DEPT_SURNAME = re.compile(rf"科([{HAN}])[：:]")
_ZH_LATIN_AFTER = re.compile(
    r"(?:[师師士生员員人]：|[师師士生员員人]:|丈夫|妻子|太太|先生|老公|老婆|儿子|兒子|女儿|女兒)[ \t]*"  # noqa: E501
    rf"({_NAME}(?:[ \t]+(?:de|da|do|dos|van|von|{_SURNAME})){{1,3}})"
)
_ZH_LATIN_BEFORE_HAN = re.compile(
    rf"[{UP}][{LO}]+(?:[ \t]+(?:de|da|do|dos|van|von|[{UP}][{LO}]+)){{1,4}}(?=[（(][{HAN}]{{2,4}}[）)])"  # noqa: E501
)
_ZH_EXTENSION = re.compile(r"(?:联系|聯繫|聯絡|分机|分機|内线|內線)[：:]?[ \t]*(\d{3,5})(?![\d\-])")


def _zh_cut(text: str, s: int, e: int, cuts: str) -> int:
    cut = max(text.rfind(c, s, e - 2) for c in cuts)
    return cut + 1 if cut >= 0 else s


def zh(text: str) -> Iterator[Hit]:
    lex = lexicon()
    for m in in_windows(_ZH_ORG_KIND, text, windows(_ZH_ORG_KIND_GATE, text, 16, 8)):
        s = _zh_cut(text, m.start(), m.end(), _ZH_ORG_CUT)
        value = text[s : m.end()]
        if len(value) >= 3 and value not in lex.clinical and not _ZH_ORG_BAD.match(value):
            yield Hit(s, m.end(), "ORGANIZATION", True)
    for m in in_windows(_ZH_TOWN_HOSPITAL, text, windows(_ZH_HOSPITAL_GATE, text, 16, 2)):
        s = _zh_cut(text, m.start(), m.end(), _ZH_PLACE_CUT)
        if m.end() - s >= 3:
            yield Hit(s, m.end(), "ADDRESS", True)
    for m in _ZH_CHAIN.finditer(text):
        s = _zh_cut(text, m.start(), m.end(), _ZH_PLACE_CUT)
        if m.end() - s >= 5:
            yield Hit(s, m.end(), "ADDRESS", True)
    for m in _ZH_STREET_NO.finditer(text):
        s = _zh_cut(text, m.start(), m.end(), _ZH_PLACE_CUT)
        yield Hit(s, m.end(), "ADDRESS", True)
    for m in _SG_POSTCODE.finditer(text):
        yield Hit(m.start(1), m.end(1), "ADDRESS", True)
    for p in (_ZH_REAL_NAME, _ZH_ROLE_PERSON, _ZH_AFTER_TITLE, _ZH_ROMAN_HAN):
        for m in p.finditer(text):
            v = m.group(1)
            if v[0] in "小老阿" or v[0] in lex.surnames_zh or v.isascii():
                yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_SURNAME_TITLE.finditer(text):
        before = text[m.start() - 1 : m.start()]
        if m.group(1) in lex.surnames_zh and (not has_han(before) or before in "人员員"):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_PATIENT.finditer(text):
        v = m.group(1)
        if "某" in v or v in lex.clinical or not (v[0] in lex.surnames_zh or v[0] == v[1]):
            continue
        if v[0] != v[1] and common_word(v) and not _ZH_SEX_AGE_AFTER.match(text, m.end(1)):
            continue
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for p, kind in (
        (_ZH_ELDER_AGE, "AGE"),
        (_SEX_AGE_CELL, "AGE"),
        (_SHARE_CODE, "OTHER"),
    ):
        for m in p.finditer(text):
            yield Hit(m.start(1), m.end(1), kind, True)
    for m in _ZH_DEPT_SURNAME.finditer(text):
        if m.group(1) in lex.surnames_zh:
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_LATIN_AFTER.finditer(text):
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_LATIN_BEFORE_HAN.finditer(text):
        yield Hit(m.start(), m.end(), "NAME", True)
    for m in _ZH_EXTENSION.finditer(text):
        yield Hit(m.start(1), m.end(1), "PHONE", True)
    for m in _ZH_WORD_AGE.finditer(text):
        yield Hit(m.start(), m.end(), "AGE", True)


def detect(text: str) -> list[Hit]:
    cues = cued(text)
    hits = [
        *en_organizations(text, cues),
        *en_addresses(text),
        *en_people(text, cues),
        *en_numbers(text, cues),
    ]
    if has_han(text):
        hits += zh(text)
    return hits
