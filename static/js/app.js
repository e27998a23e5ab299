// Small, CSP-friendly glue. No inline handlers anywhere: behaviour lives here.
(function () {
  "use strict";

  document.addEventListener("htmx:afterSwap", (event) => {
    // htmx fires afterSwap on each swapped-in element: `event.target` is the new content, while
    // `event.detail.target` is the old element, already detached after an outerHTML swap.
    const root = event.target;
    if (!(root instanceof Element) || !root.isConnected) return;
    const invalid = root.matches("[aria-invalid=true]") ? root : root.querySelector("[aria-invalid=true]");
    if (invalid) { invalid.focus(); return; }
    // A freshly opened dialog takes focus (keyboard users land inside it).
    if (root.id === "modal") {
      const first = root.querySelector("[role=dialog] input:not([type=hidden]):checked, [role=dialog] textarea, [role=dialog] button");
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

  // "No tips yet" disappears once the first one lands.
  document.addEventListener("htmx:oobAfterSwap", () => {
    const list = document.getElementById("recent-tips");
    const empty = document.getElementById("no-tips-yet");
    if (list && empty && list.children.length) empty.remove();
  });

  // ---- Modal: close on backdrop click, close buttons and Escape. ----
  function closeModal() {
    const modal = document.getElementById("modal");
    if (modal) modal.innerHTML = "";
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
