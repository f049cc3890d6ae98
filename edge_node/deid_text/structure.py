"""Round 6: identifiers found by their structure rather than by a listed instance.

Employers and schools by their kind word (Inc, Ltd, School of…, University of…,
有限公司, 大学, 学校) or the verb before them (teaching at, studies at); a US city
before its state and ZIP; flat and unit numbers beside a street; a Chinese city and
district chain; people after a labelled colon whatever their surname, after a role
word glued to them, in voice transcripts (lower case), greetings and same-line
sign-offs; ages over 89 after "he is"/"she's" or in a table cell; short numbers
after a code word (PIN, pager, key safe); Windows share paths.

Called from `generic.detect`; every scan starts with a literal or a narrow class
(see "Speed pass" in docs/deid-text.md) or runs only when its literal is in the note.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from edge_node.deid_text.lexicon import _rows, lexicon, quiet_jieba, trie_pattern
from edge_node.deid_text.rules import (
    HAN,
    LO,
    UP,
    Hit,
    common_word,
    has_han,
    in_windows,
    matches_at,
    windows,
)
from edge_node.deid_text.unknown import dictionary_word

# --- English organisations ---------------------------------------------------------------
_CAP = rf"[{UP}][\w&'’.\-]*"
_ORG_KIND = (
    r"Inc\.?|Ltd\.?|LLC|LLP|PLC|plc|Corp\.?|Corporation|Company|GmbH|"
    r"Bank|College|Academy(?:[ \t]Trust)?|Church|Union|Council|Club|Association|Society|"
    r"Power[ \t]Station|Office|Factory|Plant|Foods|Industries|Logistics|Motors|Airlines?"
)
# "Chippewa Valley Technical College", "Northgate Academy Trust", "X Power Station",
# "Y School of Medicine", "University of Z–W": one to four capitalised words before
# the kind word (never a hospital, a cancer centre or a clinic: those are kept).
_EN_ORG = re.compile(
    rf"(?<![\w'’])((?:{_CAP}[ \t]){{1,4}}(?:{_ORG_KIND})(?![\w])"
    rf"|(?:{_CAP}[ \t]){{0,3}}(?:University|School|College)[ \t]of[ \t](?:{_CAP}(?:[ \t]*[–\-][ \t]*{_CAP})?)"  # noqa: E501
    rf"(?:[ \t](?:and|&)[ \t]{_CAP})?)"
    r"(?![ \t]+(?:Hospital|Medical|Cancer|Health|Clinic|Hospice|Infirmary|NHS))"
)
_ORG_GATE = re.compile(
    r"(?:Inc|Ltd|LLC|LLP|PLC|plc|Corp|Company|GmbH|Bank|College|Academy|Church|Union|Council|"
    r"Club|Association|Society|Station|Office|Factory|Plant|Foods|Industries|Logistics|Motors|"
    r"Airlines?|University|School)(?![a-z])"
)
# A place of work or study after its verb: "teaching at X", "studies at X", "worked
# 30 years at X", "retired from X"; capitalised words, "of"/"and"/"the" between them.
# (in the lower-cased text, and only where "at", "from" or "for" follows within a few
# words: "studies" alone is mostly imaging)
_WORK_VERB_KEY = re.compile(
    r"(?:teach|taught|stud|lectur|work|employed|retired|volunteer)[a-z]*"
    r"(?:[ \t]+[a-z0-9]+){0,2}[ \t]+(?:at|from|for)[ \t]"
)
_EN_WORK_VERB = re.compile(
    r"(?i:teach(?:es|ing)?|taught|stud(?:ies|ying|y)|student|lectur(?:es|ing|er)|works?|"
    r"worked|working|employed|retired|volunteers?|volunteering)"
    r"(?:[ \t]+(?:\d{1,2}|(?i:for|many|several|two|three|four|five|ten|twenty|thirty|forty))"
    r"[ \t]+(?i:years?|yrs?))?[ \t]+(?i:at|from|for)[ \t]+(?:the[ \t]+)?"
    rf"((?:{_CAP}(?:[ \t]*[–\-][ \t]*{_CAP})?(?:[ \t]+(?:of|and|for|&)(?=[ \t]+[{UP}]))?[ \t]*){{1,6}})"  # noqa: E501
)
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)])\.[ \t]+")
_NOT_ORG_FIRST = frozenset({"Home", "Night", "Nights", "Weekends", "Present", "Times", "The"})
_INSTITUTION_WORDS = frozenset(
    {"Hospital", "Hospice", "Infirmary", "Clinic", "Institute", "Centre", "Center", "NHS"}
)


def _org_words_ok(value: str) -> bool:
    words = value.split()
    if not words or words[0] in _NOT_ORG_FIRST or (words[0].isupper() and len(words[0]) <= 2):
        return False
    if any(w.strip(".,") in _INSTITUTION_WORDS for w in words):
        return False
    # a name of its own among the words: "Outpatient Booking Office" is a desk, not an employer
    places = _place_names()
    return any(
        (w.isupper() and len(w) >= 2) or w in places or not dictionary_word(w.strip(".,'’"))
        for w in re.split(r"[ \t–\-]+", value)
        if w and w[0].isupper() and w not in ("University", "College", "School")
    )


@lru_cache(maxsize=1)
def _place_names() -> frozenset[str]:
    """Countries, provinces and towns: "Zhejiang University" names itself by one."""
    kinds = ("country", "province", "nationality")
    safe = {r["word"] for r in _rows("english_safe.csv") if r["kind"] in kinds}
    return frozenset(safe | lexicon().places_en)


_SCHOOL_GATE = re.compile(
    r"École|Ecole|Collège|Lycée|Escuela|Colegio|Instituto|Scuola|Liceo|Schule|Gymnasium|Universidad|Université"
)


def _foreign_schools(text: str) -> Iterator[Hit]:
    for m in _FOREIGN_SCHOOL.finditer(text):
        yield Hit(m.start(), m.end(), "ORGANIZATION", True)


def en_organizations(text: str, low: str) -> Iterator[Hit]:
    spans = windows(_ORG_GATE, text, 130, 60)
    if spans:
        for m in in_windows(_EN_ORG, text, spans):
            value = m.group(1).rstrip(" .")
            if _org_words_ok(value) and not _is_sentence_start_phrase(text, m.start(1)):
                yield Hit(m.start(1), m.start(1) + len(value), "ORGANIZATION", True)
    starts = (
        k.start()
        for k in _WORK_VERB_KEY.finditer(low)
        if not low[k.start() - 1 : k.start()].isalpha()
    )
    for m in matches_at(_EN_WORK_VERB, text, starts):
        # the name ends with its sentence: "Works at Acme Ltd. Passport …"
        value = _SENTENCE_END.split(m.group(1), maxsplit=1)[0].rstrip(" .,;")
        while value.split() and value.split()[-1] in ("of", "and", "for", "&"):
            value = value.rsplit(None, 1)[0] if " " in value else ""
        if value and _org_words_ok(value):
            yield Hit(m.start(1), m.start(1) + len(value), "ORGANIZATION", True)


def _is_sentence_start_phrase(text: str, s: int) -> bool:
    """A capitalised common word opening a clause ("Call Office"): no name before it."""
    word = text[s : s + 12].split(" ", 1)[0]
    return word.lower() in ("the", "our", "your", "his", "her", "their", "call", "contact")


# --- English places ------------------------------------------------------------------------
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|"
    "NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
)
# A town before a US state code (", Atlanta, GA 30308", "in Noel, MO."), an Irish
# county ("Co. Wicklow"); a flat or unit number beside a street ("Flat: 3F2, 17 …",
# ", Unit 1912,", "Apartment 22,").
_US_TOWN = re.compile(
    rf"(?:,|in|near|from|to)[ \t]+([{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+){{0,2}}),[ \t]+"
    rf"(?:{_US_STATES})(?=[ \t]+\d{{5}}|[ \t]*[.,;)\n]|$)",
    re.M,
)
# a town on its own line above its state: "3318 Elm Row\nSalt Lake City, UT 84109"
_US_TOWN_LINE = re.compile(
    rf"\n([{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+){{0,2}}),[ \t]+(?:{_US_STATES})[ \t]+\d{{5}}(?![\d])"
)
_IRISH_COUNTY = re.compile(rf"Co\.[ \t]([{UP}][{LO}]+)(?![\w])")
_UNIT_WORDS = ("Flat", "Apartment", "Apt", "Unit", "Suite", "Ste", "Room", "Rm", "Trailer")
_UNIT_NO = re.compile(
    r"(?:Flat|Apartment|Apt|Unit|Suite|Ste|Room|Rm|Trailer)\.?[ \t]*[:#]?[ \t]*"
    r"([0-9][0-9A-Z/\-]{0,6}|[A-Z][0-9][0-9A-Z\-]{0,4})"
)
# before a street number or a named building the code alone is the unit; between two
# commas the whole "Unit 1912"
_UNIT_THEN_STREET = re.compile(
    rf"[ \t]*,[ \t]*(?:\d|The[ \t]|[{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+){{0,2}}[ \t]*,)"
)
_COMMA_BEFORE = re.compile(r",[ \t]*$")
# A street in French, Spanish, Italian or Portuguese with its number first (North
# American style): "311 Rue Bayard", "2245 rue Beaubien Est", "18 Calle Mayor".
_NUMBER_FOREIGN_STREET = re.compile(
    rf"\d(?<![\w]\d)\d{{0,4}}[ \t]+(?:Rue|rue|Via|via|Calle|calle|Avenida|Rua|Chemin|chemin|Boul\.|Av\.)"  # noqa: E501
    rf"[ \t]+(?:(?:de|du|des|la|le|del|da|do)[ \t]+)?[{UP}][{LO}'’\-]+(?:[ \t](?:Est|Ouest|Nord|Sud|[{UP}][{LO}]+))?"  # noqa: E501
)
_FOREIGN_STREET_WORD = re.compile(
    r"(?:Rue|rue|Via|via|Calle|calle|Avenida|Rua|Chemin|chemin|Boul\.|Av\.)[ \t]"
)
# A Singapore block with its street and unit: "Blk 12 Bedok North Ave 3 #05-112".
_BLOCK = re.compile(
    rf"Blk[ \t]\d{{1,4}}[A-Z]?(?:[ \t][{UP}][{LO}]+){{1,4}}(?:[ \t]\d{{1,3}})?(?:,?[ \t]*#\d{{1,2}}-\d{{1,5}})?"  # noqa: E501
)
# A school named in French, Spanish, Italian or German: "École élémentaire X-Y",
# "Colegio San José": up to the bracket, comma or full stop that ends it.
_FOREIGN_SCHOOL = re.compile(
    r"(?:École|Ecole|Collège|Lycée|Escuela|Colegio|Instituto|Scuola|Liceo|Schule|Gymnasium|Universidad|Université)"
    r"(?:[ \t][\w'’\-]+){1,6}?(?=[ \t]*(?:[),;]|\.(?:[ \t]|$)|$))",
    re.M,
)
# A person's name in FHIR-like JSON: "family":"Roe","given":["Ann","Lee"].
_JSON_NAME = re.compile(
    r"\"(?:family|given|firstName|lastName|surname|forename|givenName|familyName)\"[ \t]*:[ \t]*"
    r"(\[[ \t]*\"[^\"\n]{1,40}\"(?:[ \t]*,[ \t]*\"[^\"\n]{1,40}\")*[ \t]*\]|\"[^\"\n]{1,40}\")"
)
_JSON_STRING = re.compile(r"\"([^\"\n]{1,40})\"")
# An HL7 address (XAD): street^other^city^state^zip, or a Chinese one with its postcode.
_HL7_ADDRESS = re.compile(
    r"\|([^|^\n]{3,60}\^[^|\n]{0,60}\^(?:[A-Z]{2}\^)?\d{5,6}(?:-\d{4})?)(?=[|^~])"
)
# A named building after a unit: "Apartment 22, The Maltings, Bray".
_BUILDING_AFTER_UNIT = re.compile(rf",[ \t]*(The[ \t][{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+)?),")


def en_places(text: str, keyed: dict[re.Pattern[str], list[re.Match[str]]]) -> Iterator[Hit]:
    lex = lexicon()
    for m in [*_US_TOWN.finditer(text), *_US_TOWN_LINE.finditer(text)]:
        if text[m.start()] not in ",\n" and text[m.start() - 1 : m.start()].isalpha():
            continue
        first = m.group(1).split()[0]
        if first.lower() not in lex.clinical_lower and first not in lex.english_common:
            yield Hit(m.start(1), m.end(1), "ADDRESS", True)
    if "Co." in text:
        for m in _IRISH_COUNTY.finditer(text):
            yield Hit(m.start(), m.end(), "ADDRESS", True)
    if _FOREIGN_STREET_WORD.search(text) is not None:
        for m in _NUMBER_FOREIGN_STREET.finditer(text):
            yield Hit(m.start(), m.end(), "ADDRESS", True)
    if "Blk" in text:
        for m in _BLOCK.finditer(text):
            yield Hit(m.start(), m.end(), "ADDRESS", True)
    if "^" in text and "|" in text:
        for m in _HL7_ADDRESS.finditer(text):
            yield Hit(m.start(1), m.end(1), "ADDRESS", True)
    for m in keyed.get(_UNIT_NO, ()):
        between_commas = (
            text.startswith(",", m.end()) or text[m.end() : m.end() + 2] in (" ,", "\t,")
        ) and _COMMA_BEFORE.search(text, max(0, m.start() - 4), m.start()) is not None
        if between_commas:
            s = m.start()  # ", Unit 1912,": the whole unit
        elif _UNIT_THEN_STREET.match(text, m.end()):
            s = m.start(1)  # "Flat: 3F2, 17 …": the code alone
        else:
            continue
        yield Hit(s, m.end(), "ADDRESS", True)
        b = _BUILDING_AFTER_UNIT.match(text, m.end())
        if b:
            yield Hit(b.start(1), b.end(1), "ADDRESS", True)


# --- English people --------------------------------------------------------------------------
_KIN_EN = (
    r"dad|mum|mom|mother|father|husband|wife|son|daughter|brother|sister|grandma|grandpa|"
    r"grandmother|grandfather|aunt|uncle|partner|niece|nephew"
)
# Voice transcripts are in lower case: "this is mary ellen doyle", "my dad frank doyle",
# "Pt jose luis alvarado, 52M". Every word must be a listed name (or, after a patient
# label with an age after it, not a dictionary word).
_INTRO_WORDS = ["this is", "my name is", "it's", "i'm"] + [
    f"{who} {kin}" for who in ("my", "his", "her", "our") for kin in _KIN_EN.split("|")
]
_LOW_INTRO = re.compile(
    rf"(?:{trie_pattern(_INTRO_WORDS)})[ \t]+"
    r"([a-z]{2,15}(?:[ \t][a-z]{2,15}){1,2})"
)
_LOW_PATIENT = re.compile(
    r"(?:Pt|Patient|pt|patient)[ \t:]+([a-z]{2,15}(?:[ \t][a-z]{2,15}){1,3}),[ \t]*\d{1,3}[ \t]*(?:[MF]\b|y|yo)"  # noqa: E501
)
# "Handed over by Nia to Olu", "Hi Sue,", "Yours faithfully, Martin Roe" on one line,
# "Member: Roe, Ann R.", "— Roe, Ann P (MRN …", "1. Ann Roe, G4827X, DOB".
_BY_TO = re.compile(
    rf"(?:by|from)[ \t]+([{UP}][{LO}]{{1,14}})[ \t]+to[ \t]+([{UP}][{LO}]{{1,14}})\b"
)
_GREETING = re.compile(
    rf"(?:Hi|Hello|Hey|Dear|Morning|Good morning|Good afternoon)[ \t]+"
    rf"([{UP}][{LO}]{{1,14}})(?=[ \t]*[,!])"
)
_SIGNOFF_LINE = re.compile(
    r"(?:Yours (?:sincerely|faithfully|truly)|Kind regards|Best regards|Warm regards|Regards|"
    r"Best wishes|Many thanks|With thanks),[ \t]+(?:(?:Dr|Mr|Mrs|Ms|Prof)\.?[ \t]+)?"
    rf"([{UP}][{LO}]+(?:[ \t][{UP}][\w'’\-]+){{1,2}})"
)
_MEMBER_WORDS = (
    "Member", "Subscriber", "Insured", "Policyholder", "Policy", "Beneficiary", "Claimant",
    "Guarantor", "Enrollee", "Donor", "Recipient", "Cardholder",
)  # fmt: skip
_MEMBER = re.compile(
    r"(?:Member|Subscriber|Insured|Policyholder|Policy holder|Beneficiary|Claimant|Guarantor|"
    r"Enrollee|Donor|Recipient|Cardholder)(?:[ \t]name)?[ \t]*:[ \t]*"
    rf"([{UP}][{LO}]+(?:-[{UP}][{LO}]+)?,[ \t]*[{UP}][{LO}]+(?:[ \t][A-Z]\.?)?"
    rf"|[{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+){{1,2}})"
)
_ID_LABEL = re.compile(r"(?:MRN|DOB|NHS|Hosp|UR|CHI|chart|D\.O\.B)(?![A-Za-z])")
_SURNAME_GIVEN_ID = re.compile(
    rf"([{UP}](?<![\w'][{UP}])[{LO}]+(?:-[{UP}][{LO}]+)?,[ \t]*[{UP}][{LO}]+(?:[ \t][A-Z]\.?)?)"
    r"(?=[ \t]*[(,]?[ \t]*(?:MRN|DOB|NHS|Hosp|UR|CHI|chart|D\.O\.B)\b)"
)
# (from the line break before the number: a literal start)
_LIST_NAME_ID = re.compile(
    rf"\n[ \t]*\d\d?[.)][ \t]+([{UP}][{LO}]+(?:[ \t](?:Mc|Mac|O')?[{UP}][\w'’\-]+){{1,2}}),[ \t]*"
    r"(?=[A-Z0-9\-]*\d[A-Z0-9\-]*[ \t]*[,;]|(?:DOB|MRN|NHS)\b|\d{1,3}[ \t]*[,;(])"
)
# A title before a surname in capitals and given names ("Dr. WONG Ka Lok") or before an
# initial alone ("Mrs H's").
_TITLE_CAPS_GIVEN = re.compile(
    rf"(?:Dr|Mr|Mrs|Ms|Prof|Miss)\.?[ \t]+([A-Z]{{2,}}(?:[ \t][{UP}][{LO}]+){{1,2}})(?![\w])"
)
_TITLE_INITIAL = re.compile(r"(?:Dr|Mr|Mrs|Ms|Miss)\.?[ \t]+([A-Z])(?=['’]s\b|[ \t]*[,;)])")


def _name_like(word: str) -> bool:
    lex = lexicon()
    return word in lex.names_en or not dictionary_word(word)


# The words each scan above starts with: one prefix-tree scan finds them all, and each
# pattern is then tried only where one of its words stands (one pass, not eight).
def _keyed() -> tuple[re.Pattern[str], dict[str, list[re.Pattern[str]]]]:
    global _KEYED_SCAN
    if _KEYED_SCAN is None:
        keyed: dict[str, list[re.Pattern[str]]] = {}
        for pattern, keys in (
            (_LOW_PATIENT, ("Pt", "Patient", "pt", "patient")),
            (_BY_TO, ("by", "from")),
            (_GREETING, ("Hi", "Hello", "Hey", "Dear", "Morning", "Good")),
            (_SIGNOFF_LINE, ("Yours", "Kind", "Best", "Warm", "Regards", "Many", "With")),
            (_MEMBER, _MEMBER_WORDS),
            (_TITLE_CAPS_GIVEN, ("Dr", "Mr", "Mrs", "Ms", "Prof", "Miss")),
            (_TITLE_INITIAL, ("Dr", "Mr", "Mrs", "Ms", "Miss")),
            (_BED_NAME, ("Bed", "bed", "床")),
            (_SCHEME_ID, _SCHEME_WORDS),
            (_UNIT_NO, _UNIT_WORDS),
        ):
            for k in keys:
                keyed.setdefault(k, []).append(pattern)
        _KEYED_SCAN = (re.compile(trie_pattern(keyed)), keyed)
    return _KEYED_SCAN


_KEYED_SCAN: tuple[re.Pattern[str], dict[str, list[re.Pattern[str]]]] | None = None


def keyed_matches(text: str) -> dict[re.Pattern[str], list[re.Match[str]]]:
    """The matches of the keyed patterns, each tried where one of its words starts."""
    scan, keyed = _keyed()
    out: dict[re.Pattern[str], list[re.Match[str]]] = {}
    for k in scan.finditer(text):
        if k.group().isascii() and text[k.start() - 1 : k.start()].isalpha():
            continue  # inside a word
        for pattern in keyed[k.group()]:
            m = pattern.match(text, k.start())
            if m is not None:
                out.setdefault(pattern, []).append(m)
    return out


def en_people(
    text: str, low: str, keyed: dict[re.Pattern[str], list[re.Match[str]]]
) -> Iterator[Hit]:
    lex = lexicon()
    intro = [*_LOW_INTRO.finditer(low), *keyed.get(_LOW_PATIENT, ())]
    for m in intro:
        p = m.re
        words = m.group(1).split()
        while p is _LOW_INTRO and len(words) > 2 and words[-1].title() not in lex.names_en:
            words = words[:-1]  # "my dad frank doyle his date…": the name stops
        listed = [w.title() in lex.names_en for w in words]
        unknown_ok = p is _LOW_PATIENT and not any(dictionary_word(w) for w in words[1:])
        if all(listed) or (listed[0] and unknown_ok):
            yield Hit(m.start(1), m.start(1) + len(" ".join(words)), "NAME", True)
    for m in keyed.get(_BY_TO, ()):
        if _name_like(m.group(1)) and _name_like(m.group(2)):
            yield Hit(m.start(1), m.end(1), "NAME", True)
            yield Hit(m.start(2), m.end(2), "NAME", True)
    for m in keyed.get(_GREETING, ()):
        if text[text.rfind("\n", 0, m.start()) + 1 : m.start()].strip():
            continue  # a greeting opens its line
        if _name_like(m.group(1)):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    found = [*keyed.get(_SIGNOFF_LINE, ()), *keyed.get(_MEMBER, ()), *_LIST_NAME_ID.finditer(text)]
    found += in_windows(_SURNAME_GIVEN_ID, text, windows(_ID_LABEL, text, 60, 0))
    for m in found:
        first = m.group(1).split()[0].rstrip(",")
        if first in lex.english_common and first not in lex.names_en:
            continue
        if m.re is _SIGNOFF_LINE and not _name_like(first):
            continue  # "Yours sincerely, Outpatient Booking Office"
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in keyed.get(_TITLE_CAPS_GIVEN, ()):
        if not dictionary_word(m.group(1).split()[0].lower()):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in keyed.get(_TITLE_INITIAL, ()):
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in keyed.get(_BED_NAME, ()):
        if _name_like(m.group(1).split()[0]):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in keyed.get(_SCHEME_ID, ()):
        yield Hit(m.start(1), m.end(1), "ID_NUMBER", True)
    if '"' in text:
        for m in _JSON_NAME.finditer(text):
            for v in _JSON_STRING.finditer(text, m.start(1), m.end(1)):
                yield Hit(v.start(1), v.end(1), "NAME", True)


# --- English numbers, ages and paths ---------------------------------------------------------
# A short secret or internal number after its word: "Key safe code 4471", "PIN 772190",
# "(pager 4417)", "transit 00142", "Our ref: ABC/ONC/55120", "Lab ref C25.11284".
# (scanned in the lower-cased text: each branch starts with its literal)
_CODE_WORDS = (
    "key safe", "keysafe", "key safe code", "door code", "access code", "gate code", "pin",
    "passcode", "transit", "routing", "sort code", "pager", "bleep", "beeper", "ext", "ext.",
    "extension",
)  # fmt: skip
_CODE_WORD = re.compile(
    rf"(?:{trie_pattern(_CODE_WORDS)})"
    r"[ \t]*(?:no\.?|number|#)?[ \t]*[:#]?[ \t]*(\d[\d\-]{2,11})(?![\w])"
)
_REF_KEY = re.compile(r"ref(?:erence)?(?:[ \t]no\.?)?[ \t]*[:#.]?[ \t]*")
_REF_VALUE = re.compile(r"[A-Z0-9][A-Z0-9]*(?:[/.\-][A-Z0-9]+)+(?![\w])|[A-Z]{1,4}\d{4,}(?![\w])")
# An age over 89 said in a sentence: "she is 93", "he's ninety-one" (lower-cased text).
_AGE_SAID = re.compile(
    r"(?:he|she|they|patient|pt)(?:'s|’s|[ \t]+is|[ \t]+was|[ \t]+turned|[ \t]+turns|[ \t]+aged)"
    r"[ \t]+((?:9\d|1[01]\d)(?![\d.,]?\d)(?![ \t]*(?:%|kg|mg|min|mmhg|bpm|cm|mm|day|week|/))"
    r"|ninety(?:[ \t\-](?:one|two|three|four|five|six|seven|eight|nine))?(?![a-z])"
    r"|one hundred(?![a-z]))"
)
# A national health or insurance number after its scheme's name: "Medicare 2953 71846 1",
# "RAMQ ABCD 1234 5678", "OHIP 1234-567-890-XY".
_SCHEME_WORDS = (
    "Medicare", "Medicaid", "RAMQ", "OHIP", "PPSN", "PPS", "IHI", "CHI", "HKID", "DVA", "MBI", "SIN",  # noqa: E501
)  # fmt: skip
_SCHEME_ID = re.compile(
    r"(?:Medicare|Medicaid|RAMQ|OHIP|PPSN|PPS|IHI|CHI|HKID|DVA|MBI|SIN)(?:[ \t]+(?:No\.?|number|#))?"  # noqa: E501
    r"[ \t]*[:#]?[ \t]*([A-Z]{0,4}[ \t]?\d[\d \t\-]{4,14}\d(?:[ \t\-]?[A-Z]{1,2})?)(?![\w])"
)
_ORDINALS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
    "thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|"
    "twenty[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|thirtieth|"
    "thirty[- ]first"
)
_MONTH_NAMES = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
# A date in words: "the fifth of January, 2024", "twelfth of March".
_WORD_DATE = re.compile(
    rf"(?:{_ORDINALS})[ \t]+of[ \t]+(?:{_MONTH_NAMES.lower()})(?:,?[ \t]+\d{{4}})?(?![\w])"
)
# A patient in a bed list by a Latin name: "Bed 12 Hamid R.", "床 05 Pak伯".
_BED_NAME = re.compile(
    rf"(?:Bed|bed|床)[ \t床]*\d{{1,3}}[ \t]+([{UP}][{LO}]{{1,15}}(?:[ \t](?:[{UP}][{LO}]+|[A-Z]\.))?)"  # noqa: E501
)
_UNC_PATH = re.compile(r"\\\\[A-Za-z0-9][\w.\-]*(?:\\[^\s\\,;]+)+")


def en_numbers(text: str, low: str) -> Iterator[Hit]:
    for m in _CODE_WORD.finditer(low):
        if low[m.start() - 1 : m.start()].isalpha():
            continue
        word = m.group()
        kind = "PHONE" if any(k in word for k in ("pager", "bleep", "beeper", "ext")) else "OTHER"
        yield Hit(m.start(1), m.end(1), kind, True)
    for k in _REF_KEY.finditer(low):
        if low[k.start() - 1 : k.start()].isalpha():
            continue
        v = _REF_VALUE.match(text, k.end())
        if v and sum(c.isdigit() for c in v.group()) >= 4:
            yield Hit(v.start(), v.end(), "MRN", True)
    for m in _AGE_SAID.finditer(low):
        if not low[m.start() - 1 : m.start()].isalpha():
            yield Hit(m.start(1), m.end(1), "AGE", True)
    if " of " in low:
        for m in _WORD_DATE.finditer(low):  # lower-cased: "The Fifth of May" too
            if low[m.start() - 1 : m.start()].isalpha():
                continue
            s = m.start() - 4 if low[max(0, m.start() - 4) : m.start()] == "the " else m.start()
            yield Hit(s, m.end(), "DATE", True)
    if "\\\\" in text:
        for m in _UNC_PATH.finditer(text):
            yield Hit(m.start(), m.end(), "URL", True)


# --- Chinese ---------------------------------------------------------------------------------
# A person after a labelled colon, whatever the surname: "姓名：拉巴次仁", "科主任：方",
# "受理：柯", "翻译/陪同：次仁卓玛" (a Tibetan, Mongolian or Uyghur name has no surname).
_ZH_LABEL_END = re.compile(
    rf"(?:姓名|名字|科主任|主任|受理人?|经办人?|經辦人?|翻译|翻譯|陪同|代答|审批|審批|批准人?|"
    rf"术者|術者|主刀|一助|二助|助手|器械护士|巡回护士|"
    rf"[{HAN}]{{0,3}}(?:医生|醫生|医师|醫師|护士|護士|药师|藥師|技师|物理师|主任|人|者|员|員))"
    rf"(?:[ \t]*[A-Za-z]{{2,6}})?[ \t]*$"
)
# (the colon found first, its label then read backwards: a fast scan)
_ZH_COLON_VALUE = re.compile(
    rf"[:：|][ \t]*([{HAN}](?:[{HAN}·]{{0,9}}[{HAN}])?)(?=[ \t\u3000]|[\n，,。；;、/（(|）)]|\d|$)"
)
_ZH_NOT_NAME_START = set("不无無未已详詳见見同本该該此其另男女年月日第各全")
_ZH_PERSON_NOT = re.compile(
    rf"[{HAN}]*(?:科|室|院|区|區|部|中心|病房|诊断|診斷|治疗|治療|检查|檢查|结果|結果|日期|时间|時間|"
    rf"电话|電話|号|號|名|性|型|期|次|级|級|片|药|藥|量|班|处|處|组|組)"
)


def _zh_person_ok(value: str) -> bool:
    lex = lexicon()
    if value.startswith(_ZH_NOT_PERSON_PREFIX):
        return False  # 患者孙女梁思琪: the kin word's own rule takes the name after it
    if value[0] in _ZH_NOT_NAME_START or _ZH_PERSON_NOT.fullmatch(value):
        return False
    if value in lex.clinical or value in lex.titles_zh or lex.clinical_cjk_re.search(value):
        return False  # 利多卡因局麻: a drug, not a person
    if len(value) == 1 or "·" in value:
        return True
    return not common_word(value) and not _common_words_only(value)


def _common_words_only(value: str) -> bool:
    """A phrase of frequent words (系统自动生成, 详见病历), not a name."""
    if len(value) < 4:
        return False
    import jieba

    quiet_jieba()
    parts = jieba.lcut(value)
    return len(parts) > 1 and all(len(p) > 1 and common_word(p) for p in parts)


_ZH_NOT_PERSON_PREFIX = (
    "患者", "病人", "患儿", "本人", "其子", "其女", "其妻", "其夫", "孙女", "孙子", "侄子", "侄女",
    "女儿", "儿子", "长子", "次子", "长女", "次女", "丈夫", "妻子", "家属", "母亲", "父亲", "外甥",
    "邻居", "鄰居", "同事", "同学", "哥哥", "姐姐", "弟弟", "妹妹", "配偶", "老伴", "爱人", "儿媳", "女婿", "孙女婿", "朋友",  # noqa: E501
)  # fmt: skip
_ZH_TITLE_END = re.compile(
    r"(?:副主任医师|主任医师|主治医师|住院医师|护士长|主任|教授|医师|医生|醫師|醫生|护士|護士|老师|先生|女士|药师|师傅|師傅)$"
)


def _trim_title(text: str, s: int, e: int) -> int:
    """The end of a name before a title glued to it: 司马青山主任医师 → 司马青山."""
    t = _ZH_TITLE_END.search(text, s, e)
    return t.start() if t else e


# A staff role glued to a name before a colon or a stop: "值班护士季雨：", "药师林芳，".
_ZH_ROLE_GLUED = re.compile(
    rf"(?:护士|護士|医生|醫生|医师|醫師|药师|藥師|技师|社工)([{HAN}]{{2,3}})(?=[：:，,。；;\s（(]|$)"
)
# Names by kin word (女儿文文, 我妈刘秀梅), by formal name (大名邵子墨), before an ethnic
# group in brackets (巴特尔（蒙古族，男）), a surname alone on a signature line.
_ZH_KIN_MORE = re.compile(
    rf"(?:女儿|儿子|我妈|我爸|我妈妈|我爸爸|我婆婆|我公公|我老公|我老婆|我爱人|外孙女?|孙女|孙子|奶奶|爷爷|外婆|外公)"
    rf"([{HAN}]{{2,3}}?)(?=[，,。；;：:、（()）\s\d在说来去给从和与的是陪送带也都就还让把跟帮等吃已要]|$)"
)
_ZH_FORMAL_NAME = re.compile(
    rf"(?:大名|本名|学名|學名|真名|原名|全名|官名)[：:]?([{HAN}]{{2,4}}?)(?=[），,。；;\s)]|$)"
)
_ZH_ETHNIC_OPEN = re.compile(rf"[（(][{HAN}]{{1,4}}族[，,、]")
_ZH_RUN_BEFORE = re.compile(rf"(?<![{HAN}])[{HAN}]{{2,8}}$")
_ZH_SIGNATURE_LINE = re.compile(rf"\n[ \t]*([{HAN}])[ \t]*(?=\n|$)")
# A staff member's internal number in brackets: 容医生（6521）.
_ZH_STAFF_EXT = re.compile(r"(?:医生|醫生|护士|護士|医师|醫師|主任|药师|老师)[（(](\d{3,5})[）)]")
# Employers and schools by their kind word: 西门子（中国）有限公司, 浙江大学医学院,
# 麓山国际实验学校; the name starts after a function word (去, 在, 交, 于…).
_ZH_ORG = re.compile(
    rf"[{HAN}A-Za-z]{{2,14}}?(?:[（(](?:中国|中國|香港|上海|北京|亚太|亞太)[）)][{HAN}]{{0,4}})?"
    rf"(?:有限公司|有限責任公司|股份公司|集团|集團|公司|大学|大學|学校|學校|中学|中學|小学|小學|"
    rf"幼儿园|幼兒園|银行|銀行|研究所|事务所|律师所|出版社|合作社|协会|協會|教会|教會|工厂|工廠|[^医醫]厂|商会)"
    rf"(?:医学院|醫學院|附属中学|附中|分公司|分行|支行)?"
    rf"(?![{HAN}]{{0,10}}(?:医院|醫院|卫生院|附属|附屬|中心))"
)
_ZH_ORG_CUT = "在于於去交到向从從给給由为為至和与與及的是已把被请請往赴读讀任"
_ZH_ORG_GATE = re.compile(
    r"公司|集[团團]|大[学學]|[学學][院校]|[中小][学學]|幼[儿兒]园|[银銀]行|所|社|[协協]会|[教商]会|[厂廠]"
)


def _zh_org_start(text: str, s: int, e: int) -> int:
    cut = max(text.rfind(c, s, e - 2) for c in _ZH_ORG_CUT)
    s = cut + 1 if cut >= 0 else s
    while s < e and (text[s].isdigit() or text[s] in "年月日号號"):
        s += 1
    return s


# A city and its district: 银川市兴庆区, 苏州市姑苏区 (the hospital after it is kept).
_ZH_CITY_DISTRICT = re.compile(
    rf"(?:[{HAN}]{{2,4}}?(?:省|自治区))?[{HAN}]{{2,3}}?市[{HAN}]{{1,4}}?(?:区|區|县|縣|旗)(?![{HAN}]?(?:域|间|别|分|长|委))"
)
# A quarter of a year (2024年第二季度, 2024年Q3) is a date; an age in a table cell
# (年龄|93|); a number read aloud in Chinese digits after a record label (病案号八零零七三一);
# a compound surname with a given name standing alone (　司马文静　).
_ZH_QUARTER = re.compile(r"\d{4}年(?:第[一二三四1-4]季度|[Qq][1-4])")
_ZH_AGE_CELL = re.compile(
    r"年[龄齡][ \t]*[|｜:：][ \t]*(9\d|1[01]\d)(?:[ \t]*[岁歲])?(?=[ \t]*[|｜\n，,]|$)"
)
_ZH_SPOKEN_NUMBER = re.compile(
    r"(?:号|號|号码|號碼|编号|編號)[是为為：:]?[ \t]*([零〇一二三四五六七八九幺两](?:[ \t]?[零〇一二三四五六七八九幺两]){4,})"  # noqa: E501
)
_ZH_LATIN_ELDER = re.compile(rf"([{UP}][{LO}]{{1,12}})(?=[伯婆叔姨嫂](?![{HAN}]))")
_ZH_CITY = re.compile("市")
# A patient of four to six characters after a bed number (20床 德吉卓玛: a Tibetan or
# Mongolian name has no surname); an elder's age after the form of address (柴大爷 97).
_ZH_BED_LONG_NAME = re.compile(rf"床[ \t]+([{HAN}]{{4,6}})(?=[ \t])")
_ZH_ELDER_AGE = re.compile(
    r"(?:大爷|大妈|奶奶|爷爷|阿婆|阿伯|婆婆|伯伯|老太|老爷子)[ \t]*[（(]?(9\d|1[01]\d)(?![\d.])(?:岁|歲)?[）)]?"  # noqa: E501
)
_ZH_PLACE_CUT = "在于於去交到向从從已住至赴居迁遷搬"


@lru_cache(maxsize=1)
def _compound_name() -> re.Pattern[str]:
    """A compound surname (司马, 诸葛) and one or two characters, with no Chinese after."""
    surnames = sorted(lexicon().compound_surnames_zh, key=len, reverse=True)
    return re.compile(rf"(?:{'|'.join(surnames)})([{HAN}]{{1,2}})(?![{HAN}])")


_ZH_FORMS_OF_ADDRESS = frozenset(
    {
        "主治", "医生", "醫生", "医师", "醫師", "女士", "先生", "教授", "主任", "老师", "老師",
        "师傅", "師傅", "护士", "護士", "阿姨", "大夫", "太太", "小姐", "大爷", "大妈", "奶奶",
        "爷爷", "阿婆", "阿伯",
    }
)  # fmt: skip


def zh(text: str) -> Iterator[Hit]:
    for m in _ZH_COLON_VALUE.finditer(text):
        if _ZH_LABEL_END.search(text, max(0, m.start() - 10), m.start()) is None:
            continue
        s, e = m.start(1), _trim_title(text, m.start(1), m.end(1))
        if e > s and _zh_person_ok(text[s:e]):
            yield Hit(s, e, "NAME", True)
    for m in _ZH_ETHNIC_OPEN.finditer(text):
        run = _ZH_RUN_BEFORE.search(text, max(0, m.start() - 9), m.start())
        if run and _zh_person_ok(run.group()):
            yield Hit(run.start(), run.end(), "NAME", True)
    for p in (_ZH_ROLE_GLUED, _ZH_KIN_MORE, _ZH_FORMAL_NAME):
        for m in p.finditer(text):
            v = m.group(1)
            # a doubled name after a kin word (女儿文文) is a pet name even where it is a word
            if _zh_person_ok(v) or (p is _ZH_KIN_MORE and len(v) == 2 and v[0] == v[1]):
                yield Hit(m.start(1), m.end(1), "NAME", True)
    lex = lexicon()
    for m in _ZH_SIGNATURE_LINE.finditer(text):
        if m.group(1) in lex.surnames_zh:
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_STAFF_EXT.finditer(text):
        yield Hit(m.start(1), m.end(1), "PHONE", True)
    for m in _ZH_BED_LONG_NAME.finditer(text):
        if _zh_person_ok(m.group(1)):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_ELDER_AGE.finditer(text):
        yield Hit(m.start(1), m.end(1), "AGE", True)
    for m in _ZH_QUARTER.finditer(text):
        yield Hit(m.start(), m.end(), "DATE", True)
    for m in _ZH_AGE_CELL.finditer(text):
        yield Hit(m.start(1), m.end(1), "AGE", True)
    for m in _ZH_SPOKEN_NUMBER.finditer(text):
        yield Hit(m.start(1), m.end(1), "MRN", True)
    for m in _ZH_LATIN_ELDER.finditer(text):
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _compound_name().finditer(text):
        before = text[m.start() - 1 : m.start()]
        if (before and "\u4e00" <= before <= "\u9fff") or common_word(m.group()):
            continue
        rest = m.group(1)
        if rest in _ZH_FORMS_OF_ADDRESS:  # 欧阳主任, 司马老师: the surname alone
            yield Hit(m.start(), m.start(1), "NAME", True)
        elif rest[0] not in "氏":
            yield Hit(m.start(), m.end(), "NAME", True)
    org_spans = windows(_ZH_ORG_GATE, text, 18, 12)
    if org_spans:
        for m in in_windows(_ZH_ORG, text, org_spans):
            s = _zh_org_start(text, m.start(), m.end())
            value = text[s : m.end()]
            if m.end() - s >= 4 and value not in lex.clinical and not common_word(value):
                yield Hit(s, m.end(), "ORGANIZATION", True)
    city_spans = windows(_ZH_CITY, text, 12, 8)
    if city_spans:
        for m in in_windows(_ZH_CITY_DISTRICT, text, city_spans):
            s = m.start()
            cut = max(text.rfind(c, s, m.end() - 3) for c in _ZH_PLACE_CUT)
            if cut >= 0:
                s = cut + 1
            if m.end() - s >= 5:
                yield Hit(s, m.end(), "ADDRESS", True)


def detect(text: str, low: str) -> list[Hit]:
    keyed = keyed_matches(text)
    hits = [*en_organizations(text, low), *en_places(text, keyed), *en_people(text, low, keyed)]
    if _SCHOOL_GATE.search(text) is not None:
        hits += _foreign_schools(text)
    hits += en_numbers(text, low)
    if has_han(text):
        hits += zh(text)
    return hits
