"""Keys that compare names as people mean them, whatever case, Unicode form or accents."""

import unicodedata


def name_key(name: str) -> str:
    """A name as people tell names apart: case-folded in Unicode NFKC ("Straße" and
    "STRASSE", "ΠΑΠΑΔΌΠΟΥΛΟΣ" and "Παπαδόπουλος", a full-width "Ｒ" and "R" are one key),
    without the characters that show nothing (zero-width spaces and joiners, a soft hyphen,
    a word joiner), its spaces of any kind one space between words. Normalized before folding
    and after: folding can undo a composition (ǰ folds to j and a combining caron). In
    Python, not the database: its lower() leaves ß and a final sigma alone, and folds nothing
    but ASCII under some locales."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cf").split())


def search_key(name: str) -> str:
    """A name as a search finds it: case-folded with its accents and other combining marks
    left out, so that "Clinica" and "clinica" find "Clínica", and "Pena" finds "Peña" (a
    search typed on a keyboard without them is a search still)."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))
