// The call page: 1:1 WebRTC video between the fan and the creator, the live meter's clocks,
// and the fan's balance. No inline scripts (CSP): everything is wired from data attributes.
//
// Signaling runs over /ws/calls/<id>/signal (JSON; the server relays it to the other page):
//  * a page that connects says {type: "hello", rtc}; the creator answers a hello with "welcome";
//  * the fan makes every offer (on the creator's hello, or on the welcome to its own hello);
//    the creator only answers, so offers never collide and nothing needs rolling back;
//  * each offer carries a fresh id `n`: answers and ICE candidates of an older negotiation are
//    ignored, so a reload on either side simply starts a new one;
//  * a page whose connection is already up ignores a hello that says the same (only the
//    signaling socket blipped), so a reconnecting socket never tears the video down.
// The page also reports its RTCPeerConnection state ({type: "media"}): the server counts a party
// present for billing while its socket is open and that state is "connected".
(function () {
  "use strict";

  const root = document.querySelector("[data-call-page]");
  if (!root) return;
  const canCall = !!(window.RTCPeerConnection && navigator.mediaDevices);

  const isFan = root.dataset.party === "fan";
  const callId = root.dataset.callId;
  const otherName = root.dataset.otherName || "The other side";
  const remoteVideo = root.querySelector("[data-remote-video]");
  const localVideo = root.querySelector("[data-local-video]");
  const stageStatus = root.querySelector("[data-stage-status]");
  const mediaNote = root.querySelector("[data-media-note]");
  const unmuteButton = root.querySelector("[data-unmute]");
  const OVER = ["ended", "declined", "expired"];
  const BROKEN = ["disconnected", "failed", "closed"];
  let iceServers = [];
  try { iceServers = JSON.parse(root.dataset.iceServers || "[]"); } catch (err) { iceServers = []; }

  let localStream = null;
  let mediaReady = null; // resolves once getUserMedia settled (with or without a stream)
  let pc = null;
  let negotiation = null; // id of the current offer/answer exchange
  let early = []; // candidates that arrived before their offer (creator) or answer (fan)
  let socket = null;
  let retry = 500;
  let stopped = false;
  let replaced = false;
  let peerGone = false;
  let steps = Promise.resolve(); // signaling messages are handled one after the other

  function callStatus() {
    const meter = root.querySelector(".call-meter");
    return meter ? meter.dataset.status : "";
  }
  function rtcState() { return pc ? pc.connectionState : (stopped ? "closed" : "new"); }
  function newId() {
    return (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now();
  }

  // ---- what the stage says ------------------------------------------------------------------
  function render() {
    const state = rtcState();
    const status = callStatus();
    // The other page's socket closing ("peer-left") is news before ICE notices the silence.
    const gone = peerGone || BROKEN.includes(state);
    const over = OVER.includes(status);
    root.dataset.rtcState = state;
    root.dataset.peer = over ? "left" : gone ? "gone" : (state === "connected" ? "here" : "waiting");
    // Over: the stage and its buttons go (app.css); the state panel shows the outcome.
    root.toggleAttribute("data-over", over);
    let text = "";
    if (status === "ended") text = "The call has ended.";
    else if (status === "declined") text = "The call was declined.";
    else if (status === "expired") text = "The call request expired.";
    else if (!canCall) text = "This browser can't make video calls here (it needs WebRTC over HTTPS).";
    else if (replaced) text = "This call is open in another tab or window.";
    else if (gone) text = `${otherName} dropped. Waiting for them to come back…`;
    else if (state === "connected") text = "";
    else if (status === "requested") text = isFan ? `Waiting for ${otherName} to accept…` : "Accept the call to start.";
    else if (state === "connecting") text = `Connecting to ${otherName}…`;
    else text = `Waiting for ${otherName} to join…`;
    stageStatus.textContent = text;
    stageStatus.hidden = !text;
  }

  // ---- camera and microphone ----------------------------------------------------------------
  async function startMedia() {
    try {
      localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      localVideo.srcObject = localStream;
      root.querySelectorAll("[data-toggle]").forEach((button) => { button.disabled = false; });
    } catch (err) {
      localStream = null;
      mediaNote.textContent =
        `Your camera or microphone is not available (${err.name}): ${otherName} won't see or hear you.`;
      mediaNote.hidden = false;
    }
  }

  root.querySelectorAll("[data-toggle]").forEach((button) => {
    button.addEventListener("click", () => {
      if (!localStream) return;
      const video = button.dataset.toggle === "video";
      const on = button.getAttribute("aria-pressed") !== "true";
      (video ? localStream.getVideoTracks() : localStream.getAudioTracks()).forEach((t) => { t.enabled = on; });
      button.setAttribute("aria-pressed", String(on));
      button.textContent = `${video ? "Camera" : "Microphone"}: ${on ? "on" : "off"}`;
    });
  });

  function playRemote() {
    const played = remoteVideo.play();
    if (played && played.catch) {
      played.catch((err) => {
        if (err.name !== "NotAllowedError") return;
        // Autoplay with sound needs a gesture: play muted and offer the sound.
        remoteVideo.muted = true;
        remoteVideo.play().catch(() => {});
        unmuteButton.hidden = false;
      });
    }
  }
  unmuteButton.addEventListener("click", () => {
    remoteVideo.muted = false;
    remoteVideo.play().catch(() => {});
    unmuteButton.hidden = true;
  });

  // ---- the peer connection ------------------------------------------------------------------
  function closePeer() {
    if (pc) {
      const old = pc;
      pc = null;
      old.close();
    }
    remoteVideo.srcObject = null;
  }

  function newPeer() {
    closePeer();
    const peer = new RTCPeerConnection({ iceServers });
    const remote = new MediaStream();
    pc = peer;
    if (localStream) {
      localStream.getTracks().forEach((track) => peer.addTrack(track, localStream));
    } else if (isFan) {
      // Without a camera the offer must still ask for the creator's audio and video.
      peer.addTransceiver("audio", { direction: "recvonly" });
      peer.addTransceiver("video", { direction: "recvonly" });
    }
    peer.ontrack = (event) => {
      if (peer !== pc) return;
      remote.addTrack(event.track);
      if (remoteVideo.srcObject !== remote) {
        remoteVideo.srcObject = remote;
        playRemote();
      }
    };
    peer.onicecandidate = (event) => {
      if (peer !== pc) return;
      send({ type: "candidate", n: negotiation, candidate: event.candidate ? event.candidate.toJSON() : null });
    };
    peer.onconnectionstatechange = () => {
      if (peer !== pc) return;
      if (peer.connectionState === "connected") peerGone = false;
      if (isFan && peer.connectionState === "failed") {
        // The network path broke (not the page): offer again, once, if nothing else did.
        setTimeout(() => {
          if (pc !== peer || stopped) return;
          steps = steps.then(makeOffer).catch((err) => console.warn("call: re-offer failed", err));
        }, 2000);
      }
      render();
      reportMedia();
    };
    render();
    reportMedia();
    return peer;
  }

  async function addCandidate(candidate) {
    if (!candidate || !candidate.candidate || !pc) return; // end of candidates: nothing to add
    try {
      await pc.addIceCandidate(candidate);
    } catch (err) {
      console.warn("call: ICE candidate refused", err);
    }
  }

  async function flushEarly() {
    const mine = early.filter((c) => c.n === negotiation);
    early = [];
    for (const c of mine) await addCandidate(c.candidate);
  }

  async function makeOffer() { // fan
    await mediaReady;
    if (stopped) return;
    negotiation = newId();
    early = [];
    const n = negotiation;
    const peer = newPeer();
    const offer = await peer.createOffer();
    if (peer !== pc) return;
    await peer.setLocalDescription(offer);
    if (peer !== pc) return;
    send({ type: "offer", n, description: peer.localDescription.toJSON() });
  }

  async function answerOffer(message) { // creator
    await mediaReady;
    if (stopped) return;
    negotiation = message.n;
    const peer = newPeer();
    await peer.setRemoteDescription(message.description);
    if (peer !== pc) return;
    const answer = await peer.createAnswer();
    if (peer !== pc) return;
    await peer.setLocalDescription(answer);
    if (peer !== pc) return;
    send({ type: "answer", n: message.n, description: peer.localDescription.toJSON() });
    await flushEarly();
  }

  function alreadyTalking(message) {
    return rtcState() === "connected" && message.rtc === "connected";
  }

  async function handle(message) {
    if (stopped) return;
    switch (message.type) {
      case "hello": // the other page arrived (or its socket came back)
        peerGone = false;
        if (!isFan) send({ type: "welcome", rtc: rtcState() });
        if (alreadyTalking(message)) break;
        if (isFan) await makeOffer();
        else closePeer(); // the fan's new page will offer
        break;
      case "welcome": // the creator's page was there before ours
        peerGone = false;
        if (isFan && !alreadyTalking(message) && (!pc || BROKEN.includes(rtcState()))) await makeOffer();
        break;
      case "offer":
        if (!isFan) await answerOffer(message);
        break;
      case "answer":
        if (isFan && pc && message.n === negotiation && pc.signalingState === "have-local-offer") {
          await pc.setRemoteDescription(message.description);
          await flushEarly();
        }
        break;
      case "candidate":
        if (pc && message.n === negotiation && pc.remoteDescription) await addCandidate(message.candidate);
        else if (early.length < 200) early.push(message);
        break;
      case "peer-left":
        peerGone = true;
        break;
      case "replaced":
        replaced = true;
        stop();
        break;
      case "resync": // the server may have lost messages: start over politely
        send({ type: "hello", rtc: rtcState() });
        break;
      case "error":
        console.warn("call signaling:", message.error);
        break;
      default:
        break;
    }
    render();
  }

  // ---- the signaling socket -----------------------------------------------------------------
  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }
  function reportMedia() { send({ type: "media", state: rtcState() }); }

  function connect() {
    if (stopped || replaced) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + root.dataset.signalPath);
    socket = ws;
    ws.addEventListener("open", () => {
      retry = 500;
      send({ type: "hello", rtc: rtcState() });
      reportMedia();
    });
    ws.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      steps = steps.then(() => handle(message)).catch((err) => console.warn("call: signaling step failed", err));
    });
    ws.addEventListener("close", (event) => {
      if (socket === ws) socket = null;
      if (event.code === 4001) { replaced = true; stop(); }
      if (stopped || replaced) return;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 8000);
    });
  }

  function stop() {
    if (stopped) return;
    stopped = true;
    closePeer();
    if (localStream) localStream.getTracks().forEach((track) => track.stop());
    localVideo.srcObject = null;
    root.querySelectorAll("[data-toggle], [data-unmute], [data-testid=tip-button]").forEach((button) => {
      button.disabled = true;
    });
    unmuteButton.hidden = true;
    // Closed on purpose, with a normal close code: the close handler won't reconnect (stopped).
    if (socket) socket.close(1000, "The call is over.");
    render();
  }

  // ---- the state panel: status changes, clocks, the fan's balance ---------------------------
  let notifyTimer = null;
  function callUpdated() {
    // One re-fetch of the fan's low-balance warning per burst of updates (call.js → htmx).
    clearTimeout(notifyTimer);
    notifyTimer = setTimeout(() => document.body.dispatchEvent(new CustomEvent("call-updated")), 50);
  }
  function stateChanged() {
    if (OVER.includes(callStatus())) stop();
    render();
    callUpdated();
  }
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const target = event.detail && event.detail.target;
    if (!target) return;
    if (target.id === `call-state-${callId}` || target.id === `call-figures-${callId}`) stateChanged();
    else if (target.id === "nav-balance") {
      // /ws/me keeps the nav balance live; the call page shows the same number.
      const nav = document.getElementById("nav-balance");
      const mine = document.getElementById("call-balance");
      if (nav && mine) mine.textContent = nav.textContent.trim();
      callUpdated();
    }
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    // A button's answer swapped into the panel (the same state the push brings).
    const el = event.target;
    if (el instanceof Element && el.closest(`#call-state-${callId}`)) stateChanged();
  });

  const firstSeen = new WeakMap();
  function formatDuration(total) {
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  }
  function tick() {
    const now = performance.now();
    root.querySelectorAll("[data-clock]").forEach((el) => {
      if (!firstSeen.has(el)) firstSeen.set(el, now);
      const passed = el.dataset.running === "1" ? Math.floor((now - firstSeen.get(el)) / 1000) : 0;
      const base = parseInt(el.dataset.seconds, 10) || 0;
      el.textContent = el.dataset.clock === "up" ? formatDuration(base + passed) : String(Math.max(0, base - passed));
    });
  }
  setInterval(tick, 1000);

  // ---- start ---------------------------------------------------------------------------------
  render();
  if (OVER.includes(callStatus())) {
    stopped = true;
    render();
  } else if (!canCall) {
    stopped = true;
  } else {
    mediaReady = startMedia().then(render);
    connect();
  }
})();
