/* The agent workspace in the admin: live queue badge, queue table, transcript, replies.
 *
 * Loaded (deferred) on every admin page of a support agent. One websocket to /ws/agent/ per
 * page, reconnecting with backoff. Every piece of customer-written text is put into the page
 * with textContent only, never as HTML.
 */
(function () {
  "use strict";

  var cfgEl = document.getElementById("agent-workspace-config");
  if (!cfgEl) return;
  var cfg = JSON.parse(cfgEl.textContent);

  var page = document.querySelector("[data-agent-page]");
  var pageKind = page ? page.getAttribute("data-agent-page") : null;
  var conversationId = page ? page.getAttribute("data-agent-conversation") : null;
  var status = page ? page.getAttribute("data-status") : null;
  var canReply = !!(page && page.getAttribute("data-can-reply"));

  // ------------------------------------------------------------------ helpers
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = String(text);
    return n;
  }

  // Citation links go to this site's /kb/ pages only: "/x" but never "//host" or "/\\host",
  // which browsers read as another origin.
  function sameSitePath(url) {
    return typeof url === "string" && /^\/(?![\/\\])/.test(url);
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  var ACTIONS = {
    answer: "Generated answer",
    extractive: "Quoted from the knowledge base",
    escalate: "Declined / escalated",
  };
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // Times in the agent's own time zone: "14:05" today, "3 Mar, 14:05" before.
  function hhmm(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    var clock = ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
    var today = new Date();
    if (d.toDateString() === today.toDateString()) return clock;
    return d.getDate() + " " + MONTHS[d.getMonth()] + ", " + clock;
  }

  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var text = hhmm(t.getAttribute("datetime"));
      if (text) t.textContent = text;
    });
  }

  function waitText(seconds) {
    var minutes = Math.floor(seconds / 60);
    if (minutes < 1) return "under a minute";
    if (minutes < 90) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + ("0" + (minutes % 60)).slice(-2) + " min";
    return Math.floor(hours / 24) + " days";
  }

  function tickWaits() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (n) {
      var since = Date.parse(n.getAttribute("data-since"));
      if (!isNaN(since)) n.textContent = waitText(Math.max(0, (now - since) / 1000));
    });
  }

  function postForm(url, form) {
    var body = form ? new FormData(form) : new FormData();
    if (!body.has("csrfmiddlewaretoken")) body.append("csrfmiddlewaretoken", csrfToken());
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    }).then(function (resp) {
      return resp
        .json()
        .catch(function () {
          return { ok: false, message: "The server answered " + resp.status + "." };
        })
        .then(function (data) {
          if (!resp.ok || !data.ok) throw new Error(data.message || "That did not work.");
          return data;
        });
    });
  }

  // ------------------------------------------------------------------ connection state
  function setLive(state) {
    var labels = { live: "Live", connecting: "Connecting…", offline: "Offline — reconnecting…" };
    document.querySelectorAll("[data-agent-live]").forEach(function (n) {
      n.setAttribute("data-state", state);
      n.textContent = labels[state] || state;
    });
  }

  // ------------------------------------------------------------------ queue and badge
  var queueTimer = null;
  function refreshQueueSoon() {
    clearTimeout(queueTimer);
    queueTimer = setTimeout(refreshQueue, 250);
  }

  function refreshQueue() {
    fetch(cfg.queue_json_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.json();
      })
      .then(function (data) {
        setCount(data.count);
        if (pageKind === "queue") {
          renderRows(document.querySelector('[data-queue="waiting"]'), data.waiting, false);
          renderRows(document.querySelector('[data-queue="active"]'), data.active, true);
        }
      })
      .catch(function () {});
  }

  function setCount(count) {
    document.querySelectorAll("[data-agent-badge], [data-agent-count]").forEach(function (n) {
      n.textContent = String(count);
      n.classList.toggle("sa-badge-zero", !count);
      if (n.hasAttribute("aria-label")) n.setAttribute("aria-label", count + " waiting");
    });
    var base = document.title.replace(/^\(\d+\) /, "");
    document.title = count ? "(" + count + ") " + base : base;
  }

  function renderRows(tbody, items, active) {
    if (!tbody) return;
    var rows = [];
    items.forEach(function (item) {
      var tr = el("tr");
      tr.setAttribute("data-conversation", item.conversation_id);
      var wait = el("td", "sa-wait", item.wait_text);
      wait.setAttribute("data-since", item.created_at);
      tr.appendChild(wait);
      var who = el("td", "sa-customer-cell");
      who.appendChild(el("div", "sa-customer", item.customer_name || "Anonymous customer"));
      if (item.customer_email) who.appendChild(el("div", "sa-muted", item.customer_email));
      tr.appendChild(who);
      tr.appendChild(el("td", "sa-question", item.first_question || "—"));
      var fourth = el("td");
      if (active) fourth.textContent = item.claimed_by || "—";
      else
        item.reasons.forEach(function (r) {
          fourth.appendChild(el("span", "sa-chip", r));
        });
      tr.appendChild(fourth);
      var actions = el("td", "sa-row-actions");
      var open = el("a", "sa-btn", "Open");
      open.href = item.url;
      actions.appendChild(open);
      if (!active) {
        var form = el("form");
        form.method = "post";
        form.action = item.url + "claim/";
        var token = el("input");
        token.type = "hidden";
        token.name = "csrfmiddlewaretoken";
        token.value = csrfToken();
        form.appendChild(token);
        var claim = el("button", "sa-btn sa-btn-primary", "Claim");
        claim.type = "submit";
        form.appendChild(claim);
        actions.appendChild(form);
      }
      tr.appendChild(actions);
      rows.push(tr);
    });
    if (!rows.length) {
      var empty = el("tr", "sa-empty");
      var td = el(
        "td",
        null,
        active
          ? "No conversation is with an agent right now."
          : "Nobody is waiting. New escalations appear here as they arrive."
      );
      td.colSpan = 5;
      empty.appendChild(td);
      rows.push(empty);
    }
    tbody.replaceChildren.apply(tbody, rows);
  }

  // ------------------------------------------------------------------ transcript
  var transcript = document.querySelector("[data-transcript]");

  function scrollToEnd(force) {
    if (!transcript) return;
    var near = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 120;
    if (force || near) transcript.scrollTop = transcript.scrollHeight;
  }

  function whoLabel(msg, internal) {
    if (internal) return "Internal note · " + (msg.author_name || "Agent");
    if (msg.role === "customer") return page.getAttribute("data-customer") || "Customer";
    if (msg.role === "bot") return "Bot";
    return msg.author_name || "Agent";
  }

  function appendMessage(msg, internal) {
    if (!transcript || transcript.querySelector('[data-id="' + Number(msg.id) + '"]')) return;
    var emptyNote = transcript.querySelector(".sa-transcript-empty");
    if (emptyNote) emptyNote.remove();
    var node;
    if (msg.role === "system") {
      // Lines the customer saw (queued, claimed, handed back...) are marked; the log is not.
      node = el("div", "sa-event" + (internal ? "" : " sa-event-customer"));
      if (!internal) {
        node.setAttribute("data-kind", String(msg.kind || "notice"));
        node.appendChild(el("span", "sa-event-label", "Customer saw"));
        node.appendChild(document.createTextNode(" "));
      }
      node.appendChild(el("span", null, msg.text));
      node.appendChild(document.createTextNode(" "));
      var at = el("time", null, hhmm(msg.created_at));
      at.setAttribute("datetime", msg.created_at);
      node.appendChild(at);
    } else {
      var role = ["customer", "bot", "agent"].indexOf(msg.role) >= 0 ? msg.role : "agent";
      node = el("article", "sa-msg sa-msg-" + role + (internal ? " sa-msg-internal" : ""));
      var head = el("header", "sa-msg-head");
      head.appendChild(el("span", "sa-msg-who", whoLabel(msg, internal)));
      var time = el("time", null, hhmm(msg.created_at));
      time.setAttribute("datetime", msg.created_at);
      head.appendChild(time);
      node.appendChild(head);
      node.appendChild(el("div", "sa-msg-text", msg.text));
      if (msg.role === "bot") {
        var meta = el("div", "sa-msg-meta");
        if (msg.action) meta.appendChild(el("span", "sa-chip", ACTIONS[msg.action] || msg.action));
        if (typeof msg.confidence === "number")
          meta.appendChild(el("span", "sa-chip", "confidence " + msg.confidence.toFixed(2)));
        node.appendChild(meta);
        appendCitations(node, msg.citations || []);
      }
    }
    node.setAttribute("data-id", String(Number(msg.id)));
    transcript.appendChild(node);
    scrollToEnd(msg.role !== "customer");
  }

  function appendCitations(parent, citations) {
    if (!citations.length) return null;
    var list = el("ol", "sa-citations");
    citations.forEach(function (c) {
      var li = el("li");
      if (c.n) li.value = Number(c.n);
      var a = el("a", null, c.heading || c.title || "Source");
      if (sameSitePath(c.url)) a.href = c.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      li.appendChild(a);
      list.appendChild(li);
    });
    parent.appendChild(list);
    return list;
  }

  // ------------------------------------------------------------------ typing
  var typingBox = document.querySelector("[data-typing]");
  var typingTimer = null;
  function showTyping(active) {
    if (!typingBox) return;
    typingBox.hidden = !active;
    clearTimeout(typingTimer);
    if (active) typingTimer = setTimeout(function () { typingBox.hidden = true; }, 8000);
  }

  var sentTypingAt = 0;
  var idleTimer = null;
  function agentTyping() {
    if (!canReply || !ws || ws.readyState !== 1) return;
    var now = Date.now();
    if (now - sentTypingAt > 3000) {
      sentTypingAt = now;
      ws.send(JSON.stringify({ type: "typing", conversation_id: conversationId, active: true }));
    }
    clearTimeout(idleTimer);
    idleTimer = setTimeout(stopTyping, 4000);
  }
  function stopTyping() {
    clearTimeout(idleTimer);
    if (!sentTypingAt || !ws || ws.readyState !== 1) return;
    sentTypingAt = 0;
    ws.send(JSON.stringify({ type: "typing", conversation_id: conversationId, active: false }));
  }

  // ------------------------------------------------------------------ changes by others
  function drafting() {
    var busy = false;
    document.querySelectorAll(".sa-conv textarea").forEach(function (t) {
      if (t.value.trim()) busy = true;
    });
    return busy;
  }

  // Set when this page submits a form that navigates (claim, resolve...): the change it causes
  // comes back as an event, and reloading then would cut the navigation short.
  var navigating = false;
  document.addEventListener("submit", function (ev) {
    if (!ev.defaultPrevented) navigating = true;
  });
  window.addEventListener("pagehide", function () { navigating = true; });

  function conversationChanged(newStatus) {
    if (!newStatus || newStatus === status || navigating) return;
    if (!drafting()) {
      location.reload();
      return;
    }
    var banner = document.querySelector("[data-agent-changed]");
    if (!banner) return;
    banner.querySelector("[data-agent-changed-text]").textContent =
      "This conversation changed (now: " + newStatus + "). Reload to see who has it.";
    banner.hidden = false;
  }

  // ------------------------------------------------------------------ suggested reply
  var suggestion = document.querySelector("[data-suggestion]");
  var suggestTimer = null;
  var lastSuggestion = "";

  function showSuggestion(f) {
    if (!suggestion) return;
    clearTimeout(suggestTimer);
    setSuggestBusy(false);
    suggestion.hidden = false;
    lastSuggestion = f.ok && f.text ? String(f.text) : "";
    suggestion.querySelector("[data-suggestion-note]").textContent = f.note || "";
    var text = suggestion.querySelector("[data-suggestion-text]");
    text.textContent = lastSuggestion || "No draft this time.";
    text.classList.toggle("sa-muted", !lastSuggestion);
    var old = suggestion.querySelector("[data-suggestion-citations]");
    var fresh = el("ol", "sa-citations");
    fresh.setAttribute("data-suggestion-citations", "");
    (f.citations || []).forEach(function (c) {
      var li = el("li");
      if (c.n) li.value = Number(c.n);
      var a = el("a", null, c.heading || c.title || "Source");
      if (sameSitePath(c.url)) a.href = c.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      li.appendChild(a);
      fresh.appendChild(li);
    });
    old.replaceWith(fresh);
    suggestion.querySelector("[data-suggestion-use]").hidden = !lastSuggestion;
  }

  function setSuggestBusy(busy) {
    var button = document.querySelector("[data-suggest]");
    if (!button) return;
    button.disabled = busy;
    button.textContent = busy ? "Drafting…" : "Suggest a reply";
  }

  // ------------------------------------------------------------------ the socket
  var ws = null;
  var attempts = 0;

  function connect() {
    setLive("connecting");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + cfg.ws_path);
    ws.onopen = function () {
      attempts = 0;
      setLive("live");
      refreshQueue(); // anything missed while disconnected
    };
    ws.onmessage = function (event) {
      var f;
      try {
        f = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handle(f);
    };
    ws.onclose = function () {
      setLive("offline");
      attempts += 1;
      setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, Math.min(attempts, 5))));
    };
  }

  function handle(f) {
    switch (f.type) {
      case "queue":
        refreshQueueSoon();
        if (conversationId && f.conversation_id === conversationId) conversationChanged(f.status);
        break;
      case "message":
        if (conversationId && f.conversation_id === conversationId)
          appendMessage(f.message, !!f.internal);
        if (f.message && f.message.role === "customer" && f.conversation_id === conversationId)
          showTyping(false);
        break;
      case "typing":
        if (conversationId && f.conversation_id === conversationId) showTyping(!!f.active);
        break;
      case "suggestion":
        if (conversationId && f.conversation_id === conversationId) showSuggestion(f);
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ forms on the page
  function bindAsyncForm(form) {
    var textarea = form.querySelector("textarea");
    var error = form.querySelector("[data-form-error]");
    function showError(text) {
      if (!error) return;
      error.textContent = text || "";
      error.hidden = !text;
    }
    form.addEventListener("submit", function (ev) {
      var submitter = ev.submitter;
      ev.preventDefault();
      if (submitter && submitter.hasAttribute("data-suggest")) {
        requestSuggestion(submitter.getAttribute("formaction"), showError);
        return;
      }
      if (!textarea.value.trim()) {
        showError("Write something first.");
        return;
      }
      var buttons = form.querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      showError("");
      postForm(form.action, form)
        .then(function () {
          textarea.value = "";
          if (form.getAttribute("data-agent-form") === "reply") stopTyping();
          var box = form.querySelector("input[name=send_email]");
          if (box) box.checked = false;
        })
        .catch(function (err) {
          showError(err.message);
        })
        .then(function () {
          buttons.forEach(function (b) { b.disabled = false; });
          textarea.focus();
        });
    });
    textarea.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit(form.querySelector("[data-send]") || undefined);
      }
    });
    if (form.getAttribute("data-agent-form") === "reply") textarea.addEventListener("input", agentTyping);
  }

  function requestSuggestion(url, showError) {
    setSuggestBusy(true);
    showError("");
    postForm(url, null)
      .then(function () {
        clearTimeout(suggestTimer);
        suggestTimer = setTimeout(function () {
          setSuggestBusy(false);
          showError("No draft arrived. The model may be busy; try again in a moment.");
        }, 150000);
      })
      .catch(function (err) {
        setSuggestBusy(false);
        showError(err.message);
      });
  }

  function bindCanned() {
    var select = document.querySelector("[data-canned]");
    var data = document.getElementById("agent-canned");
    var textarea = document.getElementById("sa-reply-text");
    if (!select || !data || !textarea) return;
    var canned = JSON.parse(data.textContent);
    select.addEventListener("change", function () {
      var chosen = canned.filter(function (c) { return String(c.id) === select.value; })[0];
      select.value = "";
      if (!chosen) return;
      var start = textarea.selectionStart || 0;
      var end = textarea.selectionEnd || 0;
      var v = textarea.value;
      textarea.value = v.slice(0, start) + chosen.text + v.slice(end);
      textarea.focus();
      textarea.selectionStart = textarea.selectionEnd = start + chosen.text.length;
    });
  }

  function bindSuggestion() {
    if (!suggestion) return;
    var textarea = document.getElementById("sa-reply-text");
    suggestion.querySelector("[data-suggestion-use]").addEventListener("click", function () {
      if (!lastSuggestion || !textarea) return;
      textarea.value = textarea.value.trim() ? textarea.value + "\n\n" + lastSuggestion : lastSuggestion;
      suggestion.hidden = true;
      textarea.focus();
    });
    suggestion.querySelector("[data-suggestion-dismiss]").addEventListener("click", function () {
      suggestion.hidden = true;
    });
  }

  // ------------------------------------------------------------------ start
  document.querySelectorAll("form[data-agent-form]").forEach(bindAsyncForm);
  bindCanned();
  bindSuggestion();
  var reload = document.querySelector("[data-agent-reload]");
  if (reload) reload.addEventListener("click", function () { location.reload(); });
  if (transcript) localiseTimes(transcript);
  scrollToEnd(true);
  tickWaits();
  setInterval(tickWaits, 30000);
  connect();
})();
