"""Alignment paths: counters per level, keyed levels, duplicate detection."""
import pytest

from fieldlearn.calculus.paths import AlignmentError, PathStack, format_path


def test_counters_run_per_level_and_keys_take_no_counter():
    s = PathStack()
    assert s.push_counted("f") == ("f#0",)
    assert s.push_counted("nbr") == ("f#0", "nbr#0")
    s.pop()
    assert s.push_counted("nbr") == ("f#0", "nbr#1")
    s.pop()
    s.pop()
    assert s.push_key("then") == ("then",)
    assert s.push_counted("rep") == ("then", "rep#0")
    s.pop()
    s.pop()
    assert s.push_counted("f") == ("f#1",)


def test_a_path_claimed_twice_in_a_round_is_an_alignment_error():
    s = PathStack()
    s.claim(("a#0",))
    with pytest.raises(AlignmentError, match="a#0/b"):
        s.claim(("a#0",) + ("b",)) or s.claim(("a#0", "b"))


def test_format_path():
    assert format_path(()) == "<root>"
    assert format_path(("f#0", ("align", 3), "nbr#1")) == "f#0/('align', 3)/nbr#1"
