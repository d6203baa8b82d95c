"""PII and secrets redaction for model outputs, logs and trace spans.

Why this design
---------------
* **No NER model.**  Presidio's default pipeline needs a spaCy model that has
  to be downloaded from a model hub, which the platform cannot do at run
  time.  Everything here is regular expressions plus *validation* by
  maintained libraries: ``phonenumbers`` (libphonenumber metadata) for phone
  numbers, ``python-stdnum`` for IBAN (ISO 13616 mod-97 + per-country BBAN
  format), Luhn (cards) and US SSN rules, and the standard library
  ``ipaddress`` for IPs.  Validation is what keeps precision acceptable for
  number-shaped entities; context words ("phone:", "call me on", "SSN") raise
  or lower scores where the shape alone is ambiguous.
* **Consequence:** names, organisations, places, street addresses and
  nationalities (PERSON, ORGANIZATION, GPE, STREET_ADDRESS, NRP) are *not*
  detected.  See ``docs/agent-runtime.md``, "Output: personal data and secrets".
* **Secrets** (API keys, AWS keys, JWTs, bearer tokens, private-key blocks,
  ``password=...``) use well-known token formats (as in gitleaks /
  detect-secrets) so that a leaked credential is removed from logs even when
  it appears outside a key=value pair.
* **Safe for logging filters / span processors:** detectors are pure
  functions over compiled regexes (thread-safe, no global mutable state),
  patterns avoid nested unbounded quantifiers (linear time), a failure in one
  detector never stops the others, and :func:`redact` never raises -- if the
  whole pass fails it returns a fully masked string (fail closed) rather than
  the original text.  ``Span`` never stores the matched text, so spans can be
  logged or exported without leaking the value.

Public API: :class:`Span`, :class:`PIIRedactor`, module-level :func:`find`
and :func:`redact` (default instance). Logs are redacted by the handler that
``shared.telemetry.setup`` installs, with this module's :func:`redact`.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from re import Pattern

import phonenumbers
from phonenumbers import NumberParseException
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.us import ssn as _ssn

__all__ = [
    "ALL_TYPES",
    "PII_TYPES",
    "SECRET_TYPES",
    "PIIRedactor",
    "Span",
    "find",
    "redact",
]

PII_TYPES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "US_DRIVER_LICENSE",
    "DOMAIN_NAME",
    "DATE_TIME",
    "AGE",
    "TITLE",
    "ZIP_CODE",
)
SECRET_TYPES: tuple[str, ...] = (
    "PRIVATE_KEY",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "API_KEY",
    "JWT",
    "BEARER_TOKEN",
    "PASSWORD",
    "SECRET",
)
ALL_TYPES: tuple[str, ...] = SECRET_TYPES + PII_TYPES

# Overlap resolution: higher score wins; ties go to the earlier type in this
# order (secrets first: a token that happens to look like a phone number must
# be removed as a secret; checksum-validated numbers before phone numbers,
# whose shape is the least specific).
_PRIORITY = {
    t: i
    for i, t in enumerate(
        (
            *SECRET_TYPES,
            "EMAIL_ADDRESS",
            "IBAN_CODE",
            "CREDIT_CARD",
            "US_SSN",
            "IP_ADDRESS",
            "US_DRIVER_LICENSE",
            "PHONE_NUMBER",
            "DOMAIN_NAME",
            "DATE_TIME",
            "ZIP_CODE",
            "AGE",
            "TITLE",
        )
    )
}


@dataclass(frozen=True, slots=True)
class Span:
    """A detected entity: ``text[start:end]`` is of ``type`` with confidence ``score``.

    The matched value is deliberately not stored (spans are safe to log)."""

    type: str
    start: int
    end: int
    score: float


def _r(p: str, flags: int = 0) -> Pattern[str]:
    return re.compile(p, flags)


_I = re.IGNORECASE

# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------
_PRIVATE_KEY = _r(
    r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]{0,20000}?-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,-]{0,20000})"  # noqa: E501 - a pattern reads best whole
)
_AWS_ACCESS = _r(
    r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}(?![A-Z0-9])"
)
_AWS_SECRET_CTX = _r(
    r"(?:aws_?secret_?(?:access_?)?key|secret_?access_?key|aws.{0,20}secret)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
    _I,
)
_API_KEYS: tuple[tuple[Pattern[str], float], ...] = (
    # OpenAI / Anthropic style (sk-..., sk-proj-..., sk-ant-api03-...)
    (_r(r"(?<![\w-])sk-(?:[A-Za-z0-9]+-){0,3}[A-Za-z0-9_\-]{20,}"), 0.95),
    (_r(r"(?<![\w])(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}"), 0.99),
    (_r(r"(?<![\w])github_pat_[A-Za-z0-9_]{22,255}"), 0.99),
    (_r(r"(?<![\w])glpat-[A-Za-z0-9_\-]{20,}"), 0.99),
    (_r(r"(?<![\w])xox[abposr]-[A-Za-z0-9\-]{10,}"), 0.99),
    (_r(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}"), 0.99),
    (_r(r"(?<![\w])AIza[0-9A-Za-z_\-]{35}"), 0.97),
    (_r(r"(?<![\w])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), 0.99),
    (_r(r"(?<![\w])SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"), 0.97),
    (_r(r"(?<![\w])hf_[A-Za-z0-9]{30,}"), 0.97),
    (_r(r"(?<![\w])npm_[A-Za-z0-9]{36}"), 0.97),
)
_JWT = _r(r"(?<![\w-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{0,}")
_BEARER = _r(r"\b(?:bearer|token)\s+([A-Za-z0-9\-._~+/]{16,}=*)", _I)
_BASIC_AUTH = _r(r"\bauthorization\s*[:=]\s*[\"']?basic\s+([A-Za-z0-9+/]{8,}=*)", _I)
_URL_CREDS = _r(r"\b[a-z][a-z0-9+.\-]{1,15}://[^\s:/@\"']{1,64}:([^\s@/\"']{1,128})@", _I)
# key = value / "key": "value" / key: value.  Value group stops at whitespace,
# quote, comma, semicolon, ampersand (query strings) or closing brackets.
_KV_SECRET = _r(
    r"(?<![A-Za-z0-9_.\-])[\"']?((?:[A-Za-z0-9]++[_.\-]){0,6}+(?:password|passwd|passwort|pwd|pass|passphrase|secret|"
    r"api[_\-]?key|apikey|access[_\-]?key|secret[_\-]?key|private[_\-]?key|client[_\-]?secret|"
    r"access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|id[_\-]?token|session[_\-]?token|token|"
    r"credentials?|auth)(?:[_.\-][A-Za-z0-9]++){0,6}+)[\"']?"
    r"\s*(?:=|:|=>|\bis\b|\bwas\b)\s*"
    r"(?:\"([^\"\n]{1,256})\"|'([^'\n]{1,256})'|([^\s\"',;)}\]]{1,256}))",
    _I,
)
_PASSWORD_KEYS = re.compile(r"pass|pwd|passwort", _I)
# Values that are obviously not secrets (avoid redacting "password: required").
_KV_STOP_VALUES = frozenset(
    [
        "null",
        "none",
        "true",
        "false",
        "required",
        "optional",
        "redacted",
        "masked",
        "hidden",
        "changeme?",
        "***",
        "********",
        "yes",
        "no",
        "empty",
        "string",
        "int",
        "str",
        "bool",
    ]
)


# --------------------------------------------------------------------------
# PII
# --------------------------------------------------------------------------
_EMAIL = _r(
    r"(?<![\w.+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
)
_IBAN_CAND = _r(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]){11,32}", 0)
_IBAN_SHAPE = _r(
    r"[A-Za-z]{2}\d{2}(?:[A-Za-z0-9]{11,30}(?![A-Za-z0-9])|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,3})?(?![A-Za-z0-9]))"  # noqa: E501 - a pattern reads best whole
)
_IBAN_CTX = _r(r"\b(?:iban|bic|swift|account|konto|bank|wire|transfer|überweisung)\b", _I)
_CARD_CAND = _r(r"(?<![\w\-.])\d(?:[ \-]?\d){11,18}(?![\w\-]|\.\d)")
_CARD_CTX = _r(
    r"\b(?:card|credit|debit|visa|master\s?card|amex|american\s+express|discover|jcb|diners|maestro|cc|cvv|"
    r"kreditkarte|karte|pan)\b",
    _I,
)
_CARD_NEG_CTX = _r(
    r"\b(?:order|invoice|ticket|tracking|customer|client|account|acct|id|ref|reference|build|case|isbn|serial|sku|"
    r"bestellung|rechnung|kunden(?:nummer)?)\b\W{0,4}(?:number|no\.?|nr\.?|#|id)?\W{0,3}$",
    _I,
)
_CARD_GROUPING = _r(
    r"^(?:\d{4}([ \-])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([ \-])\d{6}\2\d{4,5}|\d{12,19})$"
)
_IPV4 = _r(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?:/\d{1,2})?(?![\w]|\.\d)"
)
_IPV6 = _r(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?::|[0-9A-Fa-f]{1,4})(?:%\w+)?(?![\w:])")
_VERSION_CTX = _r(r"(?:\bv(?:ersion)?|\bver|\brelease|\bbuild)\s*[:=]?\s*$", _I)
_SSN = _r(r"(?<![\w\-])(\d{3})([ \-])(\d{2})\2(\d{4})(?![\w\-])")
_SSN_BARE = _r(r"(?<![\w\-])\d{9}(?![\w\-])")
_SSN_CTX = _r(r"\b(?:ssn|social\s+security|sozialversicherung|tax\s*id|tin)\b", _I)
_DL = _r(
    r"\bdriver'?s?\s+licen[cs]e(?:\s+(?:number|no\.?|num|#|id))?\s*(?:is|:|#|=)?\s*([A-Z0-9][A-Z0-9\-]{4,19})(?![\w\-])",
    _I,
)
_URL = _r(r"\b(?:https?|ftp)://[^\s<>\"'`{}|\\^]{2,2048}", _I)
_WWW = _r(r"(?<![\w@./])www\.[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})+(?:/[^\s<>\"']*)?", _I)

# Possessive quantifiers (Python >= 3.11) keep this linear: digit groups are
# never re-split on backtracking.  The "not followed by" check is done in code.
_PHONE_CAND = _r(
    r"(?<![\w+/.@\-])"
    r"(?:(?:\+|00)\d{1,3}+[ .\-]?|\((?:\+|00)\d{1,3}+\)[ .\-]?)?+"
    r"(?:\(0\)[ .\-]?)?+"
    r"(?:\(\d{1,5}+\)(?:[ .\-/]|\s?/\s?)?)?+"
    r"\d{1,15}+(?:(?:[ .\-]|\s?/\s?|-/)\(?\d{1,15}+\)?){0,7}+"
    r"(?:\s?(?:x|ext\.?|extension|#)\s?\d{1,6}+)?+"
)
_PHONE_BAD_NEXT = _r(r"[\w@]|[.\-/]\d")
_PHONE_EXT = _r(r"\s?(?:x|ext\.?|extension|#)\s?\d{1,6}$", _I)
_PHONE_CTX_BEFORE = _r(
    r"(?:\b(?:phone|tel|telephone|mobile|mob|cell|cellphone|fax|desk|office|landline|hotline|whatsapp|sms|"
    r"call|calling|called|ring|dial|text|reach|contact|number|no|nr|answering|messages?|registered|"
    r"telefon|handy|rufnummer|anrufen|ruf)\b\W{0,6}(?:\w+\W{1,3}){0,4})$",
    _I,
)
_PHONE_CTX_AFTER = _r(r"^\W{0,3}(?:office|fax|mobile|cell|home|work|desk|tel|phone|handy)\b", _I)
_PHONE_NEG_CTX = _r(
    r"(?:\b(?:order|invoice|ticket|id|ref|reference|tracking|account|acct|zip|postal|plz|ssn|social\s+security|"
    r"card|cc|iban|isbn|serial|version|build|model|case|po|sku|license|licence|passport|customer)\b\W{0,4}"
    r"(?:number|no\.?|nr\.?|#)?(?:\s*(?:is|was|:))?\W{0,3}"
    r"|\b(?:address|apt|apartment|suite|unit|flat|located\s+at|is\s+at|moved\s+to|send\s+(?:it|a\s+new\s+one)\s+to)\b\W{0,4})$",
    _I,
)
# A number directly followed by a street name is a house number, not a phone.
_STREET_AFTER = _r(
    r"^\s+(?:[^\W\d_][\w'.\-]*\s+){1,3}(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|close|place|pl|way|"
    r"court|ct|boulevard|blvd|square|sq|parkway|pkwy|terrace|crescent|highway|hwy|row|alley|circle|trail|"
    r"straße|strasse|str|weg|gasse|platz|allee|rue|via|calle|avenida|rua|vej|gatan|katu|tér|utca|u)\b\.?",
    _I,
)
_SSN_SHAPE = _r(r"^\d{3}-\d{2}-\d{4}$")
_DATE_LIKE = _r(
    r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{1,2}/\d{1,2}/\d{2,4})$"
)
_PHONE_REGIONS: tuple[str, ...] = (
    "US",
    "GB",
    "DE",
    "FR",
    "IT",
    "ES",
    "NL",
    "BE",
    "CH",
    "AT",
    "SE",
    "DK",
    "NO",
    "FI",
    "PL",
    "PT",
    "IE",
    "CZ",
    "HU",
    "GR",
    "AU",
    "CA",
    "IN",
    "BR",
    "MX",
    "IL",
    "RU",
    "CN",
    "JP",
)

_MONTHS = (
    r"(?:jan(?:uary|uar)?|feb(?:ruary|ruar)?|mar(?:ch)?|märz|apr(?:il)?|may|mai|jun(?:e|i)?|jul(?:y|i)?|"
    r"aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|okt(?:ober)?|nov(?:ember)?|dec(?:ember)?|dez(?:ember)?)"
)
_DATES: tuple[tuple[Pattern[str], float], ...] = (
    (
        _r(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+\-]\d{2}:?\d{2})?)?(?!\d)"  # noqa: E501 - a pattern reads best whole
        ),
        0.9,
    ),
    (
        _r(
            r"(?<![\d./\-])(?:0?[1-9]|[12]\d|3[01])[/.\-](?:0?[1-9]|[12]\d|3[01])[/.\-](?:1[89]\d\d|20\d\d|\d\d)(?![\d/\-]|\.\d)"
        ),
        0.8,
    ),
    (
        _r(
            rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\.?\s+{_MONTHS}\.?,?\s+\d{{4}}|{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|{_MONTHS}\.?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\.?\s+{_MONTHS}\b|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)\b)",
            _I,
        ),
        0.8,
    ),
    (
        _r(
            r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag)\b",
            _I,
        ),
        0.6,
    ),
    (_r(r"\b(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?\s?(?:am|pm)?(?![\d:])", _I), 0.55),
)
# bare years only after a temporal preposition; group 1 is the year
_YEAR_CTX = _r(
    r"\b(?:in|during|since|of|from|until|till|by|year|jahr|seit|im|bis|a|an)\s((?:1[89]|20)\d\d)(?!\d|[\-/:.]\d)",
    _I,
)
_AGES: tuple[Pattern[str], ...] = (
    _r(r"\b(\d{1,3})(?:\s?-\s?|\s)(?:years?|yrs?)(?:\s?-\s?|\s)old\b", _I),
    _r(r"\b(\d{1,3})\s?(?:y/o|yo|y\.o\.)(?!\w)", _I),
    _r(
        r"\b(?:turn(?:ed|s|ing)?|aged?|age of|at the age of|alter von)\s+(\d{1,3})\b(?!\s*(?:%|percent|minutes|hours|days|euro|dollars|\$))",  # noqa: E501 - a pattern reads best whole
        _I,
    ),
    _r(r"\b(\d{1,3})\s+jahre\s+alt\b", _I),
)
_TITLE = _r(r"(?<![\w.])(?:Mr|Mrs|Ms|Mx|Dr|Prof|Sr|Sra|Herr|Frau)\.?(?=\s+[A-ZÀ-ÖØ-Þ])")
_ZIP = _r(
    r"\b(?:zip(?:\s*code)?|postal\s*code|post\s*code|postcode|plz)\b\s*(?:is|:|#|=)?\s*([A-Z0-9](?:[A-Z0-9 \-]{0,8}[A-Z0-9])?)(?![\w])",  # noqa: E501 - a pattern reads best whole
    _I,
)


def _has_ctx(
    pattern: Pattern[str], text: str, start: int, end: int, before: int = 40, after: int = 20
) -> bool:
    return pattern.search(text[max(0, start - before) : min(len(text), end + after)]) is not None


_CARD_PREFIXES: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    # (brand, regex on the leading digits, valid lengths)
    ("amex", r"3[47]", (15,)),
    ("visa", r"4", (13, 16, 19)),
    ("mastercard", r"5[1-5]|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)", (16,)),
    ("discover", r"6011|65|64[4-9]|622", (16, 19)),
    ("jcb", r"35(?:2[89]|[3-8]\d)|2131|1800", (15, 16, 19)),
    ("diners", r"30[0-5]|36|38|39|3095", (14, 16, 19)),
    ("maestro", r"5[06-9]|6\d", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("unionpay", r"62", (16, 17, 18, 19)),
)
_CARD_PREFIX_RES = tuple((b, re.compile(p), lens) for b, p, lens in _CARD_PREFIXES)


def _card_brand_ok(digits: str) -> bool:
    return any(p.match(digits) and len(digits) in lens for _, p, lens in _CARD_PREFIX_RES)


# --------------------------------------------------------------------------
# Detectors: each yields Spans; none raises on well-formed str input.
# --------------------------------------------------------------------------
Detector = Callable[[str], Iterator[Span]]


def _private_keys(text: str) -> Iterator[Span]:
    if "PRIVATE KEY" not in text:
        return
    for m in _PRIVATE_KEY.finditer(text):
        yield Span("PRIVATE_KEY", m.start(), m.end(), 1.0)


def _aws(text: str) -> Iterator[Span]:
    for m in _AWS_ACCESS.finditer(text):
        yield Span("AWS_ACCESS_KEY", m.start(), m.end(), 0.99)
    for m in _AWS_SECRET_CTX.finditer(text):
        yield Span("AWS_SECRET_KEY", m.start(1), m.end(1), 0.97)


def _api_keys(text: str) -> Iterator[Span]:
    for pat, score in _API_KEYS:
        for m in pat.finditer(text):
            yield Span("API_KEY", m.start(), m.end(), score)


def _jwts(text: str) -> Iterator[Span]:
    if "eyJ" not in text:
        return
    for m in _JWT.finditer(text):
        yield Span("JWT", m.start(), m.end(), 0.98)


def _bearer(text: str) -> Iterator[Span]:
    for m in _BEARER.finditer(text):
        tok = m.group(1)
        # require a token-ish value (mixed character classes), not "token expired"
        if sum(c.isdigit() for c in tok) >= 2 or any(c in tok for c in "-_.~+/"):
            yield Span("BEARER_TOKEN", m.start(1), m.end(1), 0.95)
    for m in _BASIC_AUTH.finditer(text):
        yield Span("BEARER_TOKEN", m.start(1), m.end(1), 0.95)


def _url_credentials(text: str) -> Iterator[Span]:
    if "://" not in text:
        return
    for m in _URL_CREDS.finditer(text):
        yield Span("PASSWORD", m.start(1), m.end(1), 1.0)


def _kv_secrets(text: str) -> Iterator[Span]:
    for m in _KV_SECRET.finditer(text):
        gi = 2 if m.group(2) is not None else 3 if m.group(3) is not None else 4
        val = m.group(gi)
        if (
            not val
            or val.strip().lower().strip("*") in _KV_STOP_VALUES
            or set(val) <= set("*xX#•·")
        ):
            continue
        if val.startswith("<") and val.endswith(">"):  # already a placeholder
            continue
        if gi == 4 and "&" in val and "=" in text[m.end(1) : m.start(gi)]:
            val = val.split("&", 1)[0]  # query string: key=value&next=...
            if not val:
                continue
        key = m.group(1)
        typ = "PASSWORD" if _PASSWORD_KEYS.search(key) else "SECRET"
        # "is"/"was" as the separator is natural language ("my password is hunter2"):
        # only accept it for password-like keys.
        sep = text[m.end(1) : m.start(gi)]
        if re.search(r"\b(?:is|was)\b", sep, _I) and typ != "PASSWORD":
            continue
        yield Span(typ, m.start(gi), m.start(gi) + len(val), 0.9)


def _emails(text: str) -> Iterator[Span]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield Span("EMAIL_ADDRESS", m.start(), m.end(), 1.0)


def _ibans(text: str) -> Iterator[Span]:
    for m in _IBAN_CAND.finditer(text):
        cand = m.group(0)
        # The candidate may have swallowed following words ("GB.. to other");
        # take the longest prefix that validates.
        positions = [i for i, c in enumerate(cand) if c.isalnum()]
        for n in range(min(len(positions), 34), 14, -1):
            end = positions[n - 1] + 1
            compact = "".join(c for c in cand[:end] if c.isalnum()).upper()
            if _iban.is_valid(compact):
                yield Span("IBAN_CODE", m.start(), m.start() + end, 1.0)
                break
        else:
            # Right shape, wrong checksum (a typo) next to banking context: still PII.
            shaped = _IBAN_SHAPE.match(cand)
            if shaped and _has_ctx(_IBAN_CTX, text, m.start(), m.end()):
                yield Span("IBAN_CODE", m.start(), m.start() + shaped.end(), 0.6)


def _cards(text: str) -> Iterator[Span]:
    for m in _CARD_CAND.finditer(text):
        raw = m.group(0)
        digits = re.sub(r"\D", "", raw)
        if not 12 <= len(digits) <= 19 or not _luhn.is_valid(digits):
            continue
        if len(set(digits)) == 1:
            continue
        score = 0.9 if _card_brand_ok(digits) else 0.6
        if not _CARD_GROUPING.match(raw):
            score -= 0.3  # irregular grouping: more likely a phone number / id
        if _has_ctx(_CARD_CTX, text, m.start(), m.end()):
            score += 0.1
        else:
            if len(digits) <= 13:
                score -= 0.2  # short Luhn-valid numbers are common ids; want a card word
            if _CARD_NEG_CTX.search(text[max(0, m.start() - 30) : m.start()]):
                score -= 0.3
        yield Span("CREDIT_CARD", m.start(), m.end(), min(score, 1.0))


def _ips(text: str) -> Iterator[Span]:
    if "." in text:
        for m in _IPV4.finditer(text):
            score = 0.9
            if _VERSION_CTX.search(text[max(0, m.start() - 12) : m.start()]):
                score = 0.3
            yield Span("IP_ADDRESS", m.start(), m.end(), score)
    if "::" in text or text.count(":") >= 4:
        for m in _IPV6.finditer(text):
            cand = m.group(0).split("%")[0]
            try:
                ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            if cand.count(":") < 2 or (cand.startswith("::") and len(cand) <= 3 and cand != "::1"):
                continue
            yield Span("IP_ADDRESS", m.start(), m.end(), 0.9)


def _ssns(text: str) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        digits = m.group(1) + m.group(3) + m.group(4)
        if not _ssn.is_valid(digits):
            continue
        ctx = _has_ctx(_SSN_CTX, text, m.start(), m.end(), 40, 10)
        yield Span("US_SSN", m.start(), m.end(), 0.9 if ctx else 0.6 if m.group(2) == "-" else 0.4)
    for m in _SSN_BARE.finditer(text):
        if _ssn.is_valid(m.group(0)) and _has_ctx(_SSN_CTX, text, m.start(), m.end(), 40, 10):
            yield Span("US_SSN", m.start(), m.end(), 0.85)


def _driver_licenses(text: str) -> Iterator[Span]:
    for m in _DL.finditer(text):
        if any(c.isdigit() for c in m.group(1)):
            yield Span("US_DRIVER_LICENSE", m.start(1), m.end(1), 0.85)


def _urls(text: str) -> Iterator[Span]:
    for pat in (_URL, _WWW):
        for m in pat.finditer(text):
            end = m.end()
            while end > m.start() and text[end - 1] in ".,;:!?)]}'\"":
                end -= 1
            yield Span("DOMAIN_NAME", m.start(), end, 0.7)


@functools.lru_cache(maxsize=4096)
def _phone_shape_score(core: str) -> float:
    """Context-free plausibility of ``core`` as a phone number (cached: pure function)."""
    digits = re.sub(r"\D", "", core)
    if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(core.strip()):
        return 0.0
    core = core.strip()
    has_sep = bool(re.search(r"[ .\-()/]", core))
    groups = len(re.findall(r"\d+", core))
    score = _international_score(core)
    if score == 0.0:
        score = _national_score(core, digits, has_sep=has_sep)
    if score == 0.0 and has_sep and groups >= 3:
        score = 0.3  # phone-like layout that libphonenumber rejects (e.g. fake area codes)
    return score


def _international_score(core: str) -> float:
    """A number written with its country code (``+`` or ``00``): valid 0.95, possible 0.7."""
    intl = re.match(r"^\(?(?:\+|00)(\d.*)$", core)
    if not intl:
        return 0.0
    try:
        num = phonenumbers.parse("+" + re.sub(r"[()]", "", intl.group(1), count=1), None)
    except NumberParseException:
        return 0.0
    if phonenumbers.is_valid_number(num):
        return 0.95
    return 0.7 if phonenumbers.is_possible_number(num) else 0.0


def _national_score(core: str, digits: str, *, has_sep: bool) -> float:
    """A number in a national format of one of the regions we serve."""
    valid = possible = False
    for region in _PHONE_REGIONS:
        try:
            num = phonenumbers.parse(core, region)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            valid = True
            break
        if not possible and phonenumbers.is_possible_number(num):
            possible = True
    score = 0.0
    if valid:
        score = 0.55 if has_sep else 0.35
        if re.fullmatch(r"\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}", core):
            score = 0.8  # North American layout
    elif possible:
        score = 0.35 if has_sep else 0.2
    if not has_sep and valid and core.startswith("0") and len(digits) >= 9:
        score = 0.5  # national format with trunk prefix ("0492992466"): phone-shaped
    return score


def _phone_score(cand: str, text: str, start: int, end: int) -> float:
    core = _PHONE_EXT.sub("", cand)
    score = _phone_shape_score(core)
    if score == 0.0:
        return 0.0
    before = text[max(0, start - 40) : start]
    after = text[end : end + 15]
    if _PHONE_CTX_BEFORE.search(before) or _PHONE_CTX_AFTER.search(after):
        score += 0.35
    if _PHONE_NEG_CTX.search(before):
        score -= 0.35
    if _STREET_AFTER.match(text[end : end + 40]):
        score -= 0.35
    if _SSN_SHAPE.match(core):
        score -= 0.3
    return max(0.0, min(score, 1.0))


def _phones(text: str) -> Iterator[Span]:
    for m in _PHONE_CAND.finditer(text):
        if _PHONE_BAD_NEXT.match(text, m.end()):
            continue
        cand = m.group(0).rstrip(" .-")
        if sum(c.isdigit() for c in cand) < 7:
            continue
        s, e = m.start(), m.start() + len(cand)
        score = _phone_score(cand, text, s, e)
        if score > 0:
            yield Span("PHONE_NUMBER", s, e, score)


def _dates(text: str) -> Iterator[Span]:
    for pat, score in _DATES:
        for m in pat.finditer(text):
            yield Span("DATE_TIME", m.start(), m.end(), score)
    for m in _YEAR_CTX.finditer(text):
        yield Span("DATE_TIME", m.start(1), m.end(1), 0.6)


def _ages(text: str) -> Iterator[Span]:
    for pat in _AGES:
        for m in pat.finditer(text):
            if 0 < int(m.group(1)) <= 125:
                yield Span("AGE", m.start(1), m.end(1), 0.75)


def _titles(text: str) -> Iterator[Span]:
    for m in _TITLE.finditer(text):
        yield Span("TITLE", m.start(), m.end(), 0.7)


def _zips(text: str) -> Iterator[Span]:
    for m in _ZIP.finditer(text):
        if any(c.isdigit() for c in m.group(1)):
            yield Span("ZIP_CODE", m.start(1), m.end(1), 0.8)


_DETECTORS: tuple[tuple[frozenset[str], Detector], ...] = (
    (frozenset({"PRIVATE_KEY"}), _private_keys),
    (frozenset({"AWS_ACCESS_KEY", "AWS_SECRET_KEY"}), _aws),
    (frozenset({"API_KEY"}), _api_keys),
    (frozenset({"JWT"}), _jwts),
    (frozenset({"BEARER_TOKEN"}), _bearer),
    (frozenset({"PASSWORD"}), _url_credentials),
    (frozenset({"PASSWORD", "SECRET"}), _kv_secrets),
    (frozenset({"EMAIL_ADDRESS"}), _emails),
    (frozenset({"IBAN_CODE"}), _ibans),
    (frozenset({"CREDIT_CARD"}), _cards),
    (frozenset({"IP_ADDRESS"}), _ips),
    (frozenset({"US_SSN"}), _ssns),
    (frozenset({"US_DRIVER_LICENSE"}), _driver_licenses),
    (frozenset({"DOMAIN_NAME"}), _urls),
    (frozenset({"PHONE_NUMBER"}), _phones),
    (frozenset({"DATE_TIME"}), _dates),
    (frozenset({"AGE"}), _ages),
    (frozenset({"TITLE"}), _titles),
    (frozenset({"ZIP_CODE"}), _zips),
)

_log = logging.getLogger(__name__)


class PIIRedactor:
    """Configurable detector/redactor.

    Parameters
    ----------
    entities:
        Types to detect (default: all of :data:`ALL_TYPES`).  For log
        pipelines where dates and URLs are operationally useful, pass e.g.
        ``SECRET_TYPES + ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD",
        "IBAN_CODE", "IP_ADDRESS", "US_SSN")``.
    threshold:
        Minimum score for a span to be reported / redacted.
    placeholder:
        ``str.format`` template receiving ``type``; default ``"<{type}>"``.
    max_chars:
        Texts longer than this are processed in overlapping windows so the
        cost stays linear and bounded per call.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        *,
        threshold: float = 0.5,
        placeholder: str = "<{type}>",
        max_chars: int = 20000,
    ) -> None:
        wanted = frozenset(entities) if entities is not None else frozenset(ALL_TYPES)
        unknown = wanted - frozenset(ALL_TYPES)
        if unknown:
            raise ValueError(f"unknown entity types: {sorted(unknown)}")
        self.entities = wanted
        self.threshold = threshold
        self.placeholder = placeholder
        self.max_chars = max_chars
        self._detectors = tuple(d for types, d in _DETECTORS if types & wanted)

    def warmup(self) -> None:
        """Load lazily-initialised metadata (libphonenumber regions) up front.

        Call once at start-up so the first logged line does not pay ~50 ms."""
        for region in _PHONE_REGIONS:
            with contextlib.suppress(NumberParseException):
                phonenumbers.is_valid_number(phonenumbers.parse("123 456 7890", region))
        self.find(
            "warm-up +1 202 555 0143 4111 1111 1111 1111 GB82WEST12345698765432 a@b.co"
            " 10.0.0.1 2020-01-01"
        )

    # -- detection -----------------------------------------------------
    def _raw(self, text: str, offset: int = 0) -> list[Span]:
        out: list[Span] = []
        for det in self._detectors:
            # One bad detector must not disable the rest.
            try:
                out.extend(
                    Span(sp.type, sp.start + offset, sp.end + offset, sp.score) if offset else sp
                    for sp in det(text)
                    if sp.type in self.entities and sp.end > sp.start
                )
            except Exception:  # pragma: no cover - defensive
                _log.debug("pii detector %s failed", getattr(det, "__name__", det), exc_info=True)
        return out

    def find_all(self, text: str) -> list[Span]:
        """All candidate spans above threshold, overlaps *not* resolved."""
        if not text:
            return []
        if len(text) <= self.max_chars:
            raw = self._raw(text)
        else:
            raw = []
            step, overlap = self.max_chars, 512
            for s in range(0, len(text), step):
                raw.extend(self._raw(text[max(0, s - overlap) : s + step], max(0, s - overlap)))
            raw = list(set(raw))
        return [s for s in raw if s.score >= self.threshold]

    def find(self, text: str) -> list[Span]:
        """Non-overlapping spans sorted by position (higher score, then type priority, wins)."""
        cands = sorted(
            self.find_all(text),
            key=lambda s: (-s.score, _PRIORITY.get(s.type, 99), -(s.end - s.start), s.start),
        )
        chosen: list[Span] = []
        for sp in cands:
            if all(sp.end <= c.start or sp.start >= c.end for c in chosen):
                chosen.append(sp)
        return sorted(chosen, key=lambda s: s.start)

    # -- redaction -----------------------------------------------------
    def redact(self, text: str) -> str:
        """Replace every detected span with its placeholder.  Never raises.

        On an unexpected internal error the *whole* text is replaced by
        ``<REDACTION_FAILED>`` (fail closed: better a useless log line than a
        leaked card number)."""
        try:
            if not isinstance(text, str):
                text = str(text)
            spans = self.find(text)
            if not spans:
                return text
            parts: list[str] = []
            pos = 0
            for sp in spans:
                parts.append(text[pos : sp.start])
                parts.append(self.placeholder.format(type=sp.type))
                pos = sp.end
            parts.append(text[pos:])
            return "".join(parts)
        except Exception:  # pragma: no cover - defensive
            _log.debug("pii redaction failed", exc_info=True)
            return "<REDACTION_FAILED>"


_DEFAULT = PIIRedactor()


def find(text: str) -> list[Span]:
    """Detect PII and secrets in ``text`` with the default configuration."""
    return _DEFAULT.find(text)


def redact(text: str) -> str:
    """Return ``text`` with PII and secrets replaced by ``<TYPE>`` placeholders."""
    return _DEFAULT.redact(text)


def redact_mapping(
    values: dict[str, object], redactor: PIIRedactor | None = None
) -> dict[str, object]:
    """Redact string values of a flat mapping (e.g. OpenTelemetry span attributes).

    Non-string values are passed through; sequences of strings are redacted
    element-wise.  Intended for span processors' ``on_end`` hooks."""
    r = redactor or _DEFAULT
    out: dict[str, object] = {}
    for k, v in values.items():
        if isinstance(v, str):
            out[k] = r.redact(v)
        elif isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
            out[k] = type(v)(r.redact(x) for x in v)
        else:
            out[k] = v
    return out
