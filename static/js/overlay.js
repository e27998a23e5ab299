// The OBS source (tips/overlay.html): alerts play ONE AT A TIME, in the order they arrived.
// Pushed pops land in the hidden #alert-queue (in arrival order: the queue itself); the first
// waits there until the stage is free, then shows on #tip-overlay for its data-ttl, fades out, and
// the next one follows. Each pop carries the creator's sound (data-sound, "" for silent);
// #alert-sound holds the current one for a pop that says nothing.
// A tip storm (hundreds a second) would queue hours of alerts: while more than BUSY wait, each
// shows for BUSY_MS at most, and at most MAX_WAITING wait; beyond that the smallest waiting one
// (lowest tier, then oldest) is dropped. Every tip still lands in the creator's lists.
(function () {
  "use strict";
  const inbox = document.getElementById("alert-queue");
  const stage = document.getElementById("tip-overlay");
  if (!inbox || !stage) return;
  const FADE_MS = 400;
  const BUSY = 3;
  const BUSY_MS = 1500;
  const MAX_WAITING = 50;
  let playing = false;

  function tierOf(pop) {
    const match = /(?:^|\s)tier-(\d+)(?:\s|$)/.exec(pop.className);
    return match ? parseInt(match[1], 10) : 1;
  }

  function dropSmallest() {
    while (inbox.children.length > MAX_WAITING) {
      let smallest = inbox.firstElementChild;
      for (const pop of inbox.children) if (tierOf(pop) < tierOf(smallest)) smallest = pop;
      smallest.remove();
    }
  }

  function soundOf(pop) {
    if (pop.hasAttribute("data-sound")) return pop.getAttribute("data-sound");
    const current = document.getElementById("alert-sound");
    return current ? current.getAttribute("data-sound") || "" : "";
  }

  function play(name) {
    const audio = name && document.getElementById("sound-" + name);
    if (!audio) return;
    try {
      audio.currentTime = 0;
      const started = audio.play();
      // OBS plays at once; a browser tab without a gesture may refuse: the alert still shows.
      if (started && started.catch) started.catch(() => {});
    } catch (e) { /* no sound is better than no alert */ }
  }

  function next() {
    const pop = inbox.firstElementChild;
    if (playing || !pop) return;
    playing = true;
    stage.appendChild(pop);
    const sound = soundOf(pop);
    stage.setAttribute("data-playing-sound", sound);
    play(sound);
    const full = parseInt(pop.dataset.ttl || "4000", 10);
    const ttl = inbox.children.length > BUSY ? Math.min(full, BUSY_MS) : full;
    setTimeout(() => {
      pop.classList.add("leaving");
      setTimeout(() => {
        pop.remove();
        playing = false;
        next();
      }, FADE_MS);
    }, ttl);
  }

  new MutationObserver(() => { dropSmallest(); next(); }).observe(inbox, { childList: true });
  next();
})();
