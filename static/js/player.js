// The stream player: HLS from the media server with a short-lived playback token.
//
// The token comes from /streams/<id>/playback-token (our own session) and is renewed at half
// life; hls.js sends it as `Authorization: Bearer` on every playlist and segment request, so a
// segment URL copied out of the page plays for no one. Browsers without MediaSource that play
// HLS natively get it in the playlist URL's `token` query.
//
// What the viewer sees (the [data-player-status] line over the video):
//   "Loading the video…"      until frames play, and again while it buffers;
//   "Waiting for the stream…" the creator is broadcasting but the media server has no playlist
//                             yet (404): asked again every 2 s;
//   "Reconnecting…"           a network error: retried with a growing pause (1 s … 10 s);
//   a media error             hls.js's own recovery (recoverMediaError, then swapping codecs);
//   "no access" / "not live"  the app refuses a new token (403 / 409): the player stops.
// The video starts muted (browsers allow muted autoplay) with a "Tap to unmute" button.
// When the page replaces the player (the stream ended, the encoder left) everything stops.
(function () {
  "use strict";

  const RETRY_MAX_MS = 10000;

  class Refused extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function fetchToken(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 403 || response.status === 404 || response.status === 409) {
      let message = "This video is not available.";
      try { message = (await response.json()).error || message; } catch (err) { /* keep the default */ }
      throw new Refused(response.status, message);
    }
    if (!response.ok) throw new Error(`playback token: HTTP ${response.status}`);
    return response.json();
  }

  class Player {
    constructor(video) {
      this.video = video;
      this.box = video.closest(".player-state");
      this.status = this.box.querySelector("[data-player-status]");
      this.statusText = this.box.querySelector("[data-player-status-text]");
      this.unmute = this.box.querySelector("[data-unmute]");
      this.src = video.dataset.hlsSrc;
      this.token = null;
      this.hls = null;
      this.timers = new Set();
      this.retryMs = 1000;
      this.refusals = 0;
      this.stopped = false;
    }

    show(text) {
      this.statusText.textContent = text;
      this.status.hidden = false;
    }

    later(fn, ms) {
      const id = setTimeout(() => { this.timers.delete(id); if (this.alive()) fn(); }, ms);
      this.timers.add(id);
    }

    alive() {
      if (!this.stopped && !this.video.isConnected) this.stop();
      return !this.stopped;
    }

    stop(message) {
      this.stopped = true;
      this.timers.forEach(clearTimeout);
      this.timers.clear();
      if (this.hls) { this.hls.destroy(); this.hls = null; }
      this.video.removeAttribute("src");
      if (message && this.video.isConnected) {
        this.show(this.played ? `The video stopped. ${message}` : message);
        this.status.querySelector(".player-spinner")?.remove();
        // A next step: the reloaded page shows what is possible now (the ticket gate, the end).
        const reload = document.createElement("button");
        reload.type = "button";
        reload.className = "button small";
        reload.textContent = "Reload";
        reload.addEventListener("click", () => window.location.reload());
        this.status.append(reload);
        this.video.hidden = true;
        this.unmute.hidden = true;
      }
    }

    async renewToken() {
      try {
        this.token = await fetchToken(this.video.dataset.tokenUrl);
        return true;
      } catch (err) {
        if (err instanceof Refused) { this.stop(err.message); return false; }
        return this.token !== null;  // keep the old token; the next renewal tries again
      }
    }

    async start() {
      this.show("Loading the video…");
      this.bindVideo();
      if (!(await this.renewToken())) {
        if (!this.stopped) { this.show("The video could not be loaded. Retrying…"); this.later(() => this.start(), 3000); }
        return;
      }
      const renew = async () => {
        await this.renewToken();
        if (this.alive()) this.later(renew, Math.max(5, this.token.expiresIn / 2) * 1000);
      };
      this.later(renew, Math.max(5, this.token.expiresIn / 2) * 1000);
      this.load();
    }

    load() {
      if (window.Hls && window.Hls.isSupported()) {
        if (this.hls) this.hls.destroy();
        const hls = new window.Hls({
          xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${this.token.token}`),
          liveSyncDurationCount: 2,
        });
        this.hls = hls;
        hls.on(window.Hls.Events.MANIFEST_PARSED, () => { this.retryMs = 1000; this.play(); });
        hls.on(window.Hls.Events.FRAG_LOADED, () => { this.retryMs = 1000; this.refusals = 0; });
        hls.on(window.Hls.Events.ERROR, (event, data) => { if (data.fatal) this.fatal(data); });
        hls.loadSource(this.src);
        hls.attachMedia(this.video);
      } else if (this.video.canPlayType("application/vnd.apple.mpegurl")) {
        this.video.src = `${this.src}?token=${encodeURIComponent(this.token.token)}`;
        this.play();
      } else {
        this.stop("This browser cannot play the video. Try a recent Chrome, Firefox, Edge or Safari.");
      }
    }

    play() {
      const played = this.video.play();
      if (played && played.catch) played.catch(() => { /* autoplay refused: the controls still work */ });
    }

    fatal(data) {
      const Hls = window.Hls;
      const code = data.response ? data.response.code : 0;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        this.show("Reconnecting…");
        if (!this.mediaRecovered) { this.mediaRecovered = true; this.hls.recoverMediaError(); return; }
        if (!this.codecsSwapped) { this.codecsSwapped = true; this.hls.swapAudioCodec(); this.hls.recoverMediaError(); return; }
        this.mediaRecovered = this.codecsSwapped = false;
        this.later(() => this.load(), this.backoff());
        return;
      }
      if (code === 404) {
        // The encoder is connected but the media server has written no playlist yet.
        this.show("Waiting for the stream…");
        this.later(() => this.load(), 2000);
        return;
      }
      if (code === 401 || code === 403) {
        // The media server refuses our token: get a new one (it may have expired while the tab
        // slept); the app refusing it too (refund, end, cancel) stops the player there.
        this.refusals += 1;
        this.show("Checking your access…");
        this.later(async () => {
          if (!(await this.renewToken())) return;
          if (this.refusals > 3) { this.stop("The media server refuses the video. Try again later."); return; }
          this.load();
        }, this.refusals === 1 ? 0 : this.backoff());
        return;
      }
      this.show("Reconnecting…");
      this.later(() => this.load(), this.backoff());
    }

    backoff() {
      const wait = this.retryMs;
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
      return wait;
    }

    bindVideo() {
      const video = this.video;
      const syncUnmute = () => { this.unmute.hidden = !video.muted || this.stopped; };
      video.addEventListener("playing", () => { this.played = true; this.status.hidden = true; });
      video.addEventListener("waiting", () => { if (!this.stopped) this.show("Loading the video…"); });
      video.addEventListener("volumechange", syncUnmute);
      this.unmute.addEventListener("click", () => { video.muted = false; this.play(); syncUnmute(); });
      syncUnmute();
    }
  }

  function start(video) {
    if (video.dataset.playerStarted) return;
    video.dataset.playerStarted = "1";
    const player = new Player(video);
    video.pmPlayer = player;
    player.start();
  }

  function scan(root) {
    const scope = root instanceof Element ? root : document;
    scope.querySelectorAll("video[data-hls-src]").forEach(start);
  }

  document.addEventListener("DOMContentLoaded", () => scan(document));
  document.addEventListener("htmx:load", (event) => scan(event.target));

  // A pushed player state that shows what is already shown (a socket reconnect's sync) is not
  // swapped in: replacing the <video> would restart playback.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target;
    const incoming = event.detail.fragment && event.detail.fragment.firstElementChild;
    if (target && target.id === "player-state" && incoming && incoming.dataset.key === target.dataset.key) {
      event.detail.shouldSwap = false;
    }
  });
  // The player leaves the page (stream ended, encoder left, navigation): stop loading.
  document.addEventListener("htmx:beforeCleanupElement", (event) => {
    const el = event.target;
    if (el instanceof Element) {
      const video = el.matches("video[data-hls-src]") ? el : el.querySelector("video[data-hls-src]");
      if (video && video.pmPlayer) video.pmPlayer.stop();
    }
  });
})();
