// Small, CSP-friendly glue. No inline handlers anywhere: behaviour lives here.
(function () {
  "use strict";

  // The element that opened the modal (e.g. the Tip button): focus goes back there on close.
  let modalOpener = null;

  document.addEventListener("htmx:afterSwap", (event) => {
    // htmx fires afterSwap on each swapped-in element: `event.target` is the new content, while
    // `event.detail.target` is the old element, already detached after an outerHTML swap.
    const root = event.target;
    if (!(root instanceof Element) || !root.isConnected) return;
    if (root.id === "modal") {
      // Only an opening swap has focus outside the modal; a re-render inside it dropped focus to <body>.
      const active = document.activeElement;
      if (active && active !== document.body && !root.contains(active)) modalOpener = active;
    }
    const invalid = root.matches("[aria-invalid=true]") ? root : root.querySelector("[aria-invalid=true]");
    if (invalid) { invalid.focus(); return; }
    // A freshly opened dialog takes focus (keyboard users land inside it): the chosen amount first,
    // then the message, then a button. One query per choice: a selector list would return the first
    // match in document order, i.e. always the close button.
    const dialog = root.id === "modal" && root.querySelector("[role=dialog]");
    if (dialog) {
      const first = ["[data-autofocus]", "input:not([type=hidden]):checked", "textarea", "button"]
        .map((selector) => dialog.querySelector(selector)).find(Boolean);
      if (first) first.focus();
    }
  });

  // ---- Live tips: every pop leaves after its display time, however it arrived. ----
  function schedulePop(el) {
    if (el.dataset.scheduled) return;
    el.dataset.scheduled = "1";
    const ttl = parseInt(el.dataset.ttl || "4000", 10);
    setTimeout(() => {
      el.classList.add("leaving");
      setTimeout(() => el.remove(), 400);
    }, ttl);
  }
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      for (const node of m.addedNodes) {
        if (!(node instanceof Element)) continue;
        if (node.matches(".tip-pop")) schedulePop(node);
        node.querySelectorAll && node.querySelectorAll(".tip-pop").forEach(schedulePop);
      }
    }
  }).observe(document.documentElement, { childList: true, subtree: true });

  // ---- Live lists stay as long as a reload would show them (`data-keep`): in a tip storm a
  // phone's page would otherwise gain a node per tip for as long as it stays open. The oldest
  // go first: the last child of a list that grows at the top, the first of one that grows at
  // the bottom (`data-oldest="first"`: the pops on #tip-overlay, which leave early then). ----
  function trim(list) {
    const keep = parseInt(list.dataset.keep, 10);
    if (!(keep >= 0)) return;
    const fromStart = list.dataset.oldest === "first";
    while (list.children.length > keep) (fromStart ? list.firstElementChild : list.lastElementChild).remove();
  }
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const list = event.detail && event.detail.target;
    if (list instanceof Element && list.hasAttribute("data-keep")) trim(list);
  });

  // "No tips yet" disappears once the first one lands.
  document.addEventListener("htmx:oobAfterSwap", () => {
    const list = document.getElementById("recent-tips");
    const empty = document.getElementById("no-tips-yet");
    if (list && empty && list.children.length) empty.remove();
  });

  // ---- Calls: a call's state pushed to a page without its panel lands in #call-sink and is
  // dropped (base.html); a finished call request can be dismissed from the notifications. ----
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail && event.detail.target;
    if (target && target.id === "call-sink") event.detail.shouldSwap = false;
  });
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("[data-dismiss-request]");
    const item = button && button.closest(".call-request");
    if (item) item.remove();
  });

  // ---- Modal: close on backdrop click, close buttons and Escape. ----
  function closeModal() {
    const modal = document.getElementById("modal");
    if (modal) modal.innerHTML = "";
    if (modalOpener && modalOpener.isConnected) modalOpener.focus();
    modalOpener = null;
  }
  document.addEventListener("click", (event) => {
    const target = event.target;
    if (!(target instanceof Element)) return;
    // A click on the backdrop itself (outside the dialog) or on a close button.
    if (target.classList.contains("modal-backdrop") || target.closest("button[data-close-modal]")) closeModal();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.querySelector("#modal [role=dialog]")) closeModal();
  });

  // ---- Tip form: message counter; a preset click clears the custom amount. ----
  document.addEventListener("input", (event) => {
    const el = event.target;
    if (el instanceof HTMLTextAreaElement && el.dataset.counter) {
      const counter = document.getElementById(el.dataset.counter);
      if (counter) counter.textContent = String(el.value.length);
    }
    if (el instanceof HTMLInputElement && el.name === "customAmount" && el.value) {
      el.form && el.form.querySelectorAll("input[name=amountTokens]").forEach((r) => { r.checked = false; });
    }
  });
  document.addEventListener("change", (event) => {
    const el = event.target;
    if (el instanceof HTMLInputElement && el.name === "amountTokens" && el.checked && el.form) {
      const custom = el.form.querySelector("input[name=customAmount]");
      if (custom) custom.value = "";
    }
  });
})();

