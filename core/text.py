"""Keys that compare names as people mean them, whatever case, Unicode form or accents."""

import unicodedata


def name_key(name: str) -> str:
    """A name case-folded in Unicode NFC ("Straße" and "STRASSE", "ΠΑΠΑΔΌΠΟΥΛΟΣ" and
    "Παπαδόπουλος" are one key), so that a name typed composed or decomposed is one key too.
    Normalized before folding and after: folding can undo a composition (ǰ folds to j and a
    combining caron). In Python, not the database: its lower() leaves ß and a final sigma
    alone, and folds nothing but ASCII under some locales."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def search_key(name: str) -> str:
    """A name as a search finds it: case-folded with its accents and other combining marks
    left out, so that "Clinica" and "clinica" find "Clínica", and "Pena" finds "Peña" (a
    search typed on a keyboard without them is a search still)."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))
