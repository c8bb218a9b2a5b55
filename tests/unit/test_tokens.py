"""The secrets gated hands out (kanmon.web.tokens): their shape, their hash, and that none is logged."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from kanmon import redaction
from kanmon.web.tokens import KEY_PATTERN, chat_url, new_api_key, new_token, token_hash


@given(st.text())
def test_the_hash_is_the_sha256_hex_of_any_text_even_lone_surrogates(text: str) -> None:
    expected = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    assert token_hash(text) == expected
    assert len(expected) == 64


def test_an_api_key_has_its_documented_shape_and_its_id_is_public() -> None:
    issued = new_api_key()
    found = KEY_PATTERN.match(issued.key)
    assert found is not None and found.group(1) == issued.key_id
    assert issued.key.startswith(f"kmk_{issued.key_id}_") and len(issued.key) == 4 + 9 + 43
    assert issued.key_hash == token_hash(issued.key)
    assert new_api_key().key != issued.key


def test_a_token_is_new_each_time_and_only_its_hash_is_for_the_store() -> None:
    first, second = new_token(), new_token()
    assert first[0] != second[0]
    assert first[1] == token_hash(first[0]) != first[0]


def test_no_issued_secret_reaches_a_log_line() -> None:
    token, _ = new_token()
    key = new_api_key().key
    line = redaction.redact(f"token {token} and key {key}")
    assert token not in line and key not in line


def test_the_chat_link_carries_the_token_in_the_fragment_only() -> None:
    assert chat_url("http://h:1/", "corp/eng", "T0k") == "http://h:1/chat/corp/eng#token=T0k"
    assert chat_url("http://h:1", "demo", "x").split("#")[0] == "http://h:1/chat/demo"
