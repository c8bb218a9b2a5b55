// kanmon web chat: plain script, no build step.
//
// Everything shown comes from one place, the topic's event stream (GET /web/<folder>/stream): the user's own
// messages, other people's, the agent's replies (Markdown, made safe: chat-markdown.js), status lines (⏳), command
// answers and errors, each once, in seq order. Sending (POST /web/<folder>/messages) only stores a message; it appears
// when the stream brings it back. GET /me says who this browser speaks as, so its own messages are set apart.
//
// The web token arrives in the URL fragment (#token=…) and is kept as chat-token.js says. Requests send it as
// `Authorization: Bearer`; the stream puts it in its URL (?token=): EventSource cannot set headers.
//
// `working` events (no id, never stored) say whether a run works on a topic of the chat, the one shown or another:
// the topic list marks each, the topic shown says "agent is working…" (from the run's start to its first reply or
// end). A (re)connected stream says it again for every topic still being worked on.
"use strict";

(function () {
  const body = document.body;
  const root = body.dataset.root || "";
  const folder = body.dataset.folder;
  const api = root + "/web/" + folder;
  const { filesOf } = window.kanmonFiles(root, authHeaders, detailOf); // chat-files.js
  const keeper = window.kanmonToken(folder); // chat-token.js
  const markdown = window.kanmonMarkdown(); // chat-markdown.js; chat-composer.js is wired below
  const topicKey = "kanmon-web-topic:" + folder;

  const $ = (id) => document.getElementById(id);
  const els = {
    topics: $("topics"),
    newTopic: $("new-topic"),
    title: $("topic-title"),
    rename: $("rename"),
    renameForm: $("rename-form"),
    renameInput: $("rename-input"),
    messages: $("messages"),
    jump: $("jump"),
    working: $("working"),
    error: $("error"),
    composer: $("composer"),
    input: $("message-input"),
    send: $("send"),
    connection: $("connection"),
    remember: $("remember"),
    forget: $("forget"),
    dialog: $("token-dialog"),
    tokenForm: $("token-form"),
    tokenInput: $("token-input"),
    tokenRemember: $("token-remember"),
    fileInput: $("file-input"),
    fileName: $("file-name"),
  };
  const scroll = window.kanmonScroll(els.messages, els.jump); // chat-scroll.js

  let token = keeper.fromUrl() || keeper.stored();
  let topic = sessionStorage.getItem(topicKey);
  let me = null; // {sender, name}: who this browser speaks as (GET /me)
  let source = null; // the EventSource of the current topic
  let lastSeq = 0; // the last event of the current topic shown
  let seen = new Set(); // seqs shown, so a replay after a reconnect never doubles a message
  let reconnectTimer = null;
  let knownTopics = [];
  const busy = new Set(); // topics a run is working on now (the stream's `working` events)

  function askForToken(why) {
    token = null;
    keeper.forget();
    closeStream();
    setConnection(why || "token needed", "bad");
    els.tokenRemember.checked = false;
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
    keeper.set(value, els.tokenRemember.checked);
    els.remember.checked = els.tokenRemember.checked;
    els.tokenInput.value = "";
    if (typeof els.dialog.close === "function") els.dialog.close();
    else els.dialog.removeAttribute("open");
    start();
  });

  els.remember.addEventListener("change", () => {
    if (token) keeper.set(token, els.remember.checked);
  });

  els.forget.addEventListener("click", () => {
    els.forget.closest("details").open = false;
    askForToken("token forgotten");
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

  // one authorised request; null (and the reason shown) when it failed
  async function call(path, options) {
    let response;
    try {
      const headers = authHeaders(options && options.headers);
      response = await fetch(api + path, Object.assign({ cache: "no-store" }, options, { headers: headers }));
    } catch (err) {
      showError("cannot reach the server: " + err.message);
      return null;
    }
    if (response.status === 401) {
      askForToken("token rejected");
      return null;
    }
    if (!response.ok) {
      showError(await detailOf(response));
      return null;
    }
    return response;
  }

  function showError(text) {
    els.error.textContent = text || "";
    els.error.hidden = !text;
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

  function topicLabel(id) {
    const known = knownTopics.find((t) => t.topic === id);
    if (known && known.name) return known.name;
    return id === "" ? "(main)" : id;
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
    const response = await call("/topics");
    if (!response) return;
    knownTopics = (await response.json()).topics;
    renderTopics();
  }

  function renderTopics() {
    const list = knownTopics.slice();
    if (topic !== null && !list.some((t) => t.topic === topic)) {
      list.unshift({ topic: topic, name: "", last_time: null, messages: 0 });
    }
    els.topics.replaceChildren(
      ...list.map((t) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "topic" + (t.topic === topic ? " current" : "") + (busy.has(t.topic) ? " busy" : "");
        button.dataset.topic = t.topic;
        const name = document.createElement("span");
        name.className = "topic-name";
        name.textContent = topicLabel(t.topic);
        const mark = document.createElement("span");
        mark.className = "topic-busy";
        mark.title = "agent is working";
        mark.hidden = !busy.has(t.topic);
        const time = document.createElement("span");
        time.className = "topic-time";
        time.textContent = t.last_time && t.messages ? when(t.last_time) : "new";
        button.append(name, mark, time);
        button.addEventListener("click", () => switchTopic(t.topic));
        item.append(button);
        return item;
      })
    );
    if (topic !== null && els.renameForm.hidden) els.title.textContent = topicLabel(topic);
  }

  function switchTopic(name) {
    if (name === topic && source) return;
    topic = name;
    sessionStorage.setItem(topicKey, name);
    rename.close();
    els.messages.replaceChildren();
    scroll.reset();
    seen = new Set();
    lastSeq = 0;
    showError("");
    renderTopics();
    openStream();
    els.input.focus();
  }

  els.newTopic.addEventListener("click", () => switchTopic(newTopicName()));

  // renaming (chat-rename.js): the name is stored, then shown in the list and the title
  const rename = window.kanmonRename({ els, call, topicOf: () => topic, labelOf: topicLabel, renamed: renamed });

  function renamed(id, name) {
    const known = knownTopics.find((t) => t.topic === id);
    if (known) known.name = name;
    else knownTopics.unshift({ topic: id, name: name, last_time: null, messages: 0 });
    renderTopics();
  }

  // ------------------------------------------------------------------------------------------- working
  function setBusy(name, on) {
    if (on === busy.has(name)) return;
    if (on) busy.add(name);
    else busy.delete(name);
    els.working.hidden = !busy.has(topic);
    if (on && !knownTopics.some((t) => t.topic === name) && name !== topic) loadTopics(); // someone else's new topic
    else renderTopics();
  }

  function clearBusy() {
    busy.clear();
    els.working.hidden = true;
    renderTopics();
  }

  // ------------------------------------------------------------------------------------------- the stream
  function closeStream() {
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (source) source.close();
    source = null;
    clearBusy();
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
      clearBusy(); // the stream says so again right after its replay for every topic still being worked on
    });
    current.addEventListener("message", (event) => {
      if (source !== current) return;
      show(JSON.parse(event.data));
    });
    current.addEventListener("working", (event) => {
      if (source !== current) return;
      const data = JSON.parse(event.data);
      setBusy(data.topic, data.working === true);
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

  function senderLabel(message) {
    const name = message.sender_name || message.sender.replace(/^web:/, "");
    // two anonymous people are told apart by the hash of their address
    return name === "Anonymous" ? name + " · " + message.sender.replace(/^web:anon-/, "").slice(0, 4) : name;
  }

  function show(message) {
    if (message.topic !== topic || seen.has(message.seq)) return;
    seen.add(message.seq);
    lastSeq = Math.max(lastSeq, message.seq);
    const agent = message.role === "assistant";
    const own = !agent && (me === null || message.sender === me.sender);
    const status = agent && message.content.startsWith("⏳");
    const item = document.createElement("li");
    item.className = "msg " + (agent ? "msg-assistant" : own ? "msg-user" : "msg-other") + (status ? " msg-status" : "");
    item.dataset.seq = String(message.seq);
    if (!own && !agent) {
      const who = document.createElement("div");
      who.className = "msg-sender";
      who.textContent = senderLabel(message);
      item.append(who);
    }
    let text;
    if (agent && !status) {
      text = markdown.render(message.content);
    } else {
      text = document.createElement("div");
      text.className = "msg-text";
      text.textContent = message.content;
    }
    const meta = document.createElement("div");
    meta.className = "msg-meta";
    meta.textContent = (agent ? "agent" : own ? "you" : senderLabel(message)) + " · " + when(message.time);
    item.append(text, filesOf(message.attachments || []), meta);
    // in seq order even if an event ever arrives late
    const after = Array.from(els.messages.children).find((li) => Number(li.dataset.seq) > message.seq);
    els.messages.insertBefore(item, after || null);
    scroll.added(item, own);
    const known = knownTopics.find((t) => t.topic === message.topic);
    if (!known) {
      knownTopics.unshift({ topic: message.topic, name: "", last_time: message.time, messages: 1 });
      renderTopics();
    } else if (known.last_time !== message.time || !known.messages) {
      known.last_time = message.time;
      known.messages = Math.max(known.messages, 1);
      renderTopics();
    }
  }

  // ------------------------------------------------------------------------------------------- sending
  const topicOf = () => topic;
  window.kanmonComposer({ els, api, authHeaders, detailOf, showError, askForToken, topicOf, sent: renderTopics });

  // ------------------------------------------------------------------------------------------- start
  async function start() {
    if (!token) token = await keeper.ask(300); // another open tab of this chat may have it
    if (!token) {
      askForToken();
      return;
    }
    els.remember.checked = keeper.remembered();
    const who = await call("/me");
    if (!token) return;
    if (who) me = await who.json();
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
