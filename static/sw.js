/* The service worker (served at /sw.js, scope /): shows each Web Push as a notification
   and opens its page on a click — even when no tab of the site is open.
   A push's payload is JSON {title, body, url, tag}; url is a path on this site. */
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function sameOriginUrl(raw) {
  try {
    const url = new URL(raw || "/", self.location.origin);
    return url.origin === self.location.origin ? url.href : self.location.origin + "/";
  } catch (err) {
    return self.location.origin + "/";
  }
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (err) {
    data = {};
  }
  const title = typeof data.title === "string" && data.title ? data.title : "Pro Monetization";
  const options = {
    body: typeof data.body === "string" ? data.body : "",
    icon: "/static/favicon.svg",
    badge: "/static/favicon.svg",
    data: { url: sameOriginUrl(data.url) },
  };
  if (typeof data.tag === "string" && data.tag) {
    options.tag = data.tag;
    options.renotify = true;  // a newer push with the same tag replaces the old one and still alerts
  }
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = sameOriginUrl(event.notification.data && event.notification.data.url);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const client of windows) {
      if (client.url === target && "focus" in client) return client.focus();
    }
    for (const client of windows) {
      if (new URL(client.url).origin === self.location.origin && "navigate" in client) {
        const moved = await client.navigate(target).catch(() => null);
        if (moved) return moved.focus();
      }
    }
    return self.clients.openWindow(target);
  })());
});
