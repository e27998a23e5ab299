// Small, CSP-friendly glue. No inline handlers anywhere: behaviour lives here.
document.addEventListener("htmx:afterSwap", (event) => {
  // Move focus to the first field error after a form re-renders, for keyboard and screen-reader users.
  // htmx fires afterSwap on each swapped-in element: `event.target` is the new content, while
  // `event.detail.target` is the old element, already detached after an outerHTML swap.
  const root = event.target;
  if (!(root instanceof Element) || !root.isConnected) return;
  const invalid = root.matches("[aria-invalid=true]") ? root : root.querySelector("[aria-invalid=true]");
  if (invalid) invalid.focus();
});
