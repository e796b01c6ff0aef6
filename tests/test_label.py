import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibuild.errors import InputError, MinibuildError
from minibuild.label import Label, Pattern, parse_pattern


@pytest.mark.parametrize(
    ("text", "package", "expected"),
    [
        ("//images:bash", None, Label("images", "bash")),
        (":bash", "images", Label("images", "bash")),
        ("bash", "images", Label("images", "bash")),
        ("//images", None, Label("images", "images")),
        ("//a/b/c", None, Label("a/b/c", "c")),
        ("//:root", None, Label("", "root")),
        ("sub:x", "images", Label("images/sub", "x")),
    ],
)
def test_labels(text, package, expected):
    assert parse_pattern(text, package) == expected
    assert str(Label.parse(str(expected))) == str(expected)


@pytest.mark.parametrize(
    ("text", "package", "expected"),
    [
        ("//...", None, Pattern("", True)),
        ("//images/...", None, Pattern("images", True)),
        ("//images:all", None, Pattern("images", False)),
        (":all", "images", Pattern("images", False)),
        ("...", "images", Pattern("images", True)),
    ],
)
def test_patterns(text, package, expected):
    assert parse_pattern(text, package) == expected


def test_pattern_matching():
    assert Pattern("", True).matches_package("a/b")
    assert Pattern("a", True).matches_package("a/b")
    assert not Pattern("a", True).matches_package("ab")
    assert not Pattern("a", False).matches_package("a/b")


@pytest.mark.parametrize("text", ["", "//", "//images:", "//images:ba d", "//../x:y", "//a//b:c", " //a:b",
                                  "//a/...:x", "//images:bash:x", ":"])
def test_malformed(text):
    with pytest.raises(InputError) as err:
        parse_pattern(text, "images")
    assert "label" in str(err.value) or "pattern" in str(err.value)


def test_relative_outside_package():
    with pytest.raises(InputError, match="outside a package"):
        Label.parse(":bash")


@settings(max_examples=3000, deadline=None)
@given(st.text(max_size=40), st.one_of(st.none(), st.sampled_from(["", "images", "a/b"])))
def test_parser_only_raises_our_errors(text, package):
    try:
        parsed = parse_pattern(text, package)
    except MinibuildError:
        return
    assert str(parsed).startswith("//")
