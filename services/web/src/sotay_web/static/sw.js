// Sổ tay service worker (bump SHELL when app.js or app.css change: the shell is served from
// the cache first): the shell (style, script, icons, the offline page) and the pages a
// member saved for reading offline. Other pages are personal and never cached.
"use strict";
var SHELL = "sotay-shell-v2", SAVED = "sotay-saved";
var FILES = ["/static/app.css", "/static/app.js", "/static/icon-48.png", "/static/icon-192.png", "/static/offline.html", "/manifest.webmanifest"];
self.addEventListener("install", function (e) {
  e.waitUntil(caches.open(SHELL).then(function (c) { return c.addAll(FILES); }).then(function () { return self.skipWaiting(); }));
});
self.addEventListener("activate", function (e) {
  e.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== SHELL && k !== SAVED; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});
self.addEventListener("message", function (e) {
  // A page asks to keep (or forget) a document for offline reading.
  if (!e.data || !e.data.url) return;
  caches.open(SAVED).then(function (c) {
    return e.data.forget ? c.delete(e.data.url) : fetch(e.data.url, { credentials: "same-origin" }).then(function (r) { if (r.ok) return c.put(e.data.url, r); });
  });
});
self.addEventListener("fetch", function (e) {
  var req = e.request;
  if (req.method !== "GET" || new URL(req.url).origin !== location.origin) return;
  if (req.url.indexOf("/static/") !== -1 || req.url.endsWith("/manifest.webmanifest")) {
    e.respondWith(caches.match(req).then(function (hit) { return hit || fetch(req); }));
    return;
  }
  if (req.mode === "navigate") {
    e.respondWith(fetch(req).catch(function () {
      return caches.open(SAVED).then(function (c) { return c.match(req); }).then(function (hit) {
        return hit || caches.match("/static/offline.html");
      });
    }));
  }
});
