// kanmon web chat: where the page keeps its web token, for chat.js (loaded before it).
// window.kanmonToken(folder) gives { fromUrl, stored, set, forget, remembered, ask }.
//
// By default the token lives for the browser session only: in sessionStorage (this tab, and the tabs it opens), and
// a new tab of the same chat asks the open ones for it over a BroadcastChannel (same origin only), so opening the chat
// in another tab needs no new link. "Remember on this device" (opt-in) also keeps it in localStorage, until it is
// forgotten or refused. The token never goes into a cookie or a URL the server sees.
"use strict";

window.kanmonToken = function (folder) {
  const key = "kanmon-web-token:" + folder;
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("kanmon-web-token") : null;

  function fromUrl() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get("token");
    if (!token) return null;
    history.replaceState(null, "", location.pathname + location.search); // out of the address bar (and history)
    sessionStorage.setItem(key, token);
    if (remembered()) localStorage.setItem(key, token); // a new link replaces the remembered one
    return token;
  }

  function stored() {
    const token = sessionStorage.getItem(key) || localStorage.getItem(key);
    if (token) sessionStorage.setItem(key, token);
    return token;
  }

  function remembered() {
    return localStorage.getItem(key) !== null;
  }

  function set(token, remember) {
    sessionStorage.setItem(key, token);
    if (remember) localStorage.setItem(key, token);
    else localStorage.removeItem(key);
  }

  function forget() {
    sessionStorage.removeItem(key);
    localStorage.removeItem(key);
  }

  // another tab of this chat asks for the token: the tabs that have one answer
  if (channel) {
    channel.addEventListener("message", (event) => {
      const message = event.data || {};
      if (message.folder !== folder || message.type !== "ask") return;
      const token = sessionStorage.getItem(key);
      if (token) channel.postMessage({ type: "token", folder: folder, token: token });
    });
  }

  // the token of another open tab of this chat, or null after `wait` milliseconds
  function ask(wait) {
    return new Promise((resolve) => {
      if (!channel) {
        resolve(null);
        return;
      }
      const answered = (event) => {
        const message = event.data || {};
        if (message.folder !== folder || message.type !== "token" || typeof message.token !== "string") return;
        done(message.token);
      };
      const timer = setTimeout(() => done(null), wait);
      function done(token) {
        clearTimeout(timer);
        channel.removeEventListener("message", answered);
        if (token) sessionStorage.setItem(key, token);
        resolve(token);
      }
      channel.addEventListener("message", answered);
      channel.postMessage({ type: "ask", folder: folder });
    });
  }

  return { fromUrl, stored, set, forget, remembered, ask };
};
