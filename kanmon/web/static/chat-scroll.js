// kanmon web chat: where the transcript is scrolled to, for chat.js (loaded before it).
// window.kanmonScroll(list, jump) gives { added, reset, toBottom }.
//
// A reader at the bottom stays at the bottom: when a message comes, when the window is resized or the phone turned,
// when an image loads. A reader scrolled up stays on the message they were reading through all of these; new
// messages do not move them, and the jump button ("New messages") says there is more below.
"use strict";

window.kanmonScroll = function (list, jump) {
  const NEAR = 48; // pixels from the bottom that still count as "at the bottom"
  let atBottom = true;
  let anchor = null; // { item, offset }: the first message in view and how far below the top it starts

  function remember() {
    atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < NEAR;
    anchor = null;
    if (atBottom) {
      jump.hidden = true;
      return;
    }
    // the first message that starts in view (its top is what the reader reads from); else the one filling it
    const top = list.scrollTop;
    const bottom = top + list.clientHeight;
    let holder = null;
    for (const item of list.children) {
      if (item.offsetTop >= top && item.offsetTop < bottom) holder = item;
      else if (item.offsetTop < top && item.offsetTop + item.offsetHeight > top) holder = item;
      else continue;
      if (item.offsetTop >= top) break;
    }
    if (holder) anchor = { item: holder, offset: holder.offsetTop - top };
  }

  function restore() {
    if (atBottom) list.scrollTop = list.scrollHeight;
    else if (anchor && anchor.item.isConnected) list.scrollTop = anchor.item.offsetTop - anchor.offset;
  }

  // a size change (the window, the list, a message whose image loaded) keeps the reader where they were
  const sizes = new ResizeObserver(restore);
  sizes.observe(list);
  list.addEventListener("scroll", remember, { passive: true });

  function toBottom() {
    atBottom = true;
    anchor = null;
    jump.hidden = true;
    list.scrollTop = list.scrollHeight;
  }

  jump.addEventListener("click", toBottom);

  // a message was put into the list: follow it if at the bottom (or it is the reader's own), else say so
  function added(item, own) {
    sizes.observe(item);
    if (own || atBottom) toBottom();
    else {
      jump.hidden = false;
      restore();
    }
  }

  // another topic: a new list, read from its end
  function reset() {
    toBottom();
  }

  return { added, reset, toBottom };
};
