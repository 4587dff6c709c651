"""count_words and count_lines (app/tasks/words.py): plain functions, tested without Redis or RQ."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.tasks import words


@pytest.mark.parametrize(
    "text",
    ["", "one", "  leading and trailing  ", "tabs\tand\nnew\r\nlines", "ünïcödé wörds ok", "a\u3000b\u2003c", "x\n"],
)
def test_count_words_matches_split(text):
    result = words.count_words(text)
    assert result == {"words": len(text.split()), "characters": len(text), "lines": len(text.splitlines())}


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_count_words_is_len_split_for_any_ascii_text(text):
    # The ASCII path (translate and count) against str.split, \x1c-\x1f and \x0b\x0c included.
    assert words.count_words(text)["words"] == len(text.split())


@given(st.text())
def test_count_words_is_len_split_for_any_text(text):
    assert words.count_words(text)["words"] == len(text.split())


@given(st.lists(st.sampled_from([*words.LINE_BOUNDARIES, "a", "é", "\u3000", " ", "\t", "\r\n"])).map("".join))
def test_count_lines_is_len_splitlines(text):
    assert words.count_lines(text) == len(text.splitlines())


@given(st.text())
def test_count_lines_is_len_splitlines_for_any_text(text):
    assert words.count_lines(text) == len(text.splitlines())


def test_count_words_chunks_never_split_a_word(monkeypatch):
    monkeypatch.setattr(words, "PROGRESS_CHUNK", 7)
    rng = random.Random(4)
    for _ in range(200):
        text = "".join(rng.choice("ab \n\t") for _ in range(rng.randint(0, 80)))
        assert words.count_words(text)["words"] == len(text.split()), repr(text)
        wide = text.replace("b", "\u00e9")  # not ASCII: the other path, chunked the same way
        assert words.count_words(wide)["words"] == len(wide.split()), repr(wide)


def test_count_words_reports_progress_up_to_total():
    text = ("word " * 200_000).strip()
    seen = []
    words.count_words(text, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) >= 3
    assert all(total == len(text) for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (len(text), len(text))
