"""Vietnamese full-text search without a server-side text index.

People type without diacritics ("nghi quyet 57") and expect "Nghị quyết số
57-NQ/TW". Both sides are folded the same way: Unicode NFD, combining marks
stripped, đ/Đ → d, lower case. A document stores its folded tokens in an
indexed array field; a query asks for all of its tokens (`$all`, which a
multikey index answers on any MongoDB, SecantusDB included) and the few
candidates are ranked in Python with `score`.

Folding is for finding, never for deciding: "mặt" (face) and "mật" (secret)
fold alike, so classification rules read the text with its diacritics.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

# Letters and digits of any script; everything else separates tokens.
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_D = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d"})

MAX_QUERY_TERMS = 12


def fold(text: str) -> str:
    """Accent- and case-insensitive form: "Nghị quyết Đảng" → "nghi quyet dang"."""
    decomposed = unicodedata.normalize("NFD", text.translate(_D))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def tokens(text: str) -> list[str]:
    """Folded tokens in order, repeats kept: "57-NQ/TW" → ["57", "nq", "tw"]."""
    return _TOKEN.findall(fold(text))


def index_terms(*texts: str | None) -> list[str]:
    """The distinct folded tokens of all `texts`, sorted: the indexed array a document stores."""
    terms: set[str] = set()
    for text in texts:
        if text:
            terms.update(tokens(text))
    return sorted(terms)


def query_terms(query: str) -> list[str]:
    """The distinct tokens of a query, in the order typed, at most MAX_QUERY_TERMS."""
    seen: dict[str, None] = {}
    for token in tokens(query):
        seen.setdefault(token, None)
    return list(seen)[:MAX_QUERY_TERMS]


def compact(text: str) -> str:
    """A code compared whole, separators ignored: "57-NQ/TW", "57 nq tw" → "57nqtw"."""
    return "".join(tokens(text))


def _contains_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(haystack):
        return False
    first = needle[0]
    return any(
        haystack[i] == first and list(haystack[i : i + n]) == list(needle)
        for i in range(len(haystack) - n + 1)
    )


def score(terms: Sequence[str], fields: Iterable[tuple[str | None, float]]) -> float:
    """Rank of a candidate for `terms` (from `query_terms`) over weighted text fields.

    Each field adds its weight per distinct query term it contains (capped
    repeats count a little), and twice its weight when it holds the terms as
    one run in the order typed, so a title saying "nghị quyết 57" beats a body
    that mentions "nghị", "quyết" and "57" apart.
    """
    return score_tokens(terms, ((tokens(text) if text else [], weight) for text, weight in fields))


def score_tokens(terms: Sequence[str], fields: Iterable[tuple[Sequence[str], float]]) -> float:
    """`score` on fields already tokenised (by `tokens`): for rows that keep their tokens."""
    wanted = list(terms)
    if not wanted:
        return 0.0
    total = 0.0
    for field_tokens, weight in fields:
        if not field_tokens:
            continue
        counts: dict[str, int] = {}
        for token in field_tokens:
            counts[token] = counts.get(token, 0) + 1
        for term in wanted:
            hits = counts.get(term, 0)
            if hits:
                total += weight * (1.0 + min(hits - 1, 4) * 0.1)
        if len(wanted) > 1 and _contains_run(field_tokens, wanted):
            total += 2 * weight
    return total
