/* whatsbot console: the little the server cannot do. Everything works without it, minus
   live updates, Enter-to-send, the `/` quick-reply picker, the attachment's name and size
   before sending, and the window countdown. */
(function () {
  "use strict";

  function messagesBox() { return document.getElementById("messages-scroll"); }

  function nearBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 120; }

  function scrollToBottom() {
    var box = messagesBox();
    if (box) box.scrollTop = box.scrollHeight;
  }

  // Keep one separator per day and one copy of each message (a poll and a reply may race).
  function tidyThread() {
    var messages = document.getElementById("messages");
    if (!messages) return;
    var days = {};
    messages.querySelectorAll(".day").forEach(function (el) {
      var d = el.getAttribute("data-day");
      if (days[d]) el.remove(); else days[d] = true;
    });
    var seen = {};
    var rows = messages.querySelectorAll(".msg-row");
    for (var i = rows.length - 1; i >= 0; i--) {
      if (seen[rows[i].id]) rows[i].remove(); else seen[rows[i].id] = true;
    }
  }

  function markActive() {
    var m = location.pathname.match(/\/c\/(\d+)\//);
    document.querySelectorAll(".conv.active").forEach(function (el) { el.classList.remove("active"); });
    if (m) {
      var row = document.getElementById("conv-" + m[1]);
      if (row) row.classList.add("active");
    }
    document.body.classList.toggle("has-thread", !!document.getElementById("thread"));
  }

  // --- 24-hour window countdown ------------------------------------------------------------
  function formatLeft(ms) {
    var minutes = Math.max(0, Math.floor(ms / 60000));
    var h = Math.floor(minutes / 60), m = minutes % 60;
    return h > 0 ? h + "h " + (m < 10 ? "0" : "") + m + "m" : m + "m";
  }
  function tickCountdown() {
    var el = document.getElementById("window-countdown");
    if (!el || !el.classList.contains("open")) return;
    var closes = Date.parse(el.getAttribute("data-closes-at") || "");
    if (isNaN(closes)) return;
    var left = closes - Date.now();
    var remaining = el.querySelector(".remaining");
    if (left <= 0) {
      el.classList.remove("open"); el.classList.add("closed");
      el.textContent = el.getAttribute("data-label-closed");
      // The composer must close too: fetch the thread again.
      if (window.htmx) htmx.ajax("GET", location.pathname, { target: "#thread-pane" });
      return;
    }
    if (remaining) remaining.textContent = formatLeft(left);
    el.classList.toggle("soon", left < 60 * 60 * 1000);
  }
  setInterval(tickCountdown, 15000);

  // --- Composer: Enter sends, grows with the text, `/` opens the quick replies --------------
  function quickReplies() {
    var data = document.getElementById("quick-replies");
    try { return data ? JSON.parse(data.textContent) : []; } catch (e) { return []; }
  }
  var picker = { open: false, index: 0, items: [] };

  function renderPicker(textarea) {
    var box = document.getElementById("qr-picker");
    if (!box) return;
    var value = textarea.value;
    if (value.charAt(0) !== "/" || value.indexOf("\n") !== -1) { closePicker(); return; }
    var term = value.slice(1).toLowerCase();
    picker.items = quickReplies().filter(function (q) {
      return q.shortcut.toLowerCase().indexOf(term) === 0 || q.title.toLowerCase().indexOf(term) !== -1;
    });
    picker.index = Math.min(picker.index, Math.max(0, picker.items.length - 1));
    box.innerHTML = "";
    if (!picker.items.length) {
      var empty = document.createElement("div");
      empty.className = "qr-empty"; empty.textContent = "—";
      box.appendChild(empty);
    }
    picker.items.forEach(function (q, i) {
      var item = document.createElement("div");
      item.className = "qr-item" + (i === picker.index ? " selected" : "");
      item.setAttribute("role", "option");
      item.setAttribute("data-shortcut", q.shortcut);
      var b = document.createElement("b"); b.textContent = "/" + q.shortcut + " ";
      var t = document.createElement("span"); t.textContent = q.title;
      var p = document.createElement("span"); p.className = "muted"; p.textContent = q.text;
      item.appendChild(b); item.appendChild(t); item.appendChild(p);
      item.addEventListener("mousedown", function (ev) { ev.preventDefault(); choose(textarea, i); });
      box.appendChild(item);
    });
    box.hidden = false; picker.open = true;
  }
  function closePicker() {
    var box = document.getElementById("qr-picker");
    if (box) box.hidden = true;
    picker.open = false; picker.index = 0;
  }
  function choose(textarea, i) {
    var q = picker.items[i];
    if (!q) return;
    textarea.value = q.text;
    closePicker(); autosize(textarea); textarea.focus();
  }
  function autosize(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 140) + "px";
  }

  document.addEventListener("input", function (ev) {
    if (ev.target.id !== "composer-text") return;
    autosize(ev.target); renderPicker(ev.target);
  });
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (t.id !== "composer-text") return;
    if (picker.open && picker.items.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        picker.index = (picker.index + (ev.key === "ArrowDown" ? 1 : picker.items.length - 1)) % picker.items.length;
        renderPicker(t); return;
      }
      if (ev.key === "Enter" || ev.key === "Tab") { ev.preventDefault(); choose(t, picker.index); return; }
    }
    if (ev.key === "Escape") { closePicker(); return; }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (t.value.trim() || attachedFile()) t.form.requestSubmit();
    }
  });

  // --- Composer: an attached image or document, the text its caption --------------------------
  function attachedFile() {
    var input = document.getElementById("composer-file");
    return input && input.files && input.files.length ? input.files[0] : null;
  }
  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }
  function showAttachment() {
    var box = document.getElementById("composer-attachment");
    var input = document.getElementById("composer-file");
    var t = document.getElementById("composer-text");
    if (!box || !input || !t) return;
    var file = attachedFile();
    if (!t.hasAttribute("data-placeholder")) t.setAttribute("data-placeholder", t.placeholder);
    box.hidden = !file;
    // With a file the text is its caption, and may stay empty.
    t.required = !file;
    t.placeholder = file ? input.getAttribute("data-caption-label") : t.getAttribute("data-placeholder");
    if (file) {
      document.getElementById("composer-attachment-name").textContent = file.name;
      document.getElementById("composer-attachment-size").textContent = formatSize(file.size);
    }
  }
  function removeAttachment() {
    var input = document.getElementById("composer-file");
    if (input) input.value = "";
    showAttachment();
  }
  document.addEventListener("change", function (ev) {
    if (ev.target.id === "composer-file") showAttachment();
  });

  // --- Template form: the header file chosen shows in the preview beside a paper clip -----------
  // The file is sent with the template only; the preview request carries its name.
  function headerFileNamed(ev) {
    if (ev.target.id !== "template-header-file") return;
    var name = document.getElementById("template-header-file-name");
    if (name) name.value = ev.target.files && ev.target.files.length ? ev.target.files[0].name : "";
  }
  // Capturing: the name is set before the `input` event reaches htmx's preview trigger.
  document.addEventListener("input", headerFileNamed, true);
  document.addEventListener("change", headerFileNamed, true);
  document.addEventListener("click", function (ev) {
    if (ev.target.closest("#composer-attachment-remove")) { removeAttachment(); var t = document.getElementById("composer-text"); if (t) t.focus(); }
  });

  document.addEventListener("reply-sent", function () {
    removeAttachment();
    var t = document.getElementById("composer-text");
    if (t) { t.value = ""; autosize(t); closePicker(); t.focus(); }
  });

  // A reaction chosen: the menu closes (the thread shows the reaction on the next poll).
  document.addEventListener("submit", function (ev) {
    var menu = ev.target.closest("details[data-react]");
    if (menu) menu.open = false;
  });

  // --- Profile panel toggle (narrow screens), in-thread anchors -------------------------------
  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest("[data-toggle-panel]");
    if (toggle) {
      var thread = document.getElementById("thread");
      if (thread && window.matchMedia("(max-width: 1200px)").matches) thread.classList.toggle("show-panel");
      return;
    }
    var link = ev.target.closest('a[href^="#msg-"]');
    if (link) {
      var target = document.querySelector(link.getAttribute("href"));
      if (target) {
        ev.preventDefault();
        target.scrollIntoView({ block: "center" });
        target.classList.add("flash-target");
        setTimeout(function () { target.classList.remove("flash-target"); }, 1600);
      }
    }
  });

  // --- htmx hooks ------------------------------------------------------------------------------
  var keepFromBottom = null, stickToBottom = false;
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var box = messagesBox();
    if (!box) return;
    var elt = ev.detail.target;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-older")) keepFromBottom = box.scrollHeight - box.scrollTop;
    if (elt && elt.id === "thread-poller") stickToBottom = nearBottom(box);
  });
  document.addEventListener("htmx:afterSettle", function (ev) {
    var elt = ev.detail.elt;
    tidyThread();
    var box = messagesBox();
    if (keepFromBottom !== null && box) { box.scrollTop = box.scrollHeight - keepFromBottom; keepFromBottom = null; }
    if (elt && elt.id === "thread-pane") { scrollToBottom(); tickCountdown(); }
    if (stickToBottom) { scrollToBottom(); stickToBottom = false; }
    markActive();
    document.querySelectorAll("[data-autohide]").forEach(function (el) {
      setTimeout(function () { el.remove(); }, 4000);
    });
  });
  // A photo or sticker enlarged in a dialog over the thread (without JavaScript its link opens
  // it full size). Delegated: bubbles come and go with the polls.
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest("a.media-zoom");
    if (!link || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    var viewer = document.getElementById("media-viewer");
    if (!viewer || !viewer.showModal) return;
    ev.preventDefault();
    var img = viewer.querySelector("img");
    img.src = link.href;
    img.alt = (link.querySelector("img") || {}).alt || "";
    viewer.showModal();
  });
  document.addEventListener("click", function (ev) {
    var viewer = document.getElementById("media-viewer");
    if (viewer && viewer.open && viewer.contains(ev.target)) viewer.close();
  });

  // --- Staff are told: the conversations waiting for this member of staff -----------------------
  // Polled like the list (204 unless a conversation changed). A conversation that starts
  // waiting after the page loaded raises a notification (when turned on and allowed) and a
  // sound; the count is in the tab's title. Not for what this page did itself: a conversation
  // acted on here (a POST of its thread) is taken in silently at the next poll.
  var notifier = { since: "", known: null, mine: {}, title: document.title };

  function waitedText(el, sinceIso) {
    var since = Date.parse(sinceIso);
    if (isNaN(since)) return "";
    var minutes = Math.max(0, Math.floor((Date.now() - since) / 60000));
    if (minutes < 60) return el.getAttribute("data-minutes").replace("%(m)s", minutes);
    var mm = minutes % 60;
    return el.getAttribute("data-hours").replace("%(h)s", Math.floor(minutes / 60)).replace("%(mm)s", (mm < 10 ? "0" : "") + mm);
  }
  function tickWaiting() {
    var el = document.getElementById("notifier");
    if (!el) return;
    document.querySelectorAll("[data-waiting-since]").forEach(function (tag) {
      var text = tag.querySelector(".waited");  // beside the clock icon
      if (text) text.textContent = waitedText(el, tag.getAttribute("data-waiting-since"));
    });
  }
  setInterval(tickWaiting, 20000);

  function beep() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      var ctx = notifier.audio || (notifier.audio = new Ctx());
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.25);
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no sound: the title and the notification still tell */ }
  }
  function tell(el, item) {
    if (el.getAttribute("data-notify") && window.Notification && Notification.permission === "granted") {
      var n = new Notification(item.name, { body: el.getAttribute("data-" + item.cause) || "", tag: "whatsbot-" + item.id });
      n.onclick = function () {
        window.focus();
        if (window.htmx && document.getElementById("thread-pane")) {
          htmx.ajax("GET", item.url, { target: "#thread-pane" }).then(function () {
            history.pushState({}, "", item.url); markActive();
          });
        } else {
          location.href = item.url;
        }
        n.close();
      };
    }
  }
  function waitingSeen(el, data) {
    var known = {}, fresh = [];
    data.waiting.forEach(function (item) {
      var key = item.id + "@" + item.since;
      known[key] = true;
      if (notifier.known && !notifier.known[key] && !notifier.mine[item.id]) fresh.push(item);
    });
    notifier.known = known; notifier.mine = {};
    fresh.forEach(function (item) { tell(el, item); });
    if (fresh.length && el.getAttribute("data-sound")) beep();
    var count = data.waiting.length;
    document.title = (count ? "(" + count + ") " : "") + notifier.title;
  }
  function pollWaiting() {
    var el = document.getElementById("notifier");
    if (!el) return;
    fetch(el.getAttribute("data-url") + "?since=" + encodeURIComponent(notifier.since), { credentials: "same-origin" })
      .then(function (r) { return r.status === 200 ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        notifier.since = data.since;
        waitingSeen(el, data);
      })
      .catch(function () { /* the next poll tries again */ });
  }
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var cfg = ev.detail.requestConfig;
    var m = cfg && cfg.verb === "post" && (cfg.path || "").match(/\/c\/(\d+)\//);
    if (m) notifier.mine[m[1]] = true;
  });
  // The title changes with the thread shown: the count stays in front of it.
  document.addEventListener("htmx:afterSettle", function () {
    var t = document.title.replace(/^\(\d+\) /, "");
    if (t === notifier.title) return;
    notifier.title = t;
    var count = notifier.known ? Object.keys(notifier.known).length : 0;
    document.title = (count ? "(" + count + ") " : "") + t;
  });
  // Turning desktop notifications on asks the browser first; refused, the setting stays off.
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("#notify-toggle");
    if (!button || button.getAttribute("data-turning-on") !== "true" || !window.Notification) return;
    if (Notification.permission === "granted") return;
    ev.preventDefault();
    Notification.requestPermission().then(function (permission) {
      if (permission === "granted") button.form.requestSubmit(button);
      else alert(button.getAttribute("data-refused") || "");
    });
  });

  // A thread opened from the list: the URL changed, so the list highlights it.
  document.addEventListener("htmx:pushedIntoHistory", markActive);

  document.addEventListener("DOMContentLoaded", function () {
    scrollToBottom(); markActive(); tickCountdown();
    if (document.getElementById("notifier")) { notifier.title = document.title; pollWaiting(); setInterval(pollWaiting, 2000); }
    document.querySelectorAll("[data-autohide]").forEach(function (el) {
      setTimeout(function () { el.remove(); }, 4000);
    });
  });
})();
