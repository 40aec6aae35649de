"""The domain-noun plural every loader and the prompt context share."""

import pytest

from recllm.data.schema import plural_noun


@pytest.mark.parametrize("noun,plural", [
    ("movie", "movies"), ("book", "books"), ("series", "series"), ("tv series", "tv series"),
    ("story", "stories"), ("day", "days"), ("box", "boxes"), ("match", "matches"),
])
def test_plural_noun(noun, plural):
    assert plural_noun(noun) == plural
