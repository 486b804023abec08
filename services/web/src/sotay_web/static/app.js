// Sổ tay: small enhancements only; every page works without this file.
"use strict";
(function () {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(function () {});

  // --- Saved documents: the service worker keeps a copy for reading offline.
  if (navigator.serviceWorker) navigator.serviceWorker.ready.then(function (reg) {
    document.querySelectorAll("[data-offline-keep],[data-offline-forget]").forEach(function (el) {
      var keep = el.hasAttribute("data-offline-keep");
      var url = el.getAttribute(keep ? "data-offline-keep" : "data-offline-forget") || el.getAttribute("href");
      if (url && reg.active) reg.active.postMessage({ url: url, forget: !keep });
    });
  });

  // --- The offline queue: a form marked data-queue, sent while offline, waits in IndexedDB
  // and goes out as soon as the phone is back online. The commands behind it are idempotent.
  var box = document.getElementById("queue");
  function show(text, sent) {
    if (!box) return;
    box.hidden = false;
    box.textContent = text;
    box.classList.toggle("sent", !!sent);
  }
  function db() {
    return new Promise(function (resolve, reject) {
      var open = indexedDB.open("sotay", 1);
      open.onupgradeneeded = function () { open.result.createObjectStore("queue", { keyPath: "id", autoIncrement: true }); };
      open.onsuccess = function () { resolve(open.result); };
      open.onerror = function () { reject(open.error); };
    });
  }
  function tx(mode, work) {
    return db().then(function (d) {
      return new Promise(function (resolve, reject) {
        var t = d.transaction("queue", mode), result = work(t.objectStore("queue"));
        t.oncomplete = function () { resolve(result && result.result); };
        t.onerror = function () { reject(t.error); };
      });
    });
  }
  function queued() { return tx("readonly", function (s) { return s.getAll(); }); }
  // Both moments by this phone's clock: the web front trusts only their difference (a phone's
  // clock may be wrong), and meetings checks the code at now minus that difference.
  function stamp(item) {
    if (!item.typed) return [];
    return [["typed_at", new Date(item.typed).toISOString()], ["sent_at", new Date().toISOString()]];
  }
  var flushing = false;
  function flush() {
    if (flushing || !navigator.onLine) return;
    flushing = true;
    queued().then(function (items) {
      return items.reduce(function (chain, item) {
        return chain.then(function () {
          return fetch(item.action, {
            method: "POST", credentials: "same-origin",
            headers: { "X-Sotay-Fetch": "1", "Content-Type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams(item.fields.concat(stamp(item))).toString()
          }).then(function (r) {
            return r.json().catch(function () { return {}; }).then(function (answer) {
              if (r.status >= 500) return; // kept: tried again later
              tx("readwrite", function (s) { return s.delete(item.id); });
              if (r.ok) show(item.label + ": đã gửi. " + (answer.message || ""), true);
              else show(item.label + ": không gửi được. " + (answer.message || ""), false);
            });
          });
        });
      }, Promise.resolve());
    }).catch(function () {}).then(function () { flushing = false; });
  }
  document.querySelectorAll("form[data-queue]").forEach(function (form) {
    // A check-in code counts at the moment it was typed, not when the network came back.
    var typed = null;
    if (form.hasAttribute("data-typed-at")) form.addEventListener("input", function () { typed = Date.now(); });
    form.addEventListener("submit", function (e) {
      if (navigator.onLine) return; // an ordinary submit: the service's clock is the moment
      e.preventDefault();
      var fields = [];
      new FormData(form).forEach(function (v, k) { fields.push([k, String(v)]); });
      var label = form.getAttribute("data-queue");
      var item = { action: form.action, fields: fields, label: label };
      if (form.hasAttribute("data-typed-at")) item.typed = typed || Date.now();
      tx("readwrite", function (s) { return s.add(item); })
        .then(function () { show(label + ": đang chờ gửi. Máy sẽ tự gửi khi có mạng trở lại.", false); });
    });
  });
  window.addEventListener("online", flush);
  queued().then(function (items) {
    if (items && items.length) show("Có " + items.length + " yêu cầu đang chờ gửi.", false);
    flush();
  }).catch(function () {});

  // --- The quiz timer: the server keeps the real deadline; this only counts down and hands
  // the paper in at the end so that the answers already chosen count.
  var timer = document.querySelector("[data-deadline]");
  if (timer) {
    var end = Date.parse(timer.getAttribute("data-deadline")), out = timer.querySelector("[data-countdown]");
    var form = document.querySelector("form.quiz"), tick = function () {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      out.textContent = " (còn " + Math.floor(left / 60) + " phút " + ("0" + left % 60).slice(-2) + " giây)";
      if (left === 0) { clearInterval(handle); out.textContent = " (hết giờ, đang nộp bài)"; if (form) form.requestSubmit(); }
    };
    var handle = setInterval(tick, 1000); tick();
  }

  // --- Scanning the meeting's QR with the camera, where the browser can decode it. The QR is
  // also a link: a phone's own camera app opens the check-in page without this.
  var scan = document.querySelector("[data-scan]");
  if (scan && "BarcodeDetector" in window && navigator.mediaDevices) {
    scan.hidden = false;
    scan.addEventListener("click", function () {
      var video = document.querySelector("[data-scan-video]"), detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
        video.srcObject = stream; video.hidden = false; video.play();
        var look = setInterval(function () {
          detector.detect(video).then(function (codes) {
            if (!codes.length) return;
            var raw = codes[0].rawValue, code = raw;
            try { code = new URL(raw).searchParams.get("c") || raw; } catch (err) { /* digits only */ }
            clearInterval(look); stream.getTracks().forEach(function (t) { t.stop(); }); video.hidden = true;
            var input = scan.form.querySelector("[name=code]"); input.value = code; scan.form.requestSubmit();
          }).catch(function () {});
        }, 300);
      }).catch(function () { scan.textContent = "Không mở được máy ảnh: vui lòng nhập mã"; });
    });
  }

  // --- Live figures (the meeting-room screen): a JSON source polled every few seconds.
  document.querySelectorAll("[data-live]").forEach(function (root) {
    var src = root.getAttribute("data-live");
    var poll = function () {
      fetch(src, { credentials: "same-origin", headers: { "X-Sotay-Fetch": "1" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          root.querySelectorAll("[data-field]").forEach(function (el) {
            var v = data[el.getAttribute("data-field")];
            if (v !== undefined && v !== null) el.textContent = v;
          });
          var img = root.querySelector("img[data-qr]");
          if (img && data.qr_svg && img.src !== data.qr_svg) img.src = data.qr_svg;
          (data.polls || []).forEach(function (p) {
            var box = document.querySelector('[data-poll="' + p.poll_id + '"]');
            if (!box) return;
            box.querySelector("[data-poll-status]").textContent = p.status;
            var tally = box.querySelector("[data-poll-tally]");
            if (!p.tally || !tally) return;
            tally.textContent = "";
            Object.keys(p.tally).forEach(function (o) { var li = document.createElement("li"); li.textContent = o + ": " + p.tally[o]; tally.appendChild(li); });
          });
          var list = root.querySelector("[data-present-list]");
          if (list && data.present_names) {
            list.textContent = "";
            data.present_names.forEach(function (n) { var li = document.createElement("li"); li.textContent = n; list.appendChild(li); });
          }
        }).catch(function () {});
    };
    setInterval(poll, Number(root.getAttribute("data-every") || 3000)); poll();
  });
})();
