// kanmon web chat: renaming the topic shown, for chat.js (loaded before it).
// window.kanmonRename({els, call, topicOf, labelOf, renamed}) wires it and gives { close }.
//
// *Rename* (or a double-click on the title) turns the title into a field; Enter or Save stores the name
// (PUT /web/<folder>/topic-names: the topic's id stays), Escape or Cancel leaves it as it was; an empty name forgets
// it. renamed(topic, name) is told the name as stored.
"use strict";

window.kanmonRename = function ({ els, call, topicOf, labelOf, renamed }) {
  function open() {
    const label = labelOf(topicOf());
    els.renameInput.value = label === topicOf() ? "" : label; // a topic shown by its id has no name yet
    els.title.hidden = true;
    els.rename.hidden = true;
    els.renameForm.hidden = false;
    els.renameInput.focus();
    els.renameInput.select();
  }

  function close() {
    els.renameForm.hidden = true;
    els.title.hidden = false;
    els.rename.hidden = false;
  }

  els.rename.addEventListener("click", open);
  els.title.addEventListener("dblclick", open);
  els.renameForm.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  els.renameForm.addEventListener("reset", close);
  els.renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const topic = topicOf();
    const response = await call("/topic-names", {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ topic: topic, name: els.renameInput.value }),
    });
    if (!response) return;
    const stored = await response.json();
    close();
    renamed(topic, stored.name);
  });

  return { close };
};
