// Small, CSP-friendly glue. No inline handlers anywhere: behaviour lives here.
document.addEventListener("htmx:afterSwap", (event) => {
  // Move focus to the first field error after a form re-renders, for keyboard and screen-reader users.
  const invalid = event.detail.target.querySelector && event.detail.target.querySelector("[aria-invalid=true]");
  if (invalid) invalid.focus();
});
