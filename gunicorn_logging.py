"""gunicorn's logger for the service (gunicorn.conf.py's `logger_class`): an access line is one
line whatever a client sent, and gunicorn's own warnings about a request it refused carry
neither its query string nor a header's value (a token or a secret may be in either).

Beside gunicorn.conf.py, not in core/: gunicorn's master imports it (by the name the settings
give), and the master imports none of the service's code."""

import re
from urllib.parse import urlsplit

from gunicorn.glogging import Logger, SafeAtoms
from gunicorn.http.errors import NoMoreData, ParseException

#: Everything but printable ASCII, and the backslash that escapes the rest.
_UNPRINTABLE = re.compile(r"[^\x20-\x5b\x5d-\x7e]")
#: gunicorn's warning for a request it answers 400 (or 414, 431, 501...) itself, before the
#: service: "Invalid request from ip=<peer>: <its error>", the error quoting what the client
#: sent (the request line with its query string, a header line or value).
_REFUSED = re.compile(r"(Invalid request from ip=\S*?): (.*)", re.DOTALL)


def escaped(text: str) -> str:
    """`text` as printable ASCII on one line: a CR, LF, NUL or other control character, a
    backslash, and any character beyond ASCII written as in a Python string literal (`\\n`,
    `\\x00`, `\\\\`, `\\xe9`, `\\u2028`)."""
    return _UNPRINTABLE.sub(lambda found: found[0].encode("unicode_escape").decode("ascii"),
                            text)


def path_as_sent(environ: dict) -> str:
    """The request's path as the client sent it, still percent-encoded, without its query
    string (nor an absolute-form target's scheme, host and credentials)."""
    target = environ.get("RAW_URI") or environ.get("PATH_INFO") or "-"
    if target.startswith(("/", "*")):
        return target.partition("?")[0].partition("#")[0]
    return urlsplit(target).path or "-"


def refusal_without_its_values(message: str) -> str:
    """gunicorn's warning about a request it refused, cut to the peer and the kind of error
    ("Invalid HTTP request line", "Invalid HTTP Header"): what follows the kind, the part
    quoting the client's bytes, is left out. Any other message is returned as it is."""
    refused = _REFUSED.fullmatch(message)
    if refused is None:
        return message
    peer, error = refused.groups()
    kind = re.match(r"[^:'\"]*", error)[0].strip()
    return f"{peer}: {escaped(kind)} (what it quoted is left out)"


class _EscapedAtoms(SafeAtoms):
    """gunicorn's access-log atoms, each string escaped onto one line before gunicorn escapes
    its double quotes."""

    def __init__(self, atoms):
        super().__init__({name: escaped(value) if isinstance(value, str) else value
                          for name, value in atoms.items()})


class ServiceLogger(Logger):
    """gunicorn's logger, with access lines that no client can break or forge, and refusals
    that repeat no query string and no header value."""

    atoms_wrapper_class = _EscapedAtoms

    def atoms(self, resp, req, environ, request_time):
        """gunicorn's atoms, `%(U)s` the path as the client sent it: gunicorn's is PATH_INFO,
        percent-decoded, where a `%0a` is a new line in the log."""
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = path_as_sent(environ)
        return atoms

    def warning(self, msg, *args, **kwargs):
        """gunicorn's warning, a refused request's cut to the peer and the kind of error."""
        if isinstance(msg, str) and not args:
            msg = refusal_without_its_values(msg)
        super().warning(msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        """gunicorn's debug line, a parser's exception in it named by its kind alone."""
        # "Ignored premature client disconnection. %s": a NoMoreData holds what the client had
        # sent of its request head, query string and headers included.
        args = tuple(type(arg).__name__ if isinstance(arg, NoMoreData | ParseException) else arg
                     for arg in args)
        super().debug(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        """gunicorn's error with its traceback, a request it names named without its query."""
        # "Error handling request %s %s" names the request target, query string included.
        if (isinstance(msg, str) and msg.startswith("Error handling request") and args
                and isinstance(args[-1], str)):
            args = (*args[:-1], escaped(args[-1].partition("?")[0]))
        super().exception(msg, *args, **kwargs)
