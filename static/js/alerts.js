// /creator/settings → Alerts: the "Play" button previews the sound chosen in its select.
// Loaded with the section, which htmx may swap in again: the listener is added once.
(function () {
  "use strict";
  if (window.alertSoundPreview) return;
  window.alertSoundPreview = true;
  let audio = null;
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("[data-play-sound]");
    const select = button && document.querySelector(button.getAttribute("data-play-sound"));
    if (!select || !select.value) return;
    if (audio) audio.pause();
    audio = new Audio(select.dataset.soundBase + select.value + ".ogg");
    button.setAttribute("data-playing", select.value);
    const started = audio.play();
    if (started && started.catch) started.catch(() => {});
  });
})();
