// The stream player: HLS from the media server with a short-lived playback token.
// The token comes from /streams/<id>/playback-token (our own session) and is renewed before it
// expires; hls.js sends it as `Authorization: Bearer` on every playlist/segment request, and
// browsers that play HLS natively (Safari) get it in the playlist URL's `token` query.
(function () {
  "use strict";

  async function fetchToken(video) {
    const response = await fetch(video.dataset.tokenUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`playback token: HTTP ${response.status}`);
    return response.json();
  }

  async function start(video) {
    if (video.dataset.playerStarted) return;
    video.dataset.playerStarted = "1";
    let current;
    try {
      current = await fetchToken(video);
    } catch (err) {
      video.insertAdjacentHTML("afterend", '<p class="player-placeholder">The video could not be loaded. Reload the page to try again.</p>');
      return;
    }
    const renew = async () => {
      if (!video.isConnected) return;  // the page moved on (status change, navigation)
      try { current = await fetchToken(video); } catch (err) { /* keep the old one; hls.js retries */ }
      setTimeout(renew, Math.max(5, current.expiresIn / 2) * 1000);
    };
    setTimeout(renew, Math.max(5, current.expiresIn / 2) * 1000);
    const src = video.dataset.hlsSrc;
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({
        xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${current.token}`),
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = `${src}?token=${encodeURIComponent(current.token)}`;
    }
  }

  function scan(root) {
    const scope = root instanceof Element ? root : document;
    scope.querySelectorAll("video[data-hls-src]").forEach(start);
  }

  document.addEventListener("DOMContentLoaded", () => scan(document));
  document.addEventListener("htmx:load", (event) => scan(event.target));
})();
