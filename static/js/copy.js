// Copy buttons and "Show" toggles for the values creators paste into OBS
// (templates/creator/_copy_field.html). No inline scripts (CSP): wired from data attributes.
(function () {
  "use strict";

  function field(button, attr) { return document.getElementById(button.getAttribute(attr)); }
  function say(input, text) {
    const status = document.getElementById(`${input.id}-status`);
    if (status) status.textContent = text;
  }
  function reveal(input, shown) {
    input.type = shown ? "text" : "password";
    const toggle = document.querySelector(`[data-reveal="${input.id}"]`);
    if (toggle) toggle.setAttribute("aria-pressed", String(shown));
  }
  function selectAll(input) {
    // No clipboard here (an insecure page, or permission refused): select the whole value
    // for the person to copy. A masked value can't be copied by hand, so it is shown first.
    if (input.type === "password") reveal(input, true);
    input.focus();
    input.select();
    input.setSelectionRange(0, input.value.length);
    say(input, "Selected — copy it with Ctrl+C (or long-press → Copy).");
  }

  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element)) return;
    const toggle = event.target.closest("[data-reveal]");
    if (toggle) {
      const input = field(toggle, "data-reveal");
      if (input) reveal(input, input.type === "password");
      return;
    }
    const copy = event.target.closest("[data-copy]");
    const input = copy && field(copy, "data-copy");
    if (!input) return;
    say(input, "");
    if (!navigator.clipboard || !navigator.clipboard.writeText) {
      selectAll(input);
      return;
    }
    navigator.clipboard.writeText(input.value).then(() => say(input, "Copied"), () => selectAll(input));
  });
})();
