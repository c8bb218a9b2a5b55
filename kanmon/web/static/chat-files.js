// kanmon web chat: a message's files, for chat.js (loaded before it). window.kanmonFiles(root, authHeaders, detailOf)
// gives { filesOf }: filesOf(files) is the element that shows a message's attachments (ChatEvent.attachments).
"use strict";

window.kanmonFiles = function (root, authHeaders, detailOf) {
  // The user's uploads and the agent's files alike: each is fetched from its url with the token (an <img src> could
  // not send it) and shown from a blob: URL, an image inline and anything else as a download link with its name and
  // size. A file kanmon keeps no copy of (no url) is only named.
  function filesOf(files) {
    const list = document.createElement("div");
    list.className = "msg-files";
    list.hidden = files.length === 0;
    for (const file of files) {
      const holder = document.createElement(file.inline ? "figure" : "div");
      holder.className = file.inline ? "msg-file msg-image" : "msg-file";
      list.append(holder);
      if (file.url) {
        holder.textContent = file.name + " (loading…)";
        loadFile(root + file.url, file, holder);
      } else {
        holder.textContent = file.name + " (not kept)";
      }
    }
    return list;
  }

  async function loadFile(url, file, holder) {
    try {
      const response = await fetch(url, { headers: authHeaders() });
      if (!response.ok) throw new Error(await detailOf(response));
      const blobUrl = URL.createObjectURL(await response.blob());
      holder.textContent = "";
      if (file.inline) {
        const image = document.createElement("img");
        image.src = blobUrl;
        image.alt = file.name;
        const caption = document.createElement("figcaption");
        caption.textContent = file.name;
        holder.append(image, caption);
      } else {
        const link = document.createElement("a");
        link.href = blobUrl;
        link.download = file.name;
        link.textContent = "↓ " + file.name + " (" + sizeText(file.size) + ")";
        holder.append(link);
      }
    } catch (err) {
      holder.textContent = file.name + " (not available: " + err.message + ")";
    }
  }

  function sizeText(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
    return (bytes / 1024 / 1024).toFixed(1) + " MiB";
  }

  return { filesOf };
};
