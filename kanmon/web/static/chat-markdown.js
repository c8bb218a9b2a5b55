// kanmon web chat: an agent's reply as Markdown, for chat.js (loaded before it, after the vendored marked and
// DOMPurify: vendor/MANIFEST.json names their versions). window.kanmonMarkdown() gives { render }: render(text) is
// the element that shows the reply.
//
// The reply is the agent's, so it is untrusted. HTML written in it is shown as text, as chat apps do (marked's html
// tokens are escaped); marked turns the Markdown into HTML, DOMPurify keeps only harmless markup of that (no script,
// event handler, javascript: URL, form, style or image), links open in a new tab without a referrer, and the page's
// Content-Security-Policy stands behind all three. Each code block gets a Copy button.
"use strict";

window.kanmonMarkdown = function () {
  const purify = window.DOMPurify;
  const ready = window.marked && typeof window.marked.Marked === "function" && purify && purify.isSupported;
  const escape = (text) =>
    text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  const marked = ready ? new window.marked.Marked({ gfm: true, breaks: true, async: false }) : null;
  if (marked) {
    marked.use({
      renderer: {
        html(token) {
          return token.block ? "<p>" + escape(token.text) + "</p>" : escape(token.text);
        },
      },
    });
  }
  const SANITIZE = {
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "svg", "math"],
    FORBID_ATTR: ["style", "srcset"],
    RETURN_DOM_FRAGMENT: true,
  };

  if (ready) {
    purify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A" && node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
      }
    });
  }

  function render(text) {
    const holder = document.createElement("div");
    holder.className = "msg-text";
    if (!ready) {
      holder.textContent = text; // the renderer did not load: the text as it is, never as HTML
      return holder;
    }
    holder.classList.add("md");
    const html = marked.parse(text);
    holder.append(purify.sanitize(html, SANITIZE));
    for (const pre of holder.querySelectorAll("pre")) withCopy(pre);
    return holder;
  }

  function withCopy(pre) {
    const box = document.createElement("div");
    box.className = "code";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy the code");
    button.addEventListener("click", async () => {
      const ok = await copy((pre.querySelector("code") || pre).textContent);
      button.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
    pre.replaceWith(box);
    box.append(button, pre);
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text); // only in a secure context (https, or localhost)
      return true;
    } catch (_) {
      // plain http on another address: the older way still works on a click
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "copy-source";
      document.body.append(area);
      area.select();
      let ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (_) {
        ok = false;
      }
      area.remove();
      return ok;
    }
  }

  return { render };
};
