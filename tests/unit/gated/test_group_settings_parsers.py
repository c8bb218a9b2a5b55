"""The parsers behind `gated group set`'s options, by property: env pairs, mount specs, sizes and durations."""

from __future__ import annotations

import posixpath
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanmon.errors import InvalidInput
from kanmon.gated.config_kinds import format_size
from kanmon.gated.group_settings import (
    check_env_name,
    format_duration,
    parse_duration,
    parse_env_pair,
    parse_memory,
    parse_mount,
)

NAME_START = string.ascii_letters + "_"
NAME_REST = NAME_START + string.digits
# names a credential check would let through: no credential word (checked below on its own)
plain_names = st.text(NAME_START, min_size=1, max_size=1).flatmap(
    lambda first: st.text(NAME_REST, max_size=20).map(lambda rest: first + rest)
)
names = plain_names.filter(lambda name: _not_credential(name))
values = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=50)
segment = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=10).filter(
    lambda part: part not in (".", "..")
)
paths = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


def _not_credential(name: str) -> bool:
    try:
        check_env_name(name, "--env")
    except InvalidInput:
        return False
    return True


# --- env pairs -------------------------------------------------------------------------------------------------


@given(names, values)
def test_an_env_pair_splits_at_its_first_equals_sign(name: str, value: str) -> None:
    assert parse_env_pair(f"{name}={value}") == (name, value)


@given(st.text(max_size=20).filter(lambda text: "=" not in text))
def test_an_env_pair_without_equals_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="expected KEY=VALUE"):
        parse_env_pair(text)


@given(st.text(string.digits, min_size=1, max_size=3), st.text(NAME_REST, max_size=5), values)
def test_an_env_name_starting_with_a_digit_is_refused(digits: str, rest: str, value: str) -> None:
    with pytest.raises(InvalidInput, match="not a variable name"):
        parse_env_pair(f"{digits}{rest}={value}")


@given(st.sampled_from(["token", "SECRET", "Password", "passwd", "credentials", "auth", "apikey"]), names)
def test_an_env_name_with_a_credential_word_is_refused(word: str, other: str) -> None:
    for name in (word, f"{other}_{word}", f"{word}_{other}", f"{other}_API_KEY"):
        with pytest.raises(InvalidInput, match="looks like a credential"):
            parse_env_pair(f"{name}=x")


@pytest.mark.parametrize("name", ["AUTHOR", "KEYBOARD", "MONKEY_BUSINESS", "TOKENIZER_PATH", "LANG", "HOME"])
def test_a_credential_word_inside_a_longer_word_is_fine(name: str) -> None:
    assert parse_env_pair(f"{name}=x") == (name, "x")


# --- mount specs -----------------------------------------------------------------------------------------------


@given(
    paths,
    paths.filter(lambda p: p.split("/")[1] not in ("proc", "sys", "dev", "tmp")),
    st.sampled_from(["", ":ro", ":rw"]),
)
def test_a_mount_spec_gives_its_host_path_container_path_and_mode(host: str, target: str, mode: str) -> None:
    if target == "/home/agent":
        return
    mount = parse_mount(f"{host}:{target}{mode}")
    assert (str(mount.source), mount.target, mount.read_only) == (host, posixpath.normpath(target), mode != ":rw")


@given(st.lists(paths, min_size=0, max_size=1).map(":".join) | st.lists(paths, min_size=4, max_size=5).map(":".join))
def test_a_mount_spec_with_too_few_or_too_many_parts_is_refused(spec: str) -> None:
    with pytest.raises(InvalidInput, match="--mount"):
        parse_mount(spec)


@given(paths, paths, st.text(string.ascii_lowercase, min_size=1, max_size=3).filter(lambda m: m not in ("ro", "rw")))
def test_a_mount_mode_other_than_ro_or_rw_is_refused(host: str, target: str, mode: str) -> None:
    with pytest.raises(InvalidInput, match="expected HOST:CONTAINER"):
        parse_mount(f"{host}:{target}:{mode}")


@given(segment, paths)
def test_a_relative_host_path_is_refused(host: str, target: str) -> None:
    with pytest.raises(InvalidInput, match="must be absolute"):
        parse_mount(f"{host}:{target}")


@given(paths, st.sampled_from(["/", "/proc", "/sys/x", "/dev", "/tmp/a", "/home/agent", "rel", "/a/../b"]))
def test_a_container_path_a_mount_may_not_take_is_refused(host: str, target: str) -> None:
    with pytest.raises(InvalidInput, match="container path"):
        parse_mount(f"{host}:{target}")


# --- sizes and durations ---------------------------------------------------------------------------------------


@given(st.integers(min_value=6 << 20, max_value=1 << 44))
def test_a_memory_size_reads_back_from_its_shortest_spelling(size: int) -> None:
    assert parse_memory(format_size(size)) == size


@given(st.integers(min_value=6, max_value=100_000), st.sampled_from(["m", "M", "mb", "MiB"]))
def test_a_memory_size_in_mebibytes(number: int, unit: str) -> None:
    assert parse_memory(f"{number}{unit}") == number << 20


@given(st.integers(min_value=0, max_value=(6 << 20) - 1))
def test_a_memory_size_under_6m_is_refused(size: int) -> None:
    with pytest.raises(ValueError):
        parse_memory(str(size))


@given(st.integers(min_value=1, max_value=10**8))
def test_a_duration_reads_back_from_its_shortest_spelling(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
    assert parse_duration(str(seconds)) == seconds


@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from("smhd")), min_size=1, max_size=4))
def test_a_compound_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] for n, unit in parts)
    if total == 0:
        with pytest.raises(ValueError):
            parse_duration(text)
    else:
        assert parse_duration(text) == total
        assert parse_duration(text.upper()) == total


@given(st.integers(0, 10**6), st.integers(1, 999))
def test_fractional_seconds_are_kept(whole: int, millis: int) -> None:
    text = f"{whole}.{millis:03d}"
    assert parse_duration(text) == parse_duration(text + "s") == float(text)
    assert parse_duration(format_duration(float(text))) == float(text)


@given(st.text(alphabet="0123456789.smhdSMHD", max_size=30))
def test_any_duration_taken_reads_back_from_its_spelling_and_is_within_bounds(text: str) -> None:
    # `0.0000001` was taken and shown as `0.000000s`, which is refused; `99999999999999999999d` was taken too
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert 0.001 <= seconds <= 100 * 365.25 * 86400
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["0.0000001", "0.0009", "99999999999999999999d", "36525.1d"])
def test_a_duration_out_of_bounds_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "0", "-1", "1x", "m", "1.5.2s", "inf", "nan", "1 h", "h1", "1e3"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