/* === phone-calls: begin === */
// Tables that scroll sideways say so: a .table-wrap wider inside than out gets data-overflows
// (app.css shows a cue and edge shadows). Checked on load, after every htmx swap and on resize.
(function () {
  "use strict";
  function mark() {
    document.querySelectorAll(".table-wrap").forEach((wrap) => {
      wrap.toggleAttribute("data-overflows", wrap.scrollWidth > wrap.clientWidth + 1);
    });
  }
  let pending = null;
  function soon() {
    if (pending) return;
    pending = requestAnimationFrame(() => { pending = null; mark(); });
  }
  document.addEventListener("DOMContentLoaded", mark);
  document.addEventListener("htmx:afterSettle", soon);
  document.addEventListener("toggle", soon, true); // a <details> opened: its table now has a size
  window.addEventListener("resize", soon);
})();
/* === phone-calls: end === */
/* === phone-stream: begin === */
// The main menu on a phone (base.html): the button folds the nav's links away (app.css shows them
// while aria-expanded is true); it works from the keyboard like any button, and closes on Escape
// (focus back on the button) and on a click outside the nav. No htmx needed.
(function () {
  "use strict";

  function toggles() { return document.querySelectorAll("[data-nav-toggle]"); }

  function setOpen(button, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const button = target && target.closest("[data-nav-toggle]");
    if (button) {
      setOpen(button, button.getAttribute("aria-expanded") !== "true");
      return;
    }
    toggles().forEach((b) => {
      if (b.getAttribute("aria-expanded") === "true" && !(target && b.closest("nav").contains(target))) setOpen(b, false);
    });
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    toggles().forEach((b) => {
      if (b.getAttribute("aria-expanded") !== "true") return;
      setOpen(b, false);
      b.focus();
    });
  });

  // The tip modal's preview (tips/_preview.html) says when the custom amount can't be sent: the
  // field is then marked invalid and described by it, until the preview says otherwise.
  document.addEventListener("htmx:afterSwap", (event) => {
    const preview = event.target;
    if (!(preview instanceof Element) || preview.id !== "tip-preview" || !preview.isConnected) return;
    const custom = document.getElementById("tip-custom");
    const field = preview.closest("fieldset");
    if (!custom || document.getElementById("tip-amount-error")) return;  // the server's error stands
    const invalid = preview.hasAttribute("data-invalid");
    if (invalid) {
      custom.setAttribute("aria-invalid", "true");
      custom.setAttribute("aria-describedby", "tip-preview");
    } else {
      custom.removeAttribute("aria-invalid");
      custom.removeAttribute("aria-describedby");
    }
    if (field) field.classList.toggle("has-error", invalid);
  });
})();
/* === phone-stream: end === */
/* === chat (issue 18): begin === */
// The stream page's chat (templates/chat/): the list sticks to the bottom unless the reader
// scrolled up (then a "New messages" pill takes them down), "Load earlier messages" keeps the
// lines in view where they were, a message arriving twice (the sender's own answer and the
// socket) shows once, a deleted one leaves every page, and the field keeps the focus.
(function () {
  "use strict";

  const NEAR_BOTTOM = 48; // px: closer than this to the end counts as "at the bottom"
  let stuck = true; // whether the list follows new lines
  let before = null; // the scroll box's height and position before a swap into it

  function scroller() { return document.getElementById("chat-scroll"); }
  function pill() { return document.getElementById("chat-new"); }

  function atBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM; }

  function toBottom() {
    const box = scroller();
    if (box) box.scrollTop = box.scrollHeight;
    stuck = true;
    const button = pill();
    if (button) button.hidden = true;
  }

  function inChat(el) { return el instanceof Element && Boolean(el.closest("#chat")); }

  document.addEventListener("scroll", (event) => {
    const box = scroller();
    if (!box || event.target !== box) return;
    stuck = atBottom(box);
    if (stuck && pill()) pill().hidden = true;
  }, true);

  document.addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.closest("#chat-new")) {
      toBottom();
      const box = scroller();
      if (box) box.focus();
    }
  });

  // Before anything is swapped into the chat: drop lines the page has already, carry out
  // deletions, and note where the reader was.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const detail = event.detail || {};
    const target = detail.target;
    if (!inChat(target)) return;
    const box = scroller();
    before = box ? { height: box.scrollHeight, top: box.scrollTop, prepend: false } : null;
    if (target.id !== "chat-list" || !(detail.fragment instanceof Element)) return;
    const fragment = detail.fragment;
    if (before) before.prepend = fragment.hasAttribute("data-chat-prepend");
    fragment.querySelectorAll("[data-chat-remove]").forEach((marker) => {
      const gone = document.getElementById(marker.getAttribute("data-chat-remove"));
      if (gone && inChat(gone)) gone.remove();
      marker.remove();
    });
    Array.from(fragment.children).forEach((line) => {
      if (line.id && document.getElementById(line.id)) line.remove();
    });
    if (!fragment.children.length) detail.shouldSwap = false;
  });

  // A page that follows the chat keeps its newest lines (data-keep-lines on #chat-list): the
  // older ones go, from a message on (the earlier lines are fetched before a message), and
  // "Load earlier messages" now starts before the oldest message left.
  function keepNewest() {
    const list = document.getElementById("chat-list");
    const keep = list ? parseInt(list.dataset.keepLines, 10) : NaN;
    if (!(keep > 0) || list.children.length <= keep) return;
    const lines = Array.from(list.children);
    const first = lines.slice(lines.length - keep).find((line) => line.classList.contains("chat-message"));
    const button = document.querySelector("#chat-earlier [data-path]");
    if (!first || !button) return;
    for (const line of lines) {
      if (line === first) break;
      line.remove();
    }
    button.setAttribute("hx-get", button.dataset.path + "?before=" + first.id.slice("chat-".length));
    button.hidden = false;
    const start = button.nextElementSibling;
    if (start) start.hidden = true;
    htmx.process(button);
  }

  // After: follow the end, or keep the reader's place and offer the pill.
  function afterSwap(target) {
    const box = scroller();
    if (!box || !inChat(target)) return;
    const was = before;
    before = null;
    if (was && was.prepend) {
      box.scrollTop = was.top + (box.scrollHeight - was.height);
    } else if (stuck) {
      keepNewest();
      box.scrollTop = box.scrollHeight;
    } else if (was && box.scrollHeight > was.height && pill()) {
      pill().hidden = false;
    }
  }
  document.addEventListener("htmx:oobAfterSwap", (event) => afterSwap(event.detail && event.detail.target));
  document.addEventListener("htmx:wsAfterMessage", () => {
    // A (re)connect replaced the whole history: a page at the bottom stays there.
    const box = scroller();
    if (box && stuck) box.scrollTop = box.scrollHeight;
  });

  // The creator's Delete: the room's socket removes the line everywhere; should this page's
  // socket be down, the answer (204) removes it here.
  document.addEventListener("htmx:afterRequest", (event) => {
    const button = event.target;
    if (!(button instanceof Element) || !button.hasAttribute("data-chat-delete") || !event.detail.successful) return;
    const line = button.closest("li");
    if (line && line.isConnected) line.remove();
  });

  // The form swaps itself after each send: the field gets the focus back (cleared, or with
  // its error); the reader's own message takes them to the end.
  document.addEventListener("htmx:afterSwap", (event) => {
    const form = event.target;
    if (!(form instanceof Element) || form.id !== "chat-form" || !form.isConnected) return;
    const field = document.getElementById("chat-text");
    if (field) field.focus();
    if (!field || !field.hasAttribute("aria-invalid")) toBottom();
  });

  function start() {
    const box = scroller();
    if (box) box.scrollTop = box.scrollHeight;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
/* === chat (issue 18): end === */
/* ==== tipmenu (issue 18) ==== */
// The tip menu editor re-renders itself on every edit: after "Add item" the new row's label
// takes the focus (else the focus stays on the button that was pressed, as htmx keeps it).
document.addEventListener("htmx:afterSwap", (event) => {
  const editor = event.target instanceof Element ? event.target.closest("#tip-menu") : null;
  const fresh = editor && editor.querySelector("[data-new-row]");
  if (fresh) {
    fresh.removeAttribute("data-new-row");
    fresh.focus();
  }
});
/* ==== end tipmenu ==== */
