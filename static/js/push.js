/* "Notifications on this device" (templates/push/_device.html): registers the service
   worker (/sw.js), asks the browser for permission only when the button is clicked,
   subscribes with the site's VAPID key and stores the subscription with the chosen
   topics (POST /api/me/push/subscriptions); "Turn off" removes this page's topics and,
   when none is left, the subscription (DELETE) and the browser's subscription too.
   States shown: checking, on, off, blocked by the browser, not supported. */
(function () {
  "use strict";

  function base64UrlToBytes(text) {
    const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function sameBytes(buffer, bytes) {
    if (!buffer) return false;
    const view = new Uint8Array(buffer);
    return view.length === bytes.length && view.every((b, i) => b === bytes[i]);
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  }

  function setUp(root) {
    const key = root.dataset.pushKey;
    if (!key) return;
    const api = root.dataset.pushApi;
    const status = root.querySelector("[data-push-status]");
    const error = root.querySelector("[data-push-error]");
    const onButton = root.querySelector("[data-push-on]");
    const onLabel = root.querySelector("[data-push-on-label]");
    const offButton = root.querySelector("[data-push-off]");
    const boxes = Array.from(root.querySelectorAll("input[name=topic]"));
    const pageTopics = boxes.map((box) => box.value);
    const serverKey = base64UrlToBytes(key);
    let registration = null;
    let deviceTopics = [];  // what the server holds for this browser, all pages' topics

    function show(state, text) {
      status.dataset.state = state;
      status.textContent = text;
      root.dataset.state = state;
    }

    function showError(text) {
      error.textContent = text || "";
      error.hidden = !text;
      root.querySelector(".push-topics").classList.toggle("has-error", Boolean(text));
    }

    function busy(button, on) {
      root.setAttribute("aria-busy", on ? "true" : "false");
      button.classList.toggle("htmx-request", on);
      onButton.disabled = on;
      offButton.disabled = on;
    }

    function render() {
      const mine = deviceTopics.filter((t) => pageTopics.includes(t));
      if (Notification.permission === "denied") {
        show("blocked", "Blocked by the browser: allow notifications for this site in the browser's settings, then reload this page.");
        onButton.hidden = true;
        offButton.hidden = mine.length === 0;
        boxes.forEach((box) => { box.disabled = true; });
        return;
      }
      boxes.forEach((box) => { box.disabled = false; });
      if (mine.length) {
        boxes.forEach((box) => { box.checked = mine.includes(box.value); });
        const labels = boxes.filter((box) => box.checked).map((box) => box.parentElement.textContent.trim());
        show("on", "On for this device: " + labels.join(", ") + ".");
        onLabel.textContent = "Save choices";
        offButton.hidden = false;
      } else {
        show("off", "Off on this device.");
        onLabel.textContent = "Turn on notifications";
        offButton.hidden = true;
      }
      onButton.hidden = false;
    }

    async function request(method, body) {
      const response = await fetch(api, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok && !(method === "DELETE" && response.status === 404)) {
        throw new Error(data.error || "Something went wrong (" + response.status + "). Try again.");
      }
      return data;
    }

    async function currentSubscription() {
      const subscription = await registration.pushManager.getSubscription();
      if (subscription && !sameBytes(subscription.options.applicationServerKey, serverKey)) {
        await subscription.unsubscribe();  // made with an older key of this site: useless now
        return null;
      }
      return subscription;
    }

    async function load() {
      registration = await navigator.serviceWorker.register(root.dataset.pushWorker, { scope: "/" });
      await navigator.serviceWorker.ready;
      const subscription = await currentSubscription();
      deviceTopics = [];
      if (subscription) {
        const data = await request("GET");
        const found = (data.subscriptions || []).find((s) => s.endpoint === subscription.endpoint);
        deviceTopics = found ? found.topics : [];
      }
      render();
    }

    async function turnOn() {
      const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
      if (!chosen.length) {
        showError("Choose at least one kind of notification, or turn them off.");
        return;
      }
      showError("");
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        render();
        if (permission === "default") showError("Notifications were not allowed. Click the button again to be asked again.");
        return;
      }
      let subscription = await currentSubscription();
      if (!subscription) {
        try {
          subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey });
        } catch (err) {
          // e.g. a private window, or a browser without a push service ("Registration failed")
          throw new Error("This browser could not set up notifications (a private window can't receive them): "
            + (err && err.message ? err.message : "unknown error") + ".");
        }
      }
      const topics = deviceTopics.filter((t) => !pageTopics.includes(t)).concat(chosen);
      const json = subscription.toJSON();
      const data = await request("POST", { endpoint: json.endpoint, keys: json.keys, topics: topics });
      deviceTopics = data.subscription.topics;
      render();
    }

    async function turnOff() {
      showError("");
      const subscription = await currentSubscription();
      const rest = deviceTopics.filter((t) => !pageTopics.includes(t));
      if (subscription && rest.length) {
        const json = subscription.toJSON();
        const data = await request("POST", { endpoint: json.endpoint, keys: json.keys, topics: rest });
        deviceTopics = data.subscription.topics;
      } else if (subscription) {
        await request("DELETE", { endpoint: subscription.endpoint });
        await subscription.unsubscribe();
        deviceTopics = [];
      } else {
        deviceTopics = [];
      }
      boxes.forEach((box) => { box.checked = true; });
      render();
    }

    function action(button, work) {
      button.addEventListener("click", async () => {
        busy(button, true);
        try {
          await work();
        } catch (err) {
          showError(err && err.message ? err.message : "Something went wrong. Try again.");
        } finally {
          busy(button, false);
        }
      });
    }

    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      show("unsupported", "This browser can't receive notifications from websites.");
      boxes.forEach((box) => { box.disabled = true; });
      return;
    }
    action(onButton, turnOn);
    action(offButton, turnOff);
    load().catch((err) => {
      show("unsupported", "Notifications can't be set up in this browser right now.");
      showError(err && err.message ? err.message : "");
    });
  }

  function start() {
    document.querySelectorAll("[data-push]").forEach(setUp);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
