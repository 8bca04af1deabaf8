"""Crisis lines: the shipped data file, an operator's file that replaces or extends it, and
the validation both go through before the server starts.

The format (``haven-crisis-lines/1``)::

    {"format": "haven-crisis-lines/1",
     "mode": "extend" | "replace",          # operator files only; default "extend"
     "countries": {"US": {"name": "United States", "emergency": "911",
                          "emergency_note": "...",            # optional
                          "lines": [{"name", "number", "description", "hours",
                                     "text": str | null, "chat": https URL | null,
                                     "sms_only": bool (optional), "source": https URL}]}}}

``extend`` replaces whole countries the operator names and keeps the rest; ``replace``
ships only the operator's countries. Every problem is reported as one line naming the
file and the entry (``CrisisLinesError``), so ``haven serve`` can refuse to start.

Pure: no database, no web. Lives in ``groups`` because group safety is where it is used
most, and ``web`` (the only other user, for every page's "Get help now") imports groups.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FORMAT = "haven-crisis-lines/1"
SHIPPED = Path(__file__).resolve().parent / "crisis_lines.json"
DATA_DIR_FILE = "crisis_lines.json"  # an operator file in the data folder, if present
MAX_BYTES = 1024 * 1024
NUMBER_RE = re.compile(r"^\+?[0-9](?:[0-9 -]{0,18}[0-9])?$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(?:[/?#][^\s\"<>]*)?$")
LINE_FIELDS = {"name", "number", "description", "hours", "text", "chat", "sms_only", "source"}
COUNTRY_FIELDS = {"name", "emergency", "emergency_note", "lines"}
TEXT_MAX = 300


class CrisisLinesError(Exception):
    """The crisis-lines file cannot be used; the message is one line."""


@dataclass(frozen=True)
class CrisisLine:
    name: str
    number: str
    description: str
    hours: str
    text: str | None
    chat: str | None
    sms_only: bool
    source: str

    @property
    def tel(self) -> str:
        """The number as a tel:/sms: URI target (digits and a leading +)."""
        return re.sub(r"[^0-9+]", "", self.number)

    def public(self) -> dict:
        return {"name": self.name, "number": self.number, "tel": self.tel,
                "description": self.description, "hours": self.hours, "text": self.text,
                "chat": self.chat, "sms_only": self.sms_only, "source": self.source}


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    emergency: str
    emergency_note: str | None
    lines: tuple[CrisisLine, ...]

    def public(self) -> dict:
        return {"code": self.code, "name": self.name, "emergency": self.emergency,
                "emergency_tel": re.sub(r"[^0-9+]", "", self.emergency),
                "emergency_note": self.emergency_note,
                "lines": [line.public() for line in self.lines]}


@dataclass(frozen=True)
class CrisisDirectory:
    countries: dict[str, Country]
    sources: tuple[str, ...]  # the files it was built from, for the start-up log

    def country(self, code: str | None) -> Country | None:
        return self.countries.get((code or "").upper())

    def choices(self) -> list[tuple[str, str]]:
        return sorted(((c.code, c.name) for c in self.countries.values()),
                      key=lambda pair: pair[1])

    def public(self) -> dict:
        return {"countries": {code: c.public() for code, c in sorted(self.countries.items())}}


def _text(where: str, entry: dict, name: str, *, optional: bool = False) -> str | None:
    value = entry.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CrisisLinesError(f"{where}: {name} must be non-empty text")
    if len(value) > TEXT_MAX or "\n" in value:
        raise CrisisLinesError(f"{where}: {name} must be one line of at most {TEXT_MAX} "
                               "characters")
    return value.strip()


def _number(where: str, value: object, name: str = "number") -> str:
    if not isinstance(value, str) or not NUMBER_RE.match(value.strip()):
        raise CrisisLinesError(f"{where}: {name} {str(value)[:30]!r} is not a phone number "
                               "(digits, spaces and hyphens, optionally a leading +)")
    digits = re.sub(r"\D", "", value)
    if not 2 <= len(digits) <= 15:
        raise CrisisLinesError(f"{where}: {name} must have 2 to 15 digits")
    return value.strip()


def _url(where: str, value: object, name: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not URL_RE.match(value) or len(value) > TEXT_MAX:
        raise CrisisLinesError(f"{where}: {name} must be an https:// address of a public page")
    return value


def _line(where: str, entry: object) -> CrisisLine:
    if not isinstance(entry, dict):
        raise CrisisLinesError(f"{where}: each line must be an object")
    unknown = sorted(set(entry) - LINE_FIELDS)
    if unknown:
        raise CrisisLinesError(f"{where}: unknown field {unknown[0][:30]!r}")
    sms_only = entry.get("sms_only", False)
    if not isinstance(sms_only, bool):
        raise CrisisLinesError(f"{where}: sms_only must be true or false")
    return CrisisLine(
        name=_text(where, entry, "name"), number=_number(where, entry.get("number")),
        description=_text(where, entry, "description"), hours=_text(where, entry, "hours"),
        text=_text(where, entry, "text", optional=True),
        chat=_url(where, entry.get("chat"), "chat", optional=True), sms_only=sms_only,
        source=_url(where, entry.get("source"), "source"))


def _country(where: str, code: object, entry: object) -> Country:
    if not isinstance(code, str) or not COUNTRY_RE.match(code):
        raise CrisisLinesError(f"{where}: country code {str(code)[:10]!r} must be two capital "
                               "letters (ISO 3166-1, such as US or DE)")
    where = f"{where}: {code}"
    if not isinstance(entry, dict):
        raise CrisisLinesError(f"{where} must be an object")
    unknown = sorted(set(entry) - COUNTRY_FIELDS)
    if unknown:
        raise CrisisLinesError(f"{where}: unknown field {unknown[0][:30]!r}")
    lines = entry.get("lines")
    if not isinstance(lines, list) or not lines or len(lines) > 12:
        raise CrisisLinesError(f"{where}: lines must be a list of 1 to 12 crisis lines")
    return Country(code, _text(where, entry, "name"),
                   _number(where, entry.get("emergency"), "emergency"),
                   _text(where, entry, "emergency_note", optional=True),
                   tuple(_line(f"{where} line {i + 1}", line) for i, line in enumerate(lines)))


def parse(raw: bytes, where: str, *, operator: bool = False) -> tuple[str, dict[str, Country]]:
    """(mode, countries) of one file's bytes, or CrisisLinesError naming what is wrong."""
    if len(raw) > MAX_BYTES:
        raise CrisisLinesError(f"{where}: the file is larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise CrisisLinesError(f"{where}: not valid JSON ({detail})") from None
    except RecursionError:
        raise CrisisLinesError(f"{where}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise CrisisLinesError(f"{where}: the file must hold a JSON object")
    if data.get("format") != FORMAT:
        raise CrisisLinesError(f"{where}: format must be {FORMAT!r}")
    unknown = sorted(set(data) - {"format", "note", "mode", "countries"})
    if unknown:
        raise CrisisLinesError(f"{where}: unknown field {unknown[0][:30]!r}")
    mode = data.get("mode", "extend")
    if mode not in ("extend", "replace") or (not operator and "mode" in data):
        raise CrisisLinesError(f"{where}: mode must be \"extend\" or \"replace\"")
    countries = data.get("countries")
    if not isinstance(countries, dict) or not countries:
        raise CrisisLinesError(f"{where}: countries must be an object with at least one "
                               "country")
    return mode, {code: _country(where, code, entry) for code, entry in countries.items()}


def _read(path: Path, *, operator: bool) -> tuple[str, dict[str, Country]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CrisisLinesError(f"crisis lines file {path}: cannot be read "
                               f"({exc.strerror or exc.__class__.__name__})") from None
    return parse(raw, f"crisis lines file {path}", operator=operator)


@lru_cache(maxsize=1)
def shipped() -> CrisisDirectory:
    _, countries = _read(SHIPPED, operator=False)
    return CrisisDirectory(countries, (str(SHIPPED),))


def load(operator_files: list[Path] | tuple[Path, ...] = ()) -> CrisisDirectory:
    """The shipped lines with each operator file applied in turn (extend or replace)."""
    base = shipped()
    countries = dict(base.countries)
    sources = list(base.sources)
    for path in operator_files:
        mode, theirs = _read(Path(path), operator=True)
        countries = {**countries, **theirs} if mode == "extend" else dict(theirs)
        sources.append(str(path))
    return CrisisDirectory(countries, tuple(sources))


def operator_files(data_dir: Path, option: Path | None) -> list[Path]:
    """The data folder's crisis_lines.json (if present), then the --crisis-lines file."""
    found = []
    in_data_dir = Path(data_dir) / DATA_DIR_FILE
    if in_data_dir.is_file():
        found.append(in_data_dir)
    if option is not None:
        found.append(Path(option))
    return found


# Languages whose speakers mostly live in one country, for a locale with no region.
LANGUAGE_COUNTRY = {"de": "DE", "fr": "FR", "nl": "NL", "es": "ES", "it": "IT", "pt": "PT",
                    "sv": "SE", "nb": "NO", "nn": "NO", "no": "NO", "da": "DK", "fi": "FI",
                    "pl": "PL", "ja": "JP", "ko": "KR", "hi": "IN"}


def country_from_locales(locales: list[str], known: dict[str, Country]) -> str | None:
    """The first locale's country that the directory knows ("en-GB" -> GB, "de" -> DE)."""
    for tag in locales:
        parts = re.split(r"[-_]", tag.strip())
        region = next((p.upper() for p in parts[1:] if len(p) == 2 and p.isalpha()), None)
        if region and region in known:
            return region
        lang = parts[0].lower() if parts else ""
        if region is None and LANGUAGE_COUNTRY.get(lang) in known:
            return LANGUAGE_COUNTRY[lang]
    return None


def accept_language(header: str | None) -> list[str]:
    """The tags of an Accept-Language header, best first (q-values honoured)."""
    tags = []
    for i, part in enumerate((header or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and tag != "*":
            tags.append((-q, i, tag))
    return [t for _, _, t in sorted(tags)]
