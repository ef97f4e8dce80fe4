"""Text from the user's code (parameter and file names, a model's printed output, exception messages)
made safe for a terminal or a CI log before mulint prints it.

A name holding ``\\x1b[2J`` would clear the reader's screen, one holding ``\\n`` would forge a line of
mulint's own output ("All checks passed!"), and bidirectional overrides reorder what a reviewer reads
(CVE-2021-42574). Control characters become visible Python-style escapes (``\\x1b``, ``\\n``); JSON
keeps its own escapes, which json.dumps writes for C0 only, so the others are escaped there too.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, the bidirectional marks, embeddings, overrides and isolates, and the
# Unicode line and paragraph separators (which some terminals and editors break lines at).
_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_ANY = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
_UNSAFE_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_BEYOND_C0}]")  # all but the tab and the newline
_UNSAFE_BUT_LINE_ENDS = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_BEYOND_C0}]")
_JSON_RAW = re.compile(f"[{_BEYOND_C0}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}"


def one_line(text) -> str:
    """A name or a message that must stay on its line: every control character escaped, newlines too."""
    return _UNSAFE_ANY.sub(_visible, str(text))


def keep_lines(text) -> str:
    """Free text of several lines (a quoted output, an error with its hint): its newlines and tabs kept,
    every other control character escaped."""
    return _UNSAFE_IN_LINES.sub(_visible, str(text).replace("\r\n", "\n"))


def but_line_ends(text) -> str:
    """For a format that encodes CR and LF itself (GitHub's workflow commands): every other control escaped."""
    return _UNSAFE_BUT_LINE_ENDS.sub(_visible, str(text))


def json_text(encoded: str) -> str:
    """JSON written with ensure_ascii=False: the controls json.dumps leaves raw (DEL, C1, bidi) as \\uXXXX.
    They can only occur inside strings, where that escape means the same character."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)
