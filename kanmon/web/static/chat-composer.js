// kanmon web chat: the composer (text, and a file to attach), for chat.js (loaded before it).
// window.kanmonComposer({els, api, authHeaders, detailOf, showError, askForToken, topicOf, sent}) wires the form.
//
// Enter sends (Shift+Enter is a new line). A file chosen goes with the next send as a multipart upload
// (POST /web/<folder>/uploads), the typed text with it; text alone is POST /web/<folder>/messages. Either only stores
// the message: it appears when the topic's stream brings it back.
"use strict";

window.kanmonComposer = function ({ els, api, authHeaders, detailOf, showError, askForToken, topicOf, sent }) {
  async function send() {
    const content = els.input.value;
    const file = chosenFile();
    if ((!content.trim() && !file) || topicOf() === null) return;
    els.send.disabled = true;
    showError("");
    try {
      const response = file
        ? await upload(file, content)
        : await fetch(api + "/messages", {
            method: "POST",
            headers: authHeaders({ "Content-Type": "application/json" }),
            body: JSON.stringify({ content: content, topic: topicOf() }),
          });
      if (response.status === 401) {
        askForToken("token rejected");
        return;
      }
      if (!response.ok) {
        showError("not sent: " + (await detailOf(response)));
        return;
      }
      els.input.value = "";
      clearFile();
      autosize();
      sent();
    } catch (err) {
      showError("not sent: " + err.message);
    } finally {
      els.send.disabled = false;
      els.input.focus();
    }
  }

  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });

  els.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });

  function autosize() {
    els.input.style.height = "auto";
    els.input.style.height = Math.min(els.input.scrollHeight, 200) + "px";
    els.input.style.overflowY = els.input.scrollHeight > 200 ? "auto" : "hidden";
  }
  els.input.addEventListener("input", autosize);

  function chosenFile() {
    return els.fileInput && els.fileInput.files.length ? els.fileInput.files[0] : null;
  }

  function clearFile() {
    if (!els.fileInput) return;
    els.fileInput.value = "";
    els.fileName.textContent = "";
    els.fileName.hidden = true;
  }

  function upload(file, content) {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("content", content);
    form.append("topic", topicOf());
    return fetch(api + "/uploads", { method: "POST", headers: authHeaders(), body: form });
  }

  if (els.fileInput) {
    els.fileInput.addEventListener("change", () => {
      const file = chosenFile();
      els.fileName.textContent = file ? file.name : "";
      els.fileName.hidden = !file;
    });
  }
};
