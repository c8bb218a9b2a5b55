"""PII redaction (issue 16 item 5): with ``privacy.redact: [telegram]`` no real id of a Telegram sender or chat
reaches the agent, whatever field carries it, while replies, routing and the store keep the real ones.

A real ``gated run`` with the process runtime; the agent is a few lines of Python that appends the input document it
reads on stdin to a file in its group folder and answers. Planted: a message whose sender, chat, quoted sender and
reply-to id, text and attachment name all carry the ids; a system message naming the chat and the sender; a task
whose prompt names them, fired into the chat. Every byte the agent received is then searched for the real ids.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from kanmon.gateway.privacy import Privacy
from kanmon.store import NewMessage, Store
from tests.gated_process import Gated
from tests.probe_world import gated_cli as gated
from tests.probe_world import wait_for

SALT_VARIABLE = "KANMON_TEST_PII_SALT"
SALT = "a-test-salt-of-enough-characters-0123456789"
CHAT = "telegram:-1009988776655"
SENDER = "5551239876"
QUOTED = "7774441112"
FILE_DATA = base64.b64encode(b"x").decode()
REAL_IDS = (CHAT, CHAT.partition(":")[2], SENDER, QUOTED)

CAPTURE_AGENT = """\
import json, os, re, sys
document = sys.stdin.read()
with open("stdin.jsonl", "a") as file:
    file.write(json.dumps(json.loads(document)) + "\\n")
paths = re.findall(r'path=\\\\"([^\\\\"]+)', document)
missing = [path for path in paths if not os.path.exists(path)]
print("---ARIZUKO_OUTPUT_START---")
print(json.dumps({"status": "ok", "result": json.dumps({"paths": len(paths), "missing": missing})}))
print("---ARIZUKO_OUTPUT_END---", flush=True)
"""


def test_no_real_id_reaches_the_agent_and_replies_still_go_to_the_real_chat(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "kanmon.yaml").write_text(
        f"secrets:\n  PII_SALT:\n    env: {SALT_VARIABLE}\nprivacy:\n  redact: [telegram]\n  salt: PII_SALT\n"
    )
    gated(data_dir, "group", "add", "corp")
    group_dir = data_dir / "groups" / "corp"
    (group_dir / "capture.py").write_text(CAPTURE_AGENT)
    gated(data_dir, "group", "set", "corp", "--runtime", "process", "--command", f"{sys.executable} -I capture.py")
    gated(data_dir, "route", "add", "--target", "corp")
    gated(data_dir, "task", "add", "corp", "--every", "1d", "--chat", CHAT,
          "--prompt", f"Summarise what {SENDER} said in {CHAT} today")  # fmt: skip
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    store.add_system_message("corp", origin="gateway", event="note", body=f"{SENDER} joined {CHAT}; {QUOTED} left it")
    store.put_message(
        NewMessage(
            chat_jid=CHAT,
            id=f"m-{SENDER}-1",
            sender=SENDER,
            sender_name="Alice",
            content=f"my id is {SENDER}, this is {CHAT}, and @{QUOTED} said hi",
            reply_to_id=f"m-{QUOTED}-0",
            reply_to_sender=QUOTED,
            reply_to_text=f"hi from {QUOTED} in {CHAT}",
            attachments=[
                {"name": f"photo-{SENDER}.txt", "mime": "text/plain", "data": base64.b64encode(b"x").decode()}
            ],
        )
    )
    gate = Gated(data_dir, tmp_path / "gated.log", args=["--log-level", "debug"],
                 env={SALT_VARIABLE: SALT, "KANMON_POLL_INTERVAL": "0.2"})  # fmt: skip
    try:
        gate.start()
        gate.wait_logged("gated running", timeout=60)
        captured = group_dir / "stdin.jsonl"
        wait_for(lambda: captured.exists() and captured.read_text().count("\n") >= 1, "the first run", gate)
        gated(data_dir, "task", "run-now", "1")
        wait_for(lambda: captured.read_text().count("\n") >= 2, "the task's run", gate)
        wait_for(lambda: len(_replies(store)) >= 2, "both replies", gate)
        assert gate.stop() == 0
        replies = _replies(store)
    finally:
        gate.stop()
        store.close()

    received = captured.read_text()
    assert [real for real in REAL_IDS if real in received] == []
    documents = [json.loads(line) for line in received.splitlines()]
    privacy = Privacy(frozenset({"telegram"}), SALT)
    first, task = documents
    assert first["chatJid"] == privacy.chat(CHAT) and first["sender"] == privacy.user(SENDER)
    prompt = first["prompt"]
    assert f'sender="Alice" sender_id="{privacy.user(SENDER)}"' in prompt  # the name is kept
    assert f'chat_id="{privacy.chat(CHAT)}" platform="telegram"' in prompt
    assert f"my id is {privacy.user(SENDER)}, this is {privacy.chat(CHAT)}, and @{privacy.user(QUOTED)}" in prompt
    assert f"{privacy.user(SENDER)} joined {privacy.chat(CHAT)}" in prompt  # the system message
    assert f"photo-{privacy.user(SENDER)}.txt" in prompt  # the attachment's name and path
    assert f"Summarise what {privacy.user(SENDER)} said in {privacy.chat(CHAT)}" in task["prompt"]
    # the store, routing and replies keep the real ids; the agent found its file where the prompt said
    assert {reply.chat_jid for reply in replies} == {CHAT}
    assert [json.loads(reply.content) for reply in replies] == [
        {"paths": 1, "missing": []},
        {"paths": 0, "missing": []},
    ]
    assert gate.logged().count(SALT) == 0


def _replies(store: Store) -> list[NewMessage]:
    return [row for row in store.new_messages(0, 1000) if row.run_id is not None]  # type: ignore[misc]
