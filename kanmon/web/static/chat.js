// kanmon web chat: plain script, no build step.
//
// Everything shown comes from one place, the topic's event stream (GET /web/<folder>/stream): the user's own
// messages, the agent's replies, status lines (⏳), command answers and errors, each once, in seq order. Sending
// (POST /web/<folder>/messages) only stores a message; it appears when the stream brings it back.
//
// The web token arrives in the URL fragment (#token=…), never sent to the server; it is kept in sessionStorage and
// removed from the address bar. Requests send it as `Authorization: Bearer`; the stream has to put it in its URL
// (?token=) because EventSource cannot set headers.
//
// `working` events (no id, never stored) say whether a run is working on the topic: the page shows "agent is
// working…" from the run's start to its first reply or its end. A (re)connected stream says it again if so.
"use strict";

(function () {
  const body = document.body;
  const root = body.dataset.root || "";
  const folder = body.dataset.folder;
  const api = root + "/web/" + folder;
  const { filesOf } = window.kanmonFiles(root, authHeaders, detailOf); // chat-files.js
  const tokenKey = "kanmon-web-token:" + folder;
  const topicKey = "kanmon-web-topic:" + folder;

  const $ = (id) => document.getElementById(id);
  const els = {
    topics: $("topics"),
    newTopic: $("new-topic"),
    title: $("topic-title"),
    messages: $("messages"),
    working: $("working"),
    error: $("error"),
    composer: $("composer"),
    input: $("message-input"),
    send: $("send"),
    connection: $("connection"),
    dialog: $("token-dialog"),
    tokenForm: $("token-form"),
    tokenInput: $("token-input"),
    fileInput: $("file-input"),
    fileName: $("file-name"),
  };

  let token = takeToken();
  let topic = sessionStorage.getItem(topicKey);
  let source = null; // the EventSource of the current topic
  let lastSeq = 0; // the last event of the current topic shown
  let seen = new Set(); // seqs shown, so a replay after a reconnect never doubles a message
  let reconnectTimer = null;
  let knownTopics = [];

  function takeToken() {
    const params = new URLSearchParams(location.hash.slice(1));
    const fromUrl = params.get("token");
    if (fromUrl) {
      sessionStorage.setItem(tokenKey, fromUrl);
      history.replaceState(null, "", location.pathname + location.search);
      return fromUrl;
    }
    return sessionStorage.getItem(tokenKey);
  }

  function askForToken(why) {
    token = null;
    sessionStorage.removeItem(tokenKey);
    closeStream();
    setConnection(why || "token needed", "bad");
    if (typeof els.dialog.showModal === "function" && !els.dialog.open) {
      els.dialog.showModal();
    } else {
      els.dialog.setAttribute("open", "");
    }
    els.tokenInput.focus();
  }

  els.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = els.tokenInput.value.trim();
    if (!value) return;
    token = value;
    sessionStorage.setItem(tokenKey, value);
    els.tokenInput.value = "";
    if (typeof els.dialog.close === "function") els.dialog.close();
    else els.dialog.removeAttribute("open");
    start();
  });

  function authHeaders(extra) {
    return Object.assign({ Authorization: "Bearer " + token }, extra || {});
  }

  async function detailOf(response) {
    try {
      const data = await response.json();
      if (typeof data.detail === "string") return data.detail;
      if (Array.isArray(data.detail)) return data.detail.map((d) => d.msg).join("; ");
    } catch (_) {
      /* not JSON */
    }
    return response.status + " " + response.statusText;
  }

  function showError(text) {
    els.error.textContent = text || "";
    els.error.hidden = !text;
  }

  function setWorking(on) {
    els.working.hidden = !on;
  }

  function setConnection(text, state) {
    els.connection.textContent = text;
    els.connection.dataset.state = state || "";
  }

  // ------------------------------------------------------------------------------------------- topics
  function newTopicName() {
    const bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    return "t-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function topicLabel(name) {
    return name === "" ? "(main)" : name;
  }

  function when(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const today = new Date().toDateString() === date.toDateString();
    return today
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  async function loadTopics() {
    if (!token) return;
    let response;
    try {
      response = await fetch(api + "/topics", { headers: authHeaders(), cache: "no-store" });
    } catch (err) {
      showError("cannot reach the server: " + err.message);
      return;
    }
    if (response.status === 401) {
      askForToken("token rejected");
      return;
    }
    if (!response.ok) {
      showError(await detailOf(response));
      return;
    }
    knownTopics = (await response.json()).topics;
    renderTopics();
  }

  function renderTopics() {
    const list = knownTopics.slice();
    if (topic !== null && !list.some((t) => t.topic === topic)) {
      list.unshift({ topic: topic, last_time: null, messages: 0 });
    }
    els.topics.replaceChildren(
      ...list.map((t) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "topic" + (t.topic === topic ? " current" : "");
        button.dataset.topic = t.topic;
        const name = document.createElement("span");
        name.className = "topic-name";
        name.textContent = topicLabel(t.topic);
        const time = document.createElement("span");
        time.className = "topic-time";
        time.textContent = t.last_time ? when(t.last_time) : "new";
        button.append(name, time);
        button.addEventListener("click", () => switchTopic(t.topic));
        item.append(button);
        return item;
      })
    );
  }

  function switchTopic(name) {
    if (name === topic && source) return;
    topic = name;
    sessionStorage.setItem(topicKey, name);
    els.title.textContent = topicLabel(name);
    els.messages.replaceChildren();
    seen = new Set();
    lastSeq = 0;
    showError("");
    renderTopics();
    openStream();
    els.input.focus();
  }

  els.newTopic.addEventListener("click", () => switchTopic(newTopicName()));

  // ------------------------------------------------------------------------------------------- the stream
  function closeStream() {
    setWorking(false);
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (source) source.close();
    source = null;
  }

  function openStream() {
    closeStream();
    if (!token || topic === null) return;
    const query = new URLSearchParams({ topic: topic, after: String(lastSeq), token: token });
    const current = new EventSource(api + "/stream?" + query.toString());
    source = current;
    setConnection("connecting…", "wait");
    current.addEventListener("open", () => {
      if (source !== current) return;
      setConnection("live", "ok");
      setWorking(false); // the stream says so again right after its replay if a run is still working
    });
    current.addEventListener("message", (event) => {
      if (source !== current) return;
      show(JSON.parse(event.data));
    });
    current.addEventListener("working", (event) => {
      if (source !== current) return;
      const data = JSON.parse(event.data);
      if (data.topic === topic) setWorking(data.working === true);
    });
    current.addEventListener("error", () => {
      if (source !== current) return;
      if (current.readyState === EventSource.CONNECTING) {
        // the browser reconnects by itself, sending Last-Event-ID: only what was missed comes back
        setConnection("reconnecting…", "wait");
        return;
      }
      // closed for good (e.g. the token was refused, or the server was away): find out, then start again
      setConnection("offline", "bad");
      current.close();
      reconnectTimer = setTimeout(async () => {
        await loadTopics();
        if (token && source === current) openStream();
      }, 3000);
    });
  }

  function show(message) {
    if (message.topic !== topic || seen.has(message.seq)) return;
    seen.add(message.seq);
    lastSeq = Math.max(lastSeq, message.seq);
    const status = message.role === "assistant" && message.content.startsWith("⏳");
    const item = document.createElement("li");
    item.className = "msg msg-" + message.role + (status ? " msg-status" : "");
    item.dataset.seq = String(message.seq);
    const text = document.createElement("div");
    text.className = "msg-text";
    text.textContent = message.content;
    const meta = document.createElement("div");
    meta.className = "msg-meta";
    const who = message.role === "user" ? message.sender.replace(/^web:/, "") : "agent";
    meta.textContent = who + " · " + when(message.time);
    item.append(text, filesOf(message.attachments || []), meta);
    // in seq order even if an event ever arrives late
    const after = Array.from(els.messages.children).find((li) => Number(li.dataset.seq) > message.seq);
    const atBottom = els.messages.scrollHeight - els.messages.scrollTop - els.messages.clientHeight < 80;
    els.messages.insertBefore(item, after || null);
    if (atBottom || message.role === "user") item.scrollIntoView({ block: "end" });
    const known = knownTopics.find((t) => t.topic === message.topic);
    if (!known) {
      knownTopics.unshift({ topic: message.topic, last_time: message.time, messages: 1 });
      renderTopics();
    } else if (known.last_time !== message.time) {
      known.last_time = message.time;
      renderTopics();
    }
  }

  // ------------------------------------------------------------------------------------------- sending
  async function send() {
    const content = els.input.value;
    const file = chosenFile();
    if ((!content.trim() && !file) || !token) return;
    els.send.disabled = true;
    showError("");
    try {
      const response = file
        ? await upload(file, content)
        : await fetch(api + "/messages", {
            method: "POST",
            headers: authHeaders({ "Content-Type": "application/json" }),
            body: JSON.stringify({ content: content, topic: topic }),
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
      renderTopics();
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

  // ------------------------------------------------------------------------------------------- files in
  // A file chosen in the composer goes with the next send as a multipart upload (POST /web/<folder>/uploads), the
  // typed text with it; the transcript shows the file like any other (filesOf above).

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
    form.append("topic", topic);
    return fetch(api + "/uploads", { method: "POST", headers: authHeaders(), body: form });
  }

  if (els.fileInput) {
    els.fileInput.addEventListener("change", () => {
      const file = chosenFile();
      els.fileName.textContent = file ? file.name : "";
      els.fileName.hidden = !file;
    });
  }

  // ------------------------------------------------------------------------------------------- start
  async function start() {
    if (!token) {
      askForToken();
      return;
    }
    await loadTopics();
    if (!token) return;
    if (topic === null) topic = knownTopics.length ? knownTopics[0].topic : newTopicName();
    const chosen = topic;
    topic = null;
    switchTopic(chosen);
  }

  setInterval(loadTopics, 30000);
  start();
})();
