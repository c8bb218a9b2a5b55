"""The web chat's tokens (several per group, labelled, revocable) and topic names, on both backends; migration 0010."""

from __future__ import annotations

import pytest

from kanmon.store import Group, NewMessage, NotFound, Store, downgrade, schema_drift, upgrade


def test_a_group_has_as_many_tokens_as_were_added_each_revocable_alone(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    store.add_group(Group(folder="other"))
    laptop = store.add_web_token("corp", "h-laptop", label="laptop")
    phone = store.add_web_token("corp", "h-phone", label="phone")
    store.add_web_token("other", "h-other")
    assert [(t.id, t.label) for t in store.list_web_tokens("corp")] == [(laptop.id, "laptop"), (phone.id, "phone")]
    assert store.web_token_hashes("corp") == ["h-laptop", "h-phone"]
    group, hashes = store.group_and_web_token_hashes("corp")
    assert group is not None and group.folder == "corp" and hashes == ["h-laptop", "h-phone"]
    assert store.group_and_web_token_hashes("nobody") == (None, [])

    assert store.revoke_web_token("other", laptop.id) is False  # another group's token is not this one's to revoke
    assert store.revoke_web_token("corp", laptop.id) is True
    assert store.revoke_web_token("corp", laptop.id) is False
    assert store.web_token_hashes("corp") == ["h-phone"]
    assert store.web_token_hashes("other") == ["h-other"]


def test_setting_the_token_revokes_every_other_of_that_group_only(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    store.add_group(Group(folder="other"))
    store.add_web_token("corp", "h-1")
    store.add_web_token("corp", "h-2")
    store.add_web_token("other", "h-other")
    store.set_group_web_token("corp", "h-3", label="fresh")
    assert store.web_token_hashes("corp") == ["h-3"]
    store.set_group_web_token("corp", None)
    assert store.web_token_hashes("corp") == []
    assert store.web_token_hashes("other") == ["h-other"]


def test_renewing_a_labelled_token_revokes_that_label_only(store: Store) -> None:
    """`gated demo`'s link is new at each start; the tokens an operator made for the demo group keep working."""
    store.add_group(Group(folder="demo"))
    store.add_group(Group(folder="other"))
    store.renew_web_token("demo", "h-demo-1", label="demo")
    store.add_web_token("demo", "h-phone", label="Ana's phone")
    store.add_web_token("other", "h-other", label="demo")
    renewed = store.renew_web_token("demo", "h-demo-2", label="demo")
    assert renewed.label == "demo"
    assert store.web_token_hashes("demo") == ["h-phone", "h-demo-2"]
    assert store.web_token_hashes("other") == ["h-other"]  # another group's token of that label is not touched
    with pytest.raises(NotFound):
        store.renew_web_token("nobody", "h", label="demo")


def test_tokens_need_a_group_and_go_with_it(store: Store) -> None:
    with pytest.raises(NotFound):
        store.add_web_token("nobody", "h")
    with pytest.raises(NotFound):
        store.set_group_web_token("nobody", "h")
    store.add_group(Group(folder="corp"))
    store.add_web_token("corp", "h")
    store.remove_group("corp")
    assert store.list_web_tokens() == []
    store.add_group(Group(folder="corp"))  # added again: the old link does not come back
    assert store.web_token_hashes("corp") == []


def test_topics_are_listed_with_their_names_and_named_empty_topics_first(store: Store) -> None:
    for topic in ("a", "b", "a"):
        store.put_message(NewMessage(chat_jid="web:corp", content=topic, sender="web:x", topic=topic))
    store.name_topic("web:corp", "a", "Trip plans")
    store.name_topic("web:corp", "fresh", "Not yet said")
    store.name_topic("web:other", "b", "elsewhere")
    listed = [(t.topic, t.name, t.messages) for t in store.chat_topics("web:corp")]
    assert listed == [("fresh", "Not yet said", 0), ("a", "Trip plans", 2), ("b", "", 1)]

    store.name_topic("web:corp", "a", "Renamed")
    store.name_topic("web:corp", "fresh", "")  # forgotten: a topic without messages or name is no topic
    assert [(t.topic, t.name) for t in store.chat_topics("web:corp")] == [("a", "Renamed"), ("b", "")]
    assert store.topic_names("web:corp").keys() == {"a"}


def test_a_named_topic_past_the_limit_is_not_listed_as_empty(store: Store) -> None:
    for topic in ("old", "new"):
        store.put_message(NewMessage(chat_jid="web:corp", content=topic, sender="web:x", topic=topic))
    store.name_topic("web:corp", "old", "Old one")
    assert [t.topic for t in store.chat_topics("web:corp", limit=1)] == ["new"]


def test_migrating_moves_each_group_s_one_token_into_the_table_and_back(empty_store_url: str) -> None:
    store = Store.open(empty_store_url)
    upgrade(store.engine, "0010")  # the revision before web tokens
    with store.engine.begin() as conn:
        for folder, token in (("corp", "'h-corp'"), ("none", "NULL")):
            conn.exec_driver_sql(
                "INSERT INTO registered_groups (folder, name, added_at, web_token)"
                f" VALUES ('{folder}', '{folder}', CURRENT_TIMESTAMP, {token})"
            )
        conn.exec_driver_sql(
            "INSERT INTO sessions (group_folder, topic, session_id, updated_at)"
            " VALUES ('corp', '', 's', CURRENT_TIMESTAMP)"
        )
    upgrade(store.engine, "0011")
    assert schema_drift(store.engine) == [] or _later_revisions_exist()
    assert [(t.group_folder, t.token_hash, t.label) for t in store.list_web_tokens()] == [
        ("corp", "h-corp", "migrated")
    ]
    assert store.get_session("corp") is not None  # the column went without rebuilding (and cascading) the table
    store.add_web_token("corp", "h-newer")

    downgrade(store.engine, "0010")
    with store.engine.connect() as conn:
        rows: dict[str, str | None] = dict(
            conn.exec_driver_sql("SELECT folder, web_token FROM registered_groups").all()
        )
    assert rows == {"corp": "h-newer", "none": None}
    store.close()


def _later_revisions_exist() -> bool:
    from kanmon.store import head_revision

    return head_revision() != "0011"
