"""Vietnamese folding, tokens and ranking, without I/O."""

import unicodedata

from sotay_platform.textsearch import compact, fold, index_terms, query_terms, score, tokens


def test_fold_strips_diacritics_case_and_d_stroke() -> None:
    assert fold("Nghị quyết số 57-NQ/TW") == "nghi quyet so 57-nq/tw"
    assert fold("ĐẢNG BỘ Đà Nẵng") == "dang bo da nang"
    assert fold("đ") == fold("d") == fold("Đ")


def test_fold_is_the_same_for_composed_and_decomposed_input() -> None:
    text = "Chỉ thị về công tác tuyên giáo"
    assert fold(unicodedata.normalize("NFD", text)) == fold(unicodedata.normalize("NFC", text))


def test_tokens_split_codes_and_punctuation() -> None:
    assert tokens("Số 57-NQ/TW, ngày 22/12/2024") == [
        "so", "57", "nq", "tw", "ngay", "22", "12", "2024",
    ]  # fmt: skip
    assert tokens("  ") == []


def test_index_terms_are_distinct_sorted_and_cover_every_text() -> None:
    assert index_terms("Nghị quyết", None, "nghi QUYET 57") == ["57", "nghi", "quyet"]


def test_query_terms_keep_typed_order_without_repeats() -> None:
    assert query_terms("quyết nghi quyet 57") == ["quyet", "nghi", "57"]
    assert len(query_terms(" ".join(str(n) for n in range(50)))) == 12


def test_compact_compares_codes_whatever_the_separators() -> None:
    assert compact("57-NQ/TW") == compact("57 nq tw") == "57nqtw"


def test_query_terms_are_a_subset_of_the_index_terms_of_a_match() -> None:
    terms = index_terms("Nghị quyết số 57-NQ/TW về đột phá khoa học")
    assert set(query_terms("nghi quyet 57")) <= set(terms)
    assert set(query_terms("dot pha")) <= set(terms)


def test_score_prefers_the_title_and_the_phrase_in_order() -> None:
    terms = query_terms("nghi quyet 57")
    in_title = score(terms, [("Nghị quyết 57 của Bộ Chính trị", 3.0), ("", 1.0)])
    scattered = score(terms, [("Về khoa học", 3.0), ("57 năm; nghị sự; quyết định", 1.0)])
    in_body_phrase = score(terms, [("Về khoa học", 3.0), ("theo nghị quyết 57", 1.0)])
    assert in_title > in_body_phrase > scattered > 0
    assert score(terms, [("không liên quan", 3.0)]) == 0
    assert score([], [("Nghị quyết", 1.0)]) == 0


def test_score_on_stored_tokens_equals_score_on_text() -> None:
    from sotay_platform.textsearch import score_tokens

    terms = query_terms("nghi quyet 57")
    fields = [("Nghị quyết 57 của Bộ Chính trị", 3.0), ("về khoa học", 1.0)]
    assert score_tokens(terms, [(tokens(t), w) for t, w in fields]) == score(terms, fields) > 0
