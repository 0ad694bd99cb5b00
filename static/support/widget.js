/*
 * Smallbot support widget: a customer-service chat embedded with one tag.
 *
 *   <script src="https://HOST/static/support/widget.js" data-title="Help" async></script>
 *
 * Options (data attributes on the script tag): data-endpoint, data-title, data-greeting,
 * data-position (right/left), data-accent (any CSS colour), data-open ("true").
 * Theming: host pages may override --sb-accent, --sb-accent-text, --sb-font, --sb-radius,
 * --sb-bg, --sb-text, --sb-muted, --sb-bot-bg, --sb-border, --sb-link on #smallbot-support.
 *
 * Everything renders inside an open shadow root; message content only ever reaches the DOM
 * through textContent / createTextNode (never innerHTML). The websocket protocol is described in
 * docs/protocol.md.
 */
(function () {
  "use strict";

  if (window.SmallbotSupport && window.SmallbotSupport.__loaded) return;

  var script =
    document.currentScript ||
    document.querySelector('script[src*="/static/support/widget.js"]') ||
    document.querySelector('script[src*="widget.js"]');
  if (!script) return;

  // ---------------------------------------------------------------- configuration

  var scriptUrl = new URL(script.getAttribute("src") || "", location.href);
  var ORIGIN = scriptUrl.origin;
  var HOST_KEY = scriptUrl.host;
  var TOKEN_KEY = "smallbot.token." + HOST_KEY;
  var OUTBOX_KEY = "smallbot.outbox." + HOST_KEY;
  var DRAFT_KEY = "smallbot.draft." + HOST_KEY;
  // The address the customer left (per tab, with its conversation): after a reload the thanks
  // is shown again instead of a second request.
  var EMAIL_KEY = "smallbot.email." + HOST_KEY;

  function attr(name, fallback) {
    var v = script.getAttribute("data-" + name);
    return v === null || v === "" ? fallback : v;
  }

  function endpointUrl() {
    var raw = attr("endpoint", null);
    var u = new URL(raw || "/ws/chat/", scriptUrl);
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    return u.href;
  }

  var CFG = {
    endpoint: endpointUrl(),
    title: attr("title", "Support"),
    greeting: attr("greeting", "Hi there! Ask me anything, or talk to a person at any time."),
    position: attr("position", "right") === "left" ? "left" : "right",
    accent: attr("accent", null),
    open: attr("open", "false") === "true",
  };

  var PING_MS = 25000;
  var STALE_MS = 65000; // no frame at all for this long: the socket is half-open, drop it
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 15000;
  var WAIT_TYPING_MS = 45000;
  var RATING_COMMENT_MAX = 1000; // the server's cap (conversations.RATING_COMMENT_MAX_CHARS)
  var RATING_WORDS = ["Poor", "Fair", "Good", "Very good", "Excellent"];

  // ---------------------------------------------------------------- small helpers

  var storage = (function () {
    var mem = {};
    function ok() {
      try {
        var k = "__sb_probe__";
        localStorage.setItem(k, k);
        localStorage.removeItem(k);
        return true;
      } catch (e) {
        return false;
      }
    }
    var usable = ok();
    return {
      get: function (k) {
        if (usable) {
          try {
            return localStorage.getItem(k);
          } catch (e) {
            /* fall through to memory */
          }
        }
        return Object.prototype.hasOwnProperty.call(mem, k) ? mem[k] : null;
      },
      set: function (k, v) {
        mem[k] = v;
        if (usable) {
          try {
            localStorage.setItem(k, v);
          } catch (e) {
            /* quota or privacy mode: the in-memory copy still works for this page */
          }
        }
      },
      remove: function (k) {
        delete mem[k];
        if (usable) {
          try {
            localStorage.removeItem(k);
          } catch (e) {
            /* ignore */
          }
        }
      },
    };
  })();

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID();
      } catch (e) {
        /* insecure context: fall through */
      }
    }
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) {
      return (x + 0x100).toString(16).slice(1);
    });
    return (
      h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") +
      "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("")
    );
  }

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  // Static, trusted icon paths (24x24 viewBox); never built from message data.
  var ICONS = {
    chat: "M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.5.4-1.3.1-1.3-.6V16A2.5 2.5 0 0 1 4 13.5z",
    down: "M6 9l6 6 6-6",
    close: "M6 6l12 12M18 6L6 18",
    send: "M4 12l16-8-6 16-2.5-6.5z",
    person: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4.5 20a7.5 7.5 0 0 1 15 0",
    up: "M7 10v10H4V10zM7 10l4-7c1.4 0 2.3 1 2 2.4L12.5 9H18a2 2 0 0 1 2 2.3l-1.2 6.6A2.5 2.5 0 0 1 16.3 20H7",
    thumbDown: "M7 14V4H4v10zM7 14l4 7c1.4 0 2.3-1 2-2.4l-.5-3.6H18a2 2 0 0 0 2-2.3l-1.2-6.6A2.5 2.5 0 0 0 16.3 4H7",
    alert: "M12 8v5M12 16.5v.01M10.3 3.9L2.6 17.5A2 2 0 0 0 4.3 20.5h15.4a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z",
    check: "M5 12.5l4.5 4.5L19 7.5",
    star: "M12 3.6l2.6 5.3 5.8.8-4.2 4.1 1 5.8-5.2-2.7-5.2 2.7 1-5.8-4.2-4.1 5.8-.8z",
    mail: "M4 6.5A1.5 1.5 0 0 1 5.5 5h13A1.5 1.5 0 0 1 20 6.5v11a1.5 1.5 0 0 1-1.5 1.5h-13A1.5 1.5 0 0 1 4 17.5zM4.5 6.5l7.5 6 7.5-6",
  };

  function icon(name, size) {
    var s = document.createElementNS(SVG_NS, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("width", String(size || 20));
    s.setAttribute("height", String(size || 20));
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    var p = document.createElementNS(SVG_NS, "path");
    p.setAttribute("d", ICONS[name]);
    p.setAttribute("fill", name === "chat" ? "currentColor" : "none");
    p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", name === "chat" ? "0" : "2");
    p.setAttribute("stroke-linecap", "round");
    p.setAttribute("stroke-linejoin", "round");
    s.appendChild(p);
    return s;
  }

  function safeUrl(raw, base) {
    if (typeof raw !== "string" || !raw) return null;
    try {
      var u = base ? new URL(raw, base) : new URL(raw);
      if (u.protocol === "http:" || u.protocol === "https:") return u.href;
    } catch (e) {
      /* not a URL */
    }
    return null;
  }

  /** Citations point at this server's own /kb/ pages: any other origin is dropped. */
  function citationUrl(raw) {
    var href = safeUrl(raw, ORIGIN + "/");
    return href && new URL(href).origin === ORIGIN ? href : null;
  }

  function externalLink(href, text, cls) {
    var a = el("a", cls, text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    return a;
  }

  function citationLabel(c) {
    var title = c.title ? String(c.title) : "";
    var heading = c.heading ? String(c.heading) : "";
    var label = heading && heading.indexOf(title) === 0 ? heading : title && heading ? title + " › " + heading : heading || title || "Source";
    return "[" + c.n + "] " + label;
  }

  /** Colour for text on `colour` (white or near-black), or null when it cannot be parsed. */
  function contrastText(colour) {
    try {
      var ctx = document.createElement("canvas").getContext("2d");
      if (!ctx) return null;
      ctx.fillStyle = "#000";
      ctx.fillStyle = colour;
      var v = String(ctx.fillStyle);
      var r, g, b;
      var m = /^#([0-9a-f]{6})$/i.exec(v);
      if (m) {
        r = parseInt(m[1].slice(0, 2), 16);
        g = parseInt(m[1].slice(2, 4), 16);
        b = parseInt(m[1].slice(4, 6), 16);
      } else {
        m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(v);
        if (!m) return null;
        r = +m[1];
        g = +m[2];
        b = +m[3];
      }
      var lin = function (c) {
        c /= 255;
        return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
      };
      var L = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
      // Pick whichever of white / #111827 contrasts more with the accent.
      return (1.05 / (L + 0.05)) >= ((L + 0.05) / 0.0601) ? "#ffffff" : "#111827";
    } catch (e) {
      return null;
    }
  }

  // ---------------------------------------------------------------- tiny markdown → DOM

  var INLINE_RE =
    /`([^`\n]+)`|\*\*(?=\S)([^*\n]*?\S)\*\*|\[([^\[\]\n]+)\]\(([^()\s]+)\)|\[(\d{1,3})\]|(https?:\/\/[^\s<>"'`]+)/g;

  function appendInline(parent, text, ctx, inBold) {
    var last = 0;
    var m;
    var re = new RegExp(INLINE_RE.source, "g");
    while ((m = re.exec(text)) !== null) {
      var whole = m[0];
      if (m[2] !== undefined && inBold) continue; // no nested bold: leave as text
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      last = m.index + whole.length;
      if (m[1] !== undefined) {
        parent.appendChild(el("code", null, m[1]));
      } else if (m[2] !== undefined) {
        var strong = el("strong");
        appendInline(strong, m[2], ctx, true);
        parent.appendChild(strong);
      } else if (m[3] !== undefined) {
        // No images: "![alt](url)" stays text, so nothing is ever fetched from the URL.
        var href = text.charAt(m.index - 1) === "!" ? null : safeUrl(m[4]);
        parent.appendChild(href ? externalLink(href, m[3]) : document.createTextNode(whole));
      } else if (m[5] !== undefined) {
        var cit = ctx.citations[m[5]];
        var curl = cit && citationUrl(cit.url);
        if (curl) {
          var a = externalLink(curl, "[" + m[5] + "]", "sb-cite");
          a.setAttribute("aria-label", "Source " + citationLabel(cit));
          parent.appendChild(a);
        } else {
          parent.appendChild(document.createTextNode(whole));
        }
      } else if (m[6] !== undefined) {
        // Trailing punctuation belongs to the sentence, not the URL.
        var url = m[6];
        var tail = "";
        var t;
        while ((t = /[.,;:!?)\]]$/.exec(url))) {
          if (t[0] === ")" && url.split("(").length > url.split(")").length - 1) break;
          tail = t[0] + tail;
          url = url.slice(0, -1);
        }
        var bare = safeUrl(url);
        if (bare) parent.appendChild(externalLink(bare, url));
        else parent.appendChild(document.createTextNode(url));
        if (tail) parent.appendChild(document.createTextNode(tail));
      }
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  /** Render bot text (plain text with simple Markdown) into `container` as DOM nodes. */
  function renderMarkdown(container, text, citations) {
    var ctx = { citations: {} };
    (citations || []).forEach(function (c) {
      if (c && c.n !== undefined) ctx.citations[String(c.n)] = c;
    });
    while (container.firstChild) container.removeChild(container.firstChild);
    var lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
    var para = null;
    var list = null;
    lines.forEach(function (line) {
      var bullet = /^\s*[-*•]\s+(.*)$/.exec(line);
      var numbered = /^\s*(\d{1,3})[.)]\s+(.*)$/.exec(line);
      var heading = /^\s{0,3}#{1,6}\s+(.*)$/.exec(line);
      if (!line.trim()) {
        para = null;
        list = null;
      } else if (bullet || numbered) {
        var tag = bullet ? "UL" : "OL";
        if (!list || list.tagName !== tag) {
          list = el(tag.toLowerCase());
          if (numbered && numbered[1] !== "1") list.setAttribute("start", numbered[1]);
          container.appendChild(list);
        }
        para = null;
        var li = el("li");
        appendInline(li, bullet ? bullet[1] : numbered[2], ctx, false);
        list.appendChild(li);
      } else if (heading) {
        list = null;
        para = null;
        var hp = el("p", "sb-md-heading");
        var hs = el("strong");
        appendInline(hs, heading[1], ctx, true);
        hp.appendChild(hs);
        container.appendChild(hp);
      } else if (list && /^\s+\S/.test(line)) {
        // Indented continuation of the previous list item.
        var lastLi = list.lastChild;
        lastLi.appendChild(el("br"));
        appendInline(lastLi, line.trim(), ctx, false);
      } else {
        list = null;
        if (!para) {
          para = el("p");
          container.appendChild(para);
        } else {
          para.appendChild(el("br"));
        }
        appendInline(para, line, ctx, false);
      }
    });
  }

  // ---------------------------------------------------------------- styles

  var STYLE_TEXT = [
    ":host{all:initial}",
    ":host{--sb-accent:#1d4ed8;--sb-accent-text:#ffffff;--sb-font:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;",
    "--sb-radius:16px;--sb-bg:#ffffff;--sb-text:#1f2937;--sb-muted:#5b6472;--sb-bot-bg:#f1f5f9;--sb-border:#e2e8f0;--sb-link:#1d4ed8;",
    "--sb-z:2147483000;--sb-shadow:0 16px 48px rgba(15,23,42,.18),0 2px 10px rgba(15,23,42,.08)}",
    "*,*::before,*::after{box-sizing:border-box}",
    "[hidden]{display:none!important}",
    ".sb-root{font-family:var(--sb-font);font-size:15px;line-height:1.45;color:var(--sb-text);-webkit-font-smoothing:antialiased;text-align:left}",
    "button,textarea,input{font:inherit;color:inherit}",
    "button{cursor:pointer}",
    ":focus-visible{outline:2px solid var(--sb-link);outline-offset:2px}",
    ".sb-vh{position:absolute!important;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}",
    // launcher
    ".sb-launcher{position:fixed;bottom:20px;right:20px;z-index:var(--sb-z);width:58px;height:58px;border-radius:50%;border:0;",
    "background:var(--sb-accent);color:var(--sb-accent-text);display:grid;place-items:center;box-shadow:0 6px 20px rgba(15,23,42,.25);transition:transform .15s ease,box-shadow .15s ease}",
    ".sb-left .sb-launcher{left:20px;right:auto}",
    ".sb-launcher:hover{transform:scale(1.06);box-shadow:0 8px 26px rgba(15,23,42,.3)}",
    ".sb-launcher:focus-visible{outline:3px solid var(--sb-accent);outline-offset:3px}",
    ".sb-launcher svg{transition:transform .2s ease}",
    ".sb-badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#b91c1c;color:#fff;",
    "font-size:12px;font-weight:700;line-height:20px;text-align:center;box-shadow:0 0 0 2px #fff}",
    // panel
    ".sb-panel{position:fixed;bottom:94px;right:20px;z-index:var(--sb-z);width:384px;height:min(660px,calc(100vh - 116px));min-height:360px;",
    "display:flex;flex-direction:column;background:var(--sb-bg);border-radius:var(--sb-radius);box-shadow:var(--sb-shadow);overflow:hidden;",
    "animation:sb-in .2s ease-out;transform-origin:bottom right}",
    ".sb-left .sb-panel{left:20px;right:auto;transform-origin:bottom left}",
    "@keyframes sb-in{from{opacity:0;transform:translateY(12px) scale(.98)}to{opacity:1;transform:none}}",
    ".sb-header{display:flex;align-items:flex-start;gap:12px;padding:18px 12px 16px 20px;background:var(--sb-accent);color:var(--sb-accent-text);flex:none}",
    ".sb-avatar{flex:none;width:40px;height:40px;border-radius:50%;background:rgba(255,255,255,.18);display:grid;place-items:center}",
    ".sb-head-text{flex:1;min-width:0}",
    ".sb-title{margin:0;font-size:17px;font-weight:650;line-height:1.3;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".sb-status{margin:3px 0 0;font-size:13px;line-height:1.35;display:flex;align-items:flex-start;gap:7px}",
    ".sb-dot{flex:none;width:8px;height:8px;margin-top:5px;border-radius:50%;background:#4ade80;box-shadow:0 0 0 2px rgba(255,255,255,.3)}",
    ".sb-dot[data-state=queued]{background:#fbbf24}.sb-dot[data-state=resolved]{background:#cbd5e1}",
    ".sb-dot[data-state=offline],.sb-dot[data-state=connecting]{background:#f87171}",
    ".sb-close{flex:none;width:36px;height:36px;margin:-4px 0 0;border:0;border-radius:10px;background:transparent;color:inherit;display:grid;place-items:center}",
    ".sb-close:hover{background:rgba(255,255,255,.16)}",
    ".sb-header :focus-visible{outline-color:currentColor}",
    // log
    ".sb-scroll{flex:1;min-height:0;overflow-y:auto;overscroll-behavior:contain;padding:18px 16px 8px;scroll-behavior:smooth}",
    ".sb-log{display:flex;flex-direction:column;gap:12px}",
    ".sb-msg{display:flex;flex-direction:column;max-width:86%;min-width:0}",
    ".sb-msg-customer{align-self:flex-end;align-items:flex-end}",
    ".sb-msg-bot,.sb-msg-agent{align-self:flex-start;align-items:flex-start}",
    ".sb-author{font-size:12px;font-weight:600;color:var(--sb-muted);margin:0 0 4px 6px}",
    ".sb-bubble{padding:10px 14px;border-radius:18px;overflow-wrap:anywhere;word-break:normal;max-width:100%}",
    ".sb-msg-customer .sb-bubble{background:var(--sb-accent);color:var(--sb-accent-text);border-bottom-right-radius:6px;white-space:pre-wrap}",
    ".sb-msg-bot .sb-bubble{background:var(--sb-bot-bg);border-bottom-left-radius:6px}",
    ".sb-msg-agent .sb-bubble{background:var(--sb-bg);border:1px solid var(--sb-border);border-bottom-left-radius:6px;white-space:pre-wrap}",
    ".sb-msg-system{align-self:center;max-width:92%;text-align:center;font-size:13px;color:var(--sb-muted);padding:2px 8px}",
    ".sb-greeting .sb-bubble{background:var(--sb-bot-bg)}",
    ".sb-bubble p{margin:0}.sb-bubble p+p,.sb-bubble p+ul,.sb-bubble p+ol,.sb-bubble ul+p,.sb-bubble ol+p{margin-top:8px}",
    ".sb-bubble ul,.sb-bubble ol{margin:0;padding-left:20px}.sb-bubble li+li{margin-top:3px}",
    ".sb-bubble code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;background:rgba(15,23,42,.07);padding:1px 5px;border-radius:5px}",
    ".sb-bubble a{color:var(--sb-link);text-decoration:underline;text-underline-offset:2px}",
    ".sb-bubble a.sb-cite{text-decoration:none;font-size:.82em;font-weight:600;padding:0 3px;border-radius:4px;background:rgba(29,78,216,.08)}",
    ".sb-bubble a.sb-cite:hover{text-decoration:underline}",
    ".sb-streaming .sb-bubble>:last-child::after{content:'';display:inline-block;width:7px;height:1em;margin-left:2px;vertical-align:-2px;background:currentColor;opacity:.55;animation:sb-blink 1s steps(2) infinite}",
    "@keyframes sb-blink{50%{opacity:0}}",
    ".sb-sources{margin:8px 2px 0 6px;font-size:13px}",
    ".sb-sources-title{margin:0 0 2px;font-size:12px;font-weight:600;color:var(--sb-muted)}",
    ".sb-sources ol{list-style:none;margin:0;padding:0}",
    ".sb-sources li{margin:2px 0}",
    ".sb-sources a{color:var(--sb-link);text-decoration:none}.sb-sources a:hover{text-decoration:underline}",
    ".sb-meta{font-size:12px;color:var(--sb-muted);margin:4px 6px 0;display:flex;gap:8px;align-items:center}",
    ".sb-failed .sb-meta{color:#b91c1c}",
    ".sb-link-btn{border:0;background:none;padding:0;color:var(--sb-link);font-size:12px;font-weight:600;text-decoration:underline}",
    ".sb-feedback{display:flex;align-items:center;gap:6px;margin:6px 0 0 6px;font-size:12px;color:var(--sb-muted)}",
    ".sb-fb-btn{width:30px;height:30px;border-radius:8px;border:1px solid var(--sb-border);background:var(--sb-bg);color:var(--sb-muted);display:grid;place-items:center;transition:background .12s,color .12s}",
    ".sb-fb-btn:hover{background:var(--sb-bot-bg);color:var(--sb-text)}",
    ".sb-fb-btn[aria-pressed=true]{background:var(--sb-accent);border-color:var(--sb-accent);color:var(--sb-accent-text)}",
    ".sb-fb-btn[data-busy]{opacity:.6}",
    ".sb-fb-form{display:flex;flex-direction:column;gap:6px;margin:8px 0 0 6px;width:100%}",
    ".sb-fb-form textarea{width:100%;min-height:56px;resize:vertical;border:1px solid var(--sb-border);border-radius:10px;padding:8px 10px;font-size:14px;background:var(--sb-bg)}",
    ".sb-fb-form textarea:focus{outline:2px solid var(--sb-link);outline-offset:0;border-color:transparent}",
    ".sb-fb-form .sb-row{display:flex;gap:8px;justify-content:flex-end}",
    ".sb-fb-thanks{margin:6px 0 0 6px;font-size:12px;color:var(--sb-muted)}",
    ".sb-btn{border:1px solid var(--sb-border);background:var(--sb-bg);color:var(--sb-text);border-radius:9px;padding:5px 12px;font-size:13px;font-weight:600}",
    ".sb-btn-primary{background:var(--sb-accent);border-color:var(--sb-accent);color:var(--sb-accent-text)}",
    // email request (outside business hours)
    ".sb-email{flex:none;padding:12px 16px 13px;background:#fffbeb;border-bottom:1px solid #fde68a;color:#422006}",
    ".sb-email-label{display:flex;align-items:flex-start;gap:7px;margin:0 0 8px;font-size:13.5px;font-weight:600;line-height:1.35}",
    ".sb-email-label svg{flex:none;margin-top:1px;color:#b45309}",
    ".sb-email-row{display:flex;gap:8px}",
    ".sb-email-input{flex:1;min-width:0;height:36px;padding:0 11px;border:1px solid #948a76;border-radius:10px;background:var(--sb-bg);color:var(--sb-text);font-size:14px}",
    ".sb-email-input::placeholder{color:#6b7280}",
    ".sb-email-input:focus{outline:0;border-color:var(--sb-link);box-shadow:0 0 0 3px rgba(29,78,216,.18)}",
    ".sb-email-input[aria-invalid=true]{border-color:#b91c1c}",
    ".sb-email-input[aria-invalid=true]:focus{box-shadow:0 0 0 3px rgba(185,28,28,.16)}",
    ".sb-email .sb-btn{flex:none;height:36px;padding:0 14px}",
    ".sb-email .sb-btn[aria-disabled=true]{opacity:.65;cursor:default}",
    // The alert and status regions stay rendered (empty, no height) so screen readers announce them.
    ".sb-email-error{margin:0;font-size:12.5px;line-height:1.35;color:#b91c1c}",
    ".sb-email-error:not(:empty){margin-top:6px}",
    ".sb-email-done{display:flex;align-items:baseline;gap:10px;font-size:13.5px;line-height:1.4}",
    ".sb-email-done p{margin:0;flex:1;min-width:0;overflow-wrap:anywhere}",
    ".sb-email-done .sb-link-btn{flex:none;font-size:13px;color:#92400e}",
    // typing
    ".sb-typing{display:inline-flex;align-items:center;gap:4px;margin-top:12px;padding:13px 14px;background:var(--sb-bot-bg);border-radius:18px;border-bottom-left-radius:6px}",
    ".sb-tdot{width:7px;height:7px;border-radius:50%;background:#64748b;animation:sb-bounce 1.2s infinite ease-in-out}",
    ".sb-tdot:nth-child(2){animation-delay:.15s}.sb-tdot:nth-child(3){animation-delay:.3s}",
    ".sb-typing-label{margin-left:6px;font-size:12px;color:var(--sb-muted)}",
    "@keyframes sb-bounce{0%,60%,100%{transform:none;opacity:.5}30%{transform:translateY(-4px);opacity:1}}",
    // notices
    ".sb-notices{flex:none;padding:0 14px;display:flex;flex-direction:column;gap:8px}",
    ".sb-notices:not(:empty){padding-top:8px;padding-bottom:4px}",
    ".sb-notice{display:flex;align-items:flex-start;gap:8px;padding:9px 8px 9px 12px;border-radius:12px;font-size:13.5px;line-height:1.4;",
    "background:#fef2f2;color:#991b1b;border:1px solid #fecaca}",
    ".sb-notice-info{background:#eff6ff;color:#1e3a8a;border-color:#bfdbfe}",
    ".sb-notice svg{flex:none;margin-top:1px}",
    ".sb-notice-body{flex:1;min-width:0}",
    ".sb-notice-body .sb-btn{margin-top:8px}",
    ".sb-notice-x{flex:none;width:26px;height:26px;margin:-3px 0;border:0;border-radius:7px;background:transparent;color:inherit;display:grid;place-items:center}",
    ".sb-notice-x:hover{background:rgba(15,23,42,.07)}",
    // footer
    ".sb-footer{flex:none;padding:10px 14px 14px;border-top:1px solid var(--sb-border);background:var(--sb-bg)}",
    ".sb-handoff{display:inline-flex;align-items:center;gap:6px;margin:0 0 10px;padding:6px 12px 6px 10px;border:1px solid var(--sb-border);",
    "border-radius:999px;background:var(--sb-bg);color:var(--sb-text);font-size:13px;font-weight:600;transition:background .12s}",
    ".sb-handoff:hover{background:var(--sb-bot-bg)}",
    ".sb-handoff[aria-disabled=true]{cursor:default;background:var(--sb-bot-bg);color:var(--sb-muted);border-style:dashed}",
    ".sb-composer{display:flex;align-items:flex-end;gap:8px;padding:6px 6px 6px 14px;border:1px solid #cbd5e1;border-radius:14px;background:var(--sb-bg);transition:border-color .12s,box-shadow .12s}",
    ".sb-composer:focus-within{border-color:var(--sb-link);box-shadow:0 0 0 3px rgba(29,78,216,.18)}",
    ".sb-input{flex:1;min-width:0;min-height:36px;max-height:132px;padding:7px 0;border:0;outline:0;resize:none;background:transparent;font-size:15px;line-height:22px}",
    ".sb-input::placeholder{color:#6b7280}",
    ".sb-send{flex:none;height:36px;padding:0 14px 0 12px;border:0;border-radius:10px;background:var(--sb-accent);color:var(--sb-accent-text);",
    "display:inline-flex;align-items:center;gap:6px;font-size:14px;font-weight:600}",
    ".sb-send:hover{filter:brightness(1.08)}",
    ".sb-footnote{margin:8px 0 0;font-size:11.5px;color:var(--sb-muted);text-align:center}",
    // the end of a conversation: replaces the message box
    ".sb-ended{display:flex;flex-direction:column;gap:10px}",
    ".sb-ended-text{margin:0;font-size:14px;font-weight:600;text-align:center}",
    ".sb-rate{margin:0;padding:10px 12px 12px;border:1px solid var(--sb-border);border-radius:12px;background:var(--sb-bot-bg)}",
    ".sb-rate-q{margin:0 0 6px;font-size:13.5px;font-weight:600}",
    ".sb-stars{display:flex;gap:4px}",
    ".sb-star{width:36px;height:36px;border:0;border-radius:9px;background:transparent;color:#94a3b8;display:grid;place-items:center}",
    ".sb-star:hover{background:rgba(15,23,42,.06);color:#b45309}",
    ".sb-star[data-on]{color:#b45309}.sb-star[data-on] svg path{fill:currentColor}",
    ".sb-rate textarea{display:block;width:100%;min-height:52px;margin-top:8px;resize:vertical;border:1px solid var(--sb-border);border-radius:10px;padding:7px 10px;font-size:14px;background:var(--sb-bg)}",
    ".sb-rate textarea:focus{outline:2px solid var(--sb-link);outline-offset:0;border-color:transparent}",
    ".sb-rate .sb-row{display:flex;justify-content:flex-end;margin-top:8px}",
    ".sb-rate .sb-btn[aria-disabled=true]{opacity:.6;cursor:default}",
    ".sb-rate-error{margin:0;font-size:12.5px;color:#b91c1c}.sb-rate-error:not(:empty){margin-top:6px}",
    ".sb-rate-thanks{margin:0;font-size:13.5px;text-align:center;color:var(--sb-muted)}",
    ".sb-new{align-self:center;padding:8px 16px;font-size:14px}",
    ".sb-ended-msg .sb-bubble{opacity:.65}.sb-ended-msg .sb-meta{color:#92400e}",
    // small screens: the panel becomes the whole screen
    "@media (max-width:480px){",
    ".sb-panel,.sb-left .sb-panel{top:0;right:0;bottom:0;left:0;width:auto;height:auto;min-height:0;border-radius:0;animation-name:sb-in-m}",
    ".sb-open .sb-launcher{display:none}",
    ".sb-input,.sb-email-input{font-size:16px}", // 16px: no zoom on focus in mobile Safari
    ".sb-msg{max-width:90%}",
    ".sb-footnote{display:none}",
    "}",
    "@media (pointer:coarse){.sb-footnote{display:none}}",
    "@keyframes sb-in-m{from{opacity:0}to{opacity:1}}",
    "@media (prefers-reduced-motion:reduce){*,*::before,*::after{animation:none!important;transition:none!important;scroll-behavior:auto!important}}",
    "@media (forced-colors:active){.sb-launcher,.sb-send,.sb-bubble,.sb-panel,.sb-email{border:1px solid CanvasText}}",
  ].join("\n");

  // ---------------------------------------------------------------- state

  var S = {
    token: storage.get(TOKEN_KEY),
    conversationId: null,
    status: "bot",
    queuePosition: null,
    waitMinutes: null,
    agentName: null,
    statusText: null,
    statusProvisional: false,
    conn: "idle", // idle | connecting | open (welcomed) | offline
    everWelcomed: false,
    ws: null,
    gen: 0,
    attempt: 0,
    reconnectTimer: null,
    pingTimer: null,
    lastFrameAt: 0,
    pending: [], // unconfirmed customer messages, oldest first
    byId: {}, // message id -> record
    streams: {}, // reply_to -> stream record
    answered: {}, // reply_to -> true once its answer is stored: late deltas are ignored
    feedbackReq: {}, // message id -> {value, comment}
    handoffWanted: false,
    waitTimer: null,
    typingRole: null,
    waitingReply: false,
    typingSent: false,
    typingTimer: null,
    isOpen: false,
    unread: 0,
    // The end-of-chat rating: state idle | sending | done; conv: the conversation it is for.
    rating: { value: 0, comment: "", state: "idle", error: "", conv: null },
    askEmail: false, // the server asks for an email address (`ask_email`, outside business hours)
    outOfHours: false,
    backAt: null,
    email: { state: "idle", value: "", error: "", conv: null }, // state: idle | sending | done
  };

  (function loadOutbox() {
    try {
      var saved = JSON.parse(storage.get(OUTBOX_KEY) || "[]");
      if (Array.isArray(saved)) {
        saved.forEach(function (p) {
          if (p && typeof p.client_id === "string" && typeof p.text === "string") {
            S.pending.push({ client_id: p.client_id, text: p.text, state: "queued", rec: null });
          }
        });
      }
    } catch (e) {
      storage.remove(OUTBOX_KEY);
    }
  })();

  function saveOutbox() {
    var keep = S.pending
      .filter(function (p) {
        return p.state !== "failed" && p.state !== "ended";
      })
      .map(function (p) {
        return { client_id: p.client_id, text: p.text };
      });
    if (keep.length) storage.set(OUTBOX_KEY, JSON.stringify(keep));
    else storage.remove(OUTBOX_KEY);
  }

  // ---------------------------------------------------------------- DOM skeleton

  var hostEl, root, ui;

  function build() {
    hostEl = document.createElement("div");
    hostEl.id = "smallbot-support";
    root = hostEl.attachShadow({ mode: "open" });

    var extra = "";
    if (CFG.accent && window.CSS && window.CSS.supports && window.CSS.supports("color", CFG.accent) && !/[;{}<>]/.test(CFG.accent)) {
      var fg = contrastText(CFG.accent);
      extra = "\n:host{--sb-accent:" + CFG.accent + (fg ? ";--sb-accent-text:" + fg : "") + "}";
    }
    var sheetText = STYLE_TEXT + extra;
    var adopted = false;
    try {
      if ("adoptedStyleSheets" in root && window.CSSStyleSheet && "replaceSync" in CSSStyleSheet.prototype) {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(sheetText);
        root.adoptedStyleSheets = [sheet];
        adopted = true;
      }
    } catch (e) {
      adopted = false;
    }
    if (!adopted) {
      var style = document.createElement("style");
      // Host pages with a strict style-src give the script tag a nonce; the sheet reuses it.
      if (script.nonce) style.nonce = script.nonce;
      style.textContent = sheetText;
      root.appendChild(style);
    }

    var wrap = el("div", "sb-root sb-" + CFG.position);
    root.appendChild(wrap);

    var panelId = "sb-panel";
    var panel = el("div", "sb-panel");
    panel.id = panelId;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", CFG.title + " chat");
    panel.setAttribute("aria-modal", "false");
    panel.hidden = true;

    var header = el("div", "sb-header");
    var avatar = el("div", "sb-avatar");
    avatar.appendChild(icon("chat", 22));
    var headText = el("div", "sb-head-text");
    var title = el("h2", "sb-title", CFG.title);
    title.id = "sb-title";
    var status = el("p", "sb-status");
    status.setAttribute("role", "status");
    var dot = el("span", "sb-dot");
    dot.setAttribute("aria-hidden", "true");
    var statusText = el("span", "sb-status-text");
    status.appendChild(dot);
    status.appendChild(statusText);
    headText.appendChild(title);
    headText.appendChild(status);
    var closeBtn = el("button", "sb-close");
    closeBtn.type = "button";
    closeBtn.setAttribute("aria-label", "Close chat");
    closeBtn.appendChild(icon("close", 20));
    header.appendChild(avatar);
    header.appendChild(headText);
    header.appendChild(closeBtn);

    // Outside business hours the server may ask for an email address (status `ask_email`).
    var emailBox = el("div", "sb-email");
    emailBox.hidden = true;
    var emailForm = el("form", "sb-email-form");
    emailForm.noValidate = true; // checked here, so the message sits next to the field
    var emailLabel = el("label", "sb-email-label");
    emailLabel.htmlFor = "sb-email-input";
    emailLabel.appendChild(icon("mail", 18));
    emailLabel.appendChild(document.createTextNode("Leave your email and we'll get back to you"));
    var emailRow = el("div", "sb-email-row");
    var emailInput = el("input", "sb-email-input");
    emailInput.id = "sb-email-input";
    emailInput.type = "email";
    emailInput.name = "email";
    emailInput.autocomplete = "email";
    emailInput.maxLength = 254;
    emailInput.placeholder = "name@example.com";
    emailInput.spellcheck = false;
    emailInput.setAttribute("autocapitalize", "off");
    emailInput.setAttribute("enterkeyhint", "send");
    emailInput.setAttribute("aria-describedby", "sb-email-error");
    var emailSend = el("button", "sb-btn sb-btn-primary", "Send");
    emailSend.type = "submit";
    emailSend.setAttribute("aria-label", "Send email address");
    emailRow.appendChild(emailInput);
    emailRow.appendChild(emailSend);
    var emailError = el("p", "sb-email-error");
    emailError.id = "sb-email-error";
    emailError.setAttribute("role", "alert");
    emailForm.appendChild(emailLabel);
    emailForm.appendChild(emailRow);
    emailForm.appendChild(emailError);
    var emailDone = el("div", "sb-email-done");
    var emailThanks = el("p");
    emailThanks.setAttribute("role", "status");
    emailThanks.setAttribute("aria-live", "polite");
    var emailChange = el("button", "sb-link-btn", "Change");
    emailChange.type = "button";
    emailChange.setAttribute("aria-label", "Change email address");
    emailChange.hidden = true;
    emailDone.appendChild(emailThanks);
    emailDone.appendChild(emailChange);
    emailBox.appendChild(emailForm);
    emailBox.appendChild(emailDone);

    var scroll = el("div", "sb-scroll");
    var log = el("div", "sb-log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-relevant", "additions text");
    log.setAttribute("aria-label", "Conversation");
    log.tabIndex = 0;
    var typing = el("div", "sb-typing");
    typing.hidden = true;
    for (var d = 0; d < 3; d++) typing.appendChild(el("span", "sb-tdot"));
    var typingLabel = el("span", "sb-vh", "Typing");
    typing.appendChild(typingLabel);
    scroll.appendChild(log);
    scroll.appendChild(typing);

    var notices = el("div", "sb-notices");

    var footer = el("div", "sb-footer");
    var handoff = el("button", "sb-handoff");
    handoff.type = "button";
    handoff.appendChild(icon("person", 16));
    var handoffLabel = el("span", null, "Talk to a person");
    handoff.appendChild(handoffLabel);
    var form = el("form", "sb-composer");
    form.noValidate = true;
    var input = el("textarea", "sb-input");
    input.rows = 1;
    input.placeholder = "Write a message…";
    input.setAttribute("aria-label", "Message");
    input.setAttribute("enterkeyhint", "send");
    var send = el("button", "sb-send");
    send.type = "submit";
    send.appendChild(icon("send", 16));
    send.appendChild(document.createTextNode("Send"));
    form.appendChild(input);
    form.appendChild(send);
    var hint = el("p", "sb-footnote", "Enter to send · Shift+Enter for a new line");

    // Once the conversation has ended (status `resolved`) this replaces the message box.
    var ended = el("div", "sb-ended");
    ended.hidden = true;
    var endedText = el("p", "sb-ended-text", "This conversation has ended.");
    var rate = el("form", "sb-rate");
    rate.noValidate = true;
    var rateQ = el("p", "sb-rate-q", "How was this conversation?");
    rateQ.id = "sb-rate-q";
    var stars = el("div", "sb-stars");
    stars.setAttribute("role", "group");
    stars.setAttribute("aria-labelledby", "sb-rate-q");
    var starBtns = [];
    for (var n = 1; n <= 5; n++) {
      var star = el("button", "sb-star");
      star.type = "button";
      star.setAttribute("data-value", String(n));
      star.setAttribute("aria-label", n === 1 ? "1 star" : n + " stars");
      star.setAttribute("aria-pressed", "false");
      star.title = RATING_WORDS[n - 1];
      star.appendChild(icon("star", 24));
      stars.appendChild(star);
      starBtns.push(star);
    }
    var rateComment = el("textarea");
    rateComment.setAttribute("aria-label", "Anything to add? (optional)");
    rateComment.placeholder = "Anything to add? (optional)";
    rateComment.maxLength = RATING_COMMENT_MAX;
    rateComment.rows = 2;
    var rateRow = el("div", "sb-row");
    var rateSend = el("button", "sb-btn sb-btn-primary", "Send rating");
    rateSend.type = "submit";
    rateRow.appendChild(rateSend);
    var rateError = el("p", "sb-rate-error");
    rateError.setAttribute("role", "alert");
    rate.appendChild(rateQ);
    rate.appendChild(stars);
    rate.appendChild(rateComment);
    rate.appendChild(rateRow);
    rate.appendChild(rateError);
    var rateThanks = el("p", "sb-rate-thanks");
    rateThanks.setAttribute("role", "status");
    var newConv = el("button", "sb-btn sb-btn-primary sb-new", "Start a new conversation");
    newConv.type = "button";
    ended.appendChild(endedText);
    ended.appendChild(rate);
    ended.appendChild(rateThanks);
    ended.appendChild(newConv);

    footer.appendChild(handoff);
    footer.appendChild(form);
    footer.appendChild(hint);
    footer.appendChild(ended);

    panel.appendChild(header);
    panel.appendChild(emailBox);
    panel.appendChild(scroll);
    panel.appendChild(notices);
    panel.appendChild(footer);

    var launcher = el("button", "sb-launcher");
    launcher.type = "button";
    launcher.setAttribute("aria-controls", panelId);
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-haspopup", "dialog");
    var badge = el("span", "sb-badge");
    badge.hidden = true;
    badge.setAttribute("aria-hidden", "true");
    launcher.appendChild(icon("chat", 28));
    launcher.appendChild(badge);

    wrap.appendChild(panel);
    wrap.appendChild(launcher);

    ui = {
      wrap: wrap, panel: panel, launcher: launcher, badge: badge, closeBtn: closeBtn, statusText: statusText,
      dot: dot, scroll: scroll, log: log, typing: typing, typingLabel: typingLabel, notices: notices,
      handoff: handoff, handoffLabel: handoffLabel, form: form, input: input, send: send,
      emailBox: emailBox, emailForm: emailForm, emailInput: emailInput, emailSend: emailSend,
      emailError: emailError, emailThanks: emailThanks, emailChange: emailChange, hint: hint,
      ended: ended, endedText: endedText, rate: rate, stars: starBtns, rateComment: rateComment,
      rateSend: rateSend, rateError: rateError, rateThanks: rateThanks, newConv: newConv,
    };

    launcher.addEventListener("click", function () {
      if (S.isOpen) close();
      else open();
    });
    closeBtn.addEventListener("click", function () {
      close();
    });
    root.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && S.isOpen) {
        e.preventDefault();
        e.stopPropagation();
        close();
      }
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      submitInput();
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submitInput();
      }
    });
    input.addEventListener("input", function () {
      autosize();
      saveDraft();
      customerTyping();
    });
    handoff.addEventListener("click", function () {
      if (handoff.getAttribute("aria-disabled") !== "true") requestHandoff();
    });
    emailForm.addEventListener("submit", function (e) {
      e.preventDefault();
      submitEmail();
    });
    emailInput.addEventListener("input", function () {
      if (S.email.error) {
        S.email.error = "";
        renderEmail();
      }
    });
    starBtns.forEach(function (b) {
      b.addEventListener("click", function () {
        if (S.rating.state !== "idle") return;
        S.rating.value = Number(b.getAttribute("data-value"));
        S.rating.error = "";
        renderEnded();
      });
    });
    rate.addEventListener("submit", function (e) {
      e.preventDefault();
      submitRating();
    });
    newConv.addEventListener("click", function () {
      startNewConversation();
    });
    emailChange.addEventListener("click", function () {
      S.email.state = "idle"; // the stored note stays: that address is on file until a new ack
      emailInput.value = S.email.value; // after a reload the field starts empty
      renderEmail();
      emailInput.focus();
      emailInput.select();
    });

    var draft = null;
    try {
      draft = sessionStorage.getItem(DRAFT_KEY);
    } catch (e) {
      /* ignore */
    }
    if (draft) input.value = draft;

    updateLauncher();
    renderStatus();
    resetLog();
    S.pending.forEach(function (p) {
      renderPending(p);
    });
    document.body.appendChild(hostEl);
  }

  function sessionGet(k) {
    try {
      return sessionStorage.getItem(k);
    } catch (e) {
      return null;
    }
  }

  function sessionSet(k, v) {
    try {
      sessionStorage.setItem(k, v);
    } catch (e) {
      /* ignore */
    }
  }

  function sessionRemove(k) {
    try {
      sessionStorage.removeItem(k);
    } catch (e) {
      /* ignore */
    }
  }

  function saveDraft() {
    try {
      if (ui.input.value) sessionStorage.setItem(DRAFT_KEY, ui.input.value);
      else sessionStorage.removeItem(DRAFT_KEY);
    } catch (e) {
      /* ignore */
    }
  }

  function autosize() {
    var i = ui.input;
    i.style.height = "auto";
    i.style.height = Math.min(i.scrollHeight, 132) + "px";
  }

  // ---------------------------------------------------------------- open / close

  function open() {
    if (!ui) return;
    S.isOpen = true;
    ui.panel.hidden = false;
    ui.wrap.classList.add("sb-open");
    S.unread = 0;
    updateLauncher();
    connect();
    scrollToEnd(true);
    autosize();
    ui.input.focus({ preventScroll: true });
  }

  function close() {
    if (!ui || !S.isOpen) return;
    S.isOpen = false;
    ui.panel.hidden = true;
    ui.wrap.classList.remove("sb-open");
    updateLauncher();
    ui.launcher.focus();
  }

  function updateLauncher() {
    var l = ui.launcher;
    l.setAttribute("aria-expanded", S.isOpen ? "true" : "false");
    var label = S.isOpen ? "Close " + CFG.title + " chat" : "Open " + CFG.title + " chat";
    if (!S.isOpen && S.unread) label += " (" + S.unread + " new)";
    l.setAttribute("aria-label", label);
    var svg = l.querySelector("svg");
    var next = icon(S.isOpen ? "down" : "chat", 28);
    l.replaceChild(next, svg);
    ui.badge.hidden = S.isOpen || !S.unread;
    ui.badge.textContent = S.unread > 9 ? "9+" : String(S.unread);
  }

  function noteUnread() {
    if (!S.isOpen) {
      S.unread += 1;
      updateLauncher();
    }
  }

  // ---------------------------------------------------------------- status line

  function composedStatus() {
    if (S.conn !== "open") {
      if (S.conn === "offline" || S.everWelcomed) return ["offline", "Offline — reconnecting…"];
      return ["connecting", "Connecting…"];
    }
    if (S.statusText) return [S.status, S.statusText];
    switch (S.status) {
      case "queued": {
        var t = "Waiting for a person";
        if (S.outOfHours) {
          var back = formatTime(S.backAt);
          t = "Our team is away" + (back ? " until " + back : " for now");
          if (S.queuePosition) t += " — you are number " + S.queuePosition + " in the queue";
          return ["queued", t + "."];
        }
        if (S.queuePosition) t += " — you are number " + S.queuePosition + " in the queue";
        if (S.waitMinutes) t += ", usual wait about " + S.waitMinutes + " min";
        return ["queued", t + "."];
      }
      case "agent":
        return ["agent", (S.agentName || "A support agent") + " joined the conversation"];
      case "resolved":
        return ["resolved", "This conversation is resolved"];
      default:
        return ["bot", "Usually replies in a few seconds"];
    }
  }

  function renderStatus() {
    var s = composedStatus();
    ui.dot.setAttribute("data-state", s[0]);
    if (ui.statusText.textContent !== s[1]) ui.statusText.textContent = s[1];
    renderHandoff();
    renderEnded();
  }

  /** "Talk to a person": offered while the bot answers, marked as asked while queued (it stays
   * focusable, with aria-disabled), and gone while an agent has the conversation. */
  function renderHandoff() {
    var h = ui.handoff;
    var gone = S.status === "agent" || S.status === "resolved";
    var asked = !gone && (S.status === "queued" || S.statusProvisional);
    var label = asked ? "A person has been asked" : "Talk to a person";
    if (h.hidden !== gone) {
      var hadFocus = root.activeElement === h;
      mutate(function () {
        h.hidden = gone;
      });
      if (hadFocus) ui.input.focus({ preventScroll: true });
    }
    if (asked) h.setAttribute("aria-disabled", "true");
    else h.removeAttribute("aria-disabled");
    if (ui.handoffLabel.textContent !== label) {
      ui.handoffLabel.textContent = label;
      h.replaceChild(icon(asked ? "check" : "person", 16), h.querySelector("svg"));
    }
  }

  function applyStatus(f, text) {
    var prev = S.status;
    var wasProvisional = S.statusProvisional;
    S.statusProvisional = false;
    if (typeof f.status === "string") S.status = f.status;
    S.queuePosition = f.queue_position == null ? null : f.queue_position;
    S.waitMinutes = f.wait_minutes == null ? null : f.wait_minutes;
    S.agentName = f.agent_name == null ? null : String(f.agent_name);
    // Out-of-hours fields: absent ones are kept while the status stays the same.
    var same = prev === S.status;
    S.askEmail = typeof f.ask_email === "boolean" ? f.ask_email : same && S.askEmail;
    S.outOfHours = typeof f.out_of_hours === "boolean" ? f.out_of_hours : same && S.outOfHours;
    if (f.back_at !== undefined) S.backAt = typeof f.back_at === "string" ? f.back_at : null;
    else if (!same) S.backAt = null;
    if (text !== undefined) S.statusText = text;
    else if (prev !== S.status || wasProvisional) S.statusText = null;
    if (S.status !== "bot") stopWaiting();
    if (S.status === "resolved") endPending();
    renderStatus();
    renderEmail();
  }

  // ---------------------------------------------------------------- email request

  function renderEmail() {
    var e = S.email;
    var done = e.state === "done";
    var show = S.askEmail;
    var thanks = done ? "Thanks — we'll email you at " + e.value + "." : "";
    if (ui.emailBox.hidden === show || ui.emailForm.hidden !== done) {
      mutate(function () {
        ui.emailBox.hidden = !show;
        ui.emailForm.hidden = done;
        ui.emailChange.hidden = !done;
      });
    }
    if (ui.emailThanks.textContent !== thanks) ui.emailThanks.textContent = thanks;
    if (ui.emailError.textContent !== e.error) ui.emailError.textContent = e.error;
    if (e.error) ui.emailInput.setAttribute("aria-invalid", "true");
    else ui.emailInput.removeAttribute("aria-invalid");
    if (e.state === "sending") ui.emailSend.setAttribute("aria-disabled", "true");
    else ui.emailSend.removeAttribute("aria-disabled");
  }

  function submitEmail() {
    var input = ui.emailInput;
    var value = input.value.replace(/^\s+|\s+$/g, "");
    if (S.email.state === "sending") return;
    var problem = !value
      ? "Please enter your email address."
      : input.validity && input.validity.typeMismatch
        ? "Please enter a valid email address, like name@example.com."
        : "";
    S.email = { state: problem ? "idle" : "sending", value: value, error: problem, conv: S.conversationId };
    renderEmail();
    if (problem) {
      input.focus();
      return;
    }
    if (S.conn === "open") wsSend({ type: "email", email: value });
    else connect();
  }

  function flushEmail() {
    if (S.email.state === "sending") wsSend({ type: "email", email: S.email.value });
  }

  function onEmailAck() {
    var e = S.email;
    if (e.state !== "sending") return;
    var hadFocus = ui.emailBox.contains(root.activeElement);
    e.state = "done";
    e.error = "";
    sessionSet(EMAIL_KEY, JSON.stringify({ conversation_id: e.conv, email: e.value }));
    renderEmail();
    if (hadFocus) ui.input.focus({ preventScroll: true });
  }

  function onEmailError(text) {
    S.email.state = "idle";
    S.email.error = text;
    renderEmail(); // the typed address stays in the field
    if (S.isOpen) ui.emailInput.focus({ preventScroll: true });
  }

  /** On welcome: forget another conversation's address, or recall this one's after a reload. */
  function restoreEmail() {
    if (S.email.conv === S.conversationId && S.email.state !== "idle") return;
    var saved = null;
    try {
      saved = JSON.parse(sessionGet(EMAIL_KEY) || "null");
    } catch (err) {
      saved = null;
    }
    if (saved && saved.conversation_id != null && saved.conversation_id === S.conversationId && typeof saved.email === "string") {
      S.email = { state: "done", value: saved.email, error: "", conv: S.conversationId };
    } else if (S.email.conv !== S.conversationId) {
      if (saved) sessionRemove(EMAIL_KEY);
      S.email = { state: "idle", value: "", error: "", conv: S.conversationId };
    }
  }

  // ---------------------------------------------------------------- log rendering

  function isNearEnd() {
    var s = ui.scroll;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToEnd(force) {
    if (force || S.stick) {
      var s = ui.scroll;
      s.scrollTop = s.scrollHeight;
    }
  }

  /** Run a DOM mutation and keep the view pinned to the end if it was there. */
  function mutate(fn, force) {
    S.stick = !ui.scroll.clientHeight || isNearEnd();
    fn();
    scrollToEnd(force);
  }

  function resetLog() {
    while (ui.log.firstChild) ui.log.removeChild(ui.log.firstChild);
    S.byId = {};
    S.streams = {};
    if (CFG.greeting) {
      var g = el("div", "sb-msg sb-msg-bot sb-greeting");
      g.appendChild(el("div", "sb-author", "Assistant"));
      var b = el("div", "sb-bubble");
      b.appendChild(el("p", null, CFG.greeting));
      g.appendChild(b);
      ui.log.appendChild(g);
    }
  }

  function formatTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    try {
      return d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    } catch (e) {
      return d.toLocaleString();
    }
  }

  function authorFor(msg) {
    if (msg.role === "agent") return msg.author_name ? String(msg.author_name) : "Support agent";
    if (msg.role === "bot") return msg.author_name ? String(msg.author_name) : "Assistant";
    return null;
  }

  /** Build (or rebuild) the element for a stored message object. */
  function messageNode(msg) {
    var role = ["customer", "bot", "agent", "system"].indexOf(msg.role) >= 0 ? msg.role : "system";
    var node = el("div", "sb-msg sb-msg-" + role);
    if (msg.id != null) node.setAttribute("data-id", String(msg.id));
    if (msg.client_id) node.setAttribute("data-client-id", String(msg.client_id));
    if (role === "system") {
      if (typeof msg.kind === "string" && msg.kind) node.setAttribute("data-kind", msg.kind);
      node.textContent = String(msg.text || "");
      return node;
    }
    var author = authorFor(msg);
    if (author) node.appendChild(el("div", "sb-author", author));
    var bubble = el("div", "sb-bubble");
    var when = formatTime(msg.created_at);
    if (when) bubble.title = when;
    if (role === "bot") {
      renderMarkdown(bubble, msg.text, msg.citations);
    } else {
      bubble.textContent = String(msg.text || "");
    }
    node.appendChild(bubble);
    if (role === "bot") {
      var cites = Array.isArray(msg.citations) ? msg.citations : [];
      var links = cites
        .map(function (c) {
          var href = c && citationUrl(c.url);
          return href ? externalLink(href, citationLabel(c)) : null;
        })
        .filter(Boolean);
      if (links.length) {
        var src = el("div", "sb-sources");
        src.appendChild(el("p", "sb-sources-title", links.length > 1 ? "Sources" : "Source"));
        var ol = el("ol");
        links.forEach(function (a) {
          var li = el("li");
          li.appendChild(a);
          ol.appendChild(li);
        });
        src.appendChild(ol);
        node.appendChild(src);
      }
      // No thumbs on a decline (action "escalate"): there is no answer to rate.
      if (msg.id != null && msg.action !== "escalate") node.appendChild(feedbackNode(msg));
    }
    return node;
  }

  function feedbackNode(msg) {
    var box = el("div", "sb-feedback");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Rate this answer");
    box.appendChild(el("span", null, "Helpful?"));
    [
      ["up", "up", "This answer was helpful"],
      ["down", "thumbDown", "This answer was not helpful"],
    ].forEach(function (d) {
      var b = el("button", "sb-fb-btn");
      b.type = "button";
      b.setAttribute("data-value", d[0]);
      b.setAttribute("aria-label", d[2]);
      b.setAttribute("aria-pressed", msg.feedback === d[0] ? "true" : "false");
      b.appendChild(icon(d[1], 16));
      b.addEventListener("click", function () {
        giveFeedback(msg.id, d[0], null, box);
      });
      box.appendChild(b);
    });
    return box;
  }

  function placeNode(node, msgId) {
    var prev = msgId != null ? S.byId[msgId] : null;
    if (prev && prev.parentNode) {
      prev.parentNode.replaceChild(node, prev);
    } else {
      // Stored messages stay above the customer's own unconfirmed ones.
      var firstPending = null;
      for (var i = 0; i < S.pending.length; i++) {
        var r = S.pending[i].rec;
        if (r && r.parentNode === ui.log) {
          firstPending = r;
          break;
        }
      }
      ui.log.insertBefore(node, firstPending);
    }
    if (msgId != null) S.byId[msgId] = node;
  }

  function addMessage(msg, live) {
    if (!msg || typeof msg !== "object") return;
    if (msg.role === "customer" && msg.client_id) {
      var p = findPending(msg.client_id);
      if (p) {
        confirmPending(p, msg, live);
        return;
      }
    }
    var known = msg.id != null && !!S.byId[msg.id];
    if (known && msg.role === "customer") return; // duplicate echo
    var stream = null;
    if (msg.role === "bot" && msg.id != null && !S.byId[msg.id]) {
      // A bot message without reply.done: take over the one open stream (or the one it names).
      var keys = Object.keys(S.streams);
      if (msg.reply_to != null && S.streams[msg.reply_to]) stream = S.streams[msg.reply_to];
      else if (keys.length === 1) stream = S.streams[keys[0]];
    }
    mutate(function () {
      var node = messageNode(msg);
      if (stream) {
        stream.node.parentNode.replaceChild(node, stream.node);
        delete S.streams[stream.replyTo];
        S.answered[stream.replyTo] = true;
        if (msg.id != null) S.byId[msg.id] = node;
      } else {
        placeNode(node, msg.id);
      }
    }, live && msg.role === "customer");
    if (live && (msg.role === "bot" || msg.role === "agent")) {
      stopWaiting();
      setTyping(null);
      if (!known) noteUnread();
    }
    if (msg.role === "system") renderEnded();
  }

  // ---------------------------------------------------------------- pending messages

  function findPending(clientId) {
    for (var i = 0; i < S.pending.length; i++) if (S.pending[i].client_id === clientId) return S.pending[i];
    return null;
  }

  function renderPending(p) {
    var node = el("div", "sb-msg sb-msg-customer sb-pending");
    node.setAttribute("data-client-id", p.client_id);
    node.appendChild(el("div", "sb-bubble", p.text));
    node.appendChild(el("div", "sb-meta"));
    p.rec = node;
    ui.log.appendChild(node);
    renderPendingMeta(p);
  }

  function renderPendingMeta(p) {
    var node = p.rec;
    if (!node) return;
    var meta = node.querySelector(".sb-meta");
    while (meta.firstChild) meta.removeChild(meta.firstChild);
    node.classList.toggle("sb-failed", p.state === "failed");
    node.classList.toggle("sb-ended-msg", p.state === "ended");
    if (p.state === "failed") {
      meta.appendChild(el("span", null, p.reason || "Not sent."));
      var btn = el("button", "sb-link-btn", p.tooLong ? "Edit" : "Retry");
      btn.type = "button";
      btn.addEventListener("click", function () {
        if (p.tooLong) editFailed(p);
        else retryPending(p);
      });
      meta.appendChild(btn);
    } else if (p.state === "ended") {
      meta.appendChild(el("span", null, "Not sent — the conversation had ended"));
    } else if (S.conn === "open" && p.state === "sent") {
      meta.appendChild(el("span", null, "Sending…"));
    } else if (p.state === "held") {
      meta.appendChild(el("span", null, "Waiting to send…"));
    } else {
      meta.appendChild(el("span", null, "Waiting for connection…"));
    }
  }

  function confirmPending(p, msg, live) {
    S.pending.splice(S.pending.indexOf(p), 1);
    saveOutbox();
    var node = messageNode(msg);
    node.classList.add("sb-confirmed");
    if (p.rec && p.rec.parentNode) p.rec.parentNode.replaceChild(node, p.rec);
    else placeNode(node, null);
    if (msg.id != null) S.byId[msg.id] = node;
    p.rec = null;
    if (live && S.status === "bot") startWaiting();
  }

  function transmit(p) {
    if (S.conn !== "open") return;
    if (wsSend({ type: "message", text: p.text, client_id: p.client_id })) {
      p.state = "sent";
      p.gen = S.gen;
    }
    renderPendingMeta(p);
  }

  function flushPending() {
    S.pending.forEach(function (p) {
      if (p.state !== "failed" && p.state !== "held" && p.state !== "ended") transmit(p);
    });
  }

  function retryPending(p) {
    p.state = "queued";
    p.tooLong = false;
    saveOutbox();
    transmit(p);
    renderPendingMeta(p);
    if (S.conn !== "open") connect();
  }

  function editFailed(p) {
    S.pending.splice(S.pending.indexOf(p), 1);
    saveOutbox();
    if (p.rec && p.rec.parentNode) p.rec.parentNode.removeChild(p.rec);
    ui.input.value = p.text + (ui.input.value ? "\n" + ui.input.value : "");
    saveDraft();
    autosize();
    ui.input.focus();
  }

  /** The oldest message sent on this socket that the server has not answered yet. */
  function oldestInFlight(clientId) {
    if (clientId) return findPending(clientId);
    for (var i = 0; i < S.pending.length; i++) {
      var p = S.pending[i];
      if (p.state === "sent" && p.gen === S.gen) return p;
    }
    return null;
  }

  function sendText(text) {
    text = String(text == null ? "" : text).replace(/^\s+|\s+$/g, "");
    if (!text || S.status === "resolved") return false;
    var p = { client_id: uuid(), text: text, state: "queued", rec: null };
    S.pending.push(p);
    saveOutbox();
    mutate(function () {
      renderPending(p);
    }, true);
    stopCustomerTyping();
    if (S.conn === "open") transmit(p);
    else connect();
    return true;
  }

  function submitInput() {
    if (sendText(ui.input.value)) {
      ui.input.value = "";
      saveDraft();
      autosize();
    }
    ui.input.focus();
  }

  // ---------------------------------------------------------------- streaming

  function streamFor(replyTo) {
    var s = S.streams[replyTo];
    if (s) return s;
    var node = el("div", "sb-msg sb-msg-bot sb-streaming");
    node.setAttribute("data-reply-to", String(replyTo));
    node.setAttribute("aria-busy", "true");
    node.appendChild(el("div", "sb-author", "Assistant"));
    var bubble = el("div", "sb-bubble");
    node.appendChild(bubble);
    s = { replyTo: replyTo, next: 0, text: "", buffer: {}, node: node, bubble: bubble };
    S.streams[replyTo] = s;
    mutate(function () {
      placeNode(node, null);
    });
    return s;
  }

  function paintStream(s) {
    mutate(function () {
      renderMarkdown(s.bubble, s.text, null);
      if (!s.bubble.firstChild) s.bubble.appendChild(el("p"));
    });
  }

  function onDelta(f) {
    if (f.reply_to == null || typeof f.seq !== "number" || typeof f.delta !== "string") return;
    if (S.answered[f.reply_to]) return;
    var s = streamFor(f.reply_to);
    stopWaiting();
    setTyping(null);
    if (f.seq < s.next || s.buffer[f.seq] !== undefined) return; // duplicate
    s.buffer[f.seq] = f.delta;
    while (s.buffer[s.next] !== undefined) {
      s.text += s.buffer[s.next];
      delete s.buffer[s.next];
      s.next += 1;
    }
    paintStream(s);
  }

  function onDone(f) {
    var msg = f.message;
    if (!msg || typeof msg !== "object") return;
    if (msg.role == null) msg.role = "bot";
    var s = f.reply_to != null ? S.streams[f.reply_to] : null;
    var known = msg.id != null && !!S.byId[msg.id];
    if (f.reply_to != null) S.answered[f.reply_to] = true;
    stopWaiting();
    setTyping(null);
    mutate(function () {
      var node = messageNode(msg);
      if (s && s.node.parentNode) {
        s.node.parentNode.replaceChild(node, s.node);
        var old = msg.id != null ? S.byId[msg.id] : null;
        if (old && old !== node && old.parentNode) old.parentNode.removeChild(old);
        if (msg.id != null) S.byId[msg.id] = node;
      } else {
        placeNode(node, msg.id);
      }
      if (s) delete S.streams[f.reply_to];
    });
    if (!known) noteUnread();
  }

  // ---------------------------------------------------------------- typing indicator

  function setTyping(role) {
    S.typingRole = role;
    paintTyping();
  }

  function startWaiting() {
    S.waitingReply = true;
    clearTimeout(S.waitTimer);
    S.waitTimer = setTimeout(stopWaiting, WAIT_TYPING_MS);
    paintTyping();
  }

  function stopWaiting() {
    S.waitingReply = false;
    clearTimeout(S.waitTimer);
    paintTyping();
  }

  function paintTyping() {
    var role = S.typingRole || (S.waitingReply ? "bot" : null);
    var show = !!role && !Object.keys(S.streams).length;
    if (show) {
      ui.typingLabel.textContent =
        role === "agent" ? (S.agentName || "The agent") + " is typing" : "The assistant is typing";
    }
    if (ui.typing.hidden === !show) return;
    mutate(function () {
      ui.typing.hidden = !show;
    });
  }

  function customerTyping() {
    if (S.conn !== "open" || (S.status !== "agent" && S.status !== "queued")) return;
    if (ui.input.disabled) return;
    if (!S.typingSent && ui.input.value) {
      S.typingSent = true;
      wsSend({ type: "typing", active: true });
    }
    clearTimeout(S.typingTimer);
    S.typingTimer = setTimeout(stopCustomerTyping, 3000);
  }

  function stopCustomerTyping() {
    clearTimeout(S.typingTimer);
    if (S.typingSent) {
      S.typingSent = false;
      wsSend({ type: "typing", active: false });
    }
  }

  // ---------------------------------------------------------------- feedback

  function giveFeedback(messageId, value, comment, box) {
    var req = { value: value, comment: comment };
    S.feedbackReq[messageId] = req;
    var frame = { type: "feedback", message_id: messageId, value: value };
    if (comment) frame.comment = comment;
    Array.prototype.forEach.call(box.querySelectorAll(".sb-fb-btn"), function (b) {
      if (b.getAttribute("data-value") === value) b.setAttribute("data-busy", "");
      else b.removeAttribute("data-busy");
    });
    if (S.conn === "open") wsSend(frame);
    else connect();
    if (value === "down" && !comment) showCommentForm(messageId, box);
    if (value === "up") removeCommentForm(box);
  }

  function removeCommentForm(box) {
    var node = box.parentNode;
    var f = node && node.querySelector(".sb-fb-form");
    if (f) f.parentNode.removeChild(f);
  }

  function showCommentForm(messageId, box) {
    var node = box.parentNode;
    if (!node || node.querySelector(".sb-fb-form, .sb-fb-thanks")) return;
    var form = el("form", "sb-fb-form");
    var ta = el("textarea");
    ta.setAttribute("aria-label", "What was missing or wrong? (optional)");
    ta.placeholder = "What was missing or wrong? (optional)";
    ta.maxLength = 1000;
    var row = el("div", "sb-row");
    var skip = el("button", "sb-btn", "Skip");
    skip.type = "button";
    var ok = el("button", "sb-btn sb-btn-primary", "Send feedback");
    ok.type = "submit";
    row.appendChild(skip);
    row.appendChild(ok);
    form.appendChild(ta);
    form.appendChild(row);
    skip.addEventListener("click", function () {
      form.parentNode.removeChild(form);
      ui.input.focus();
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var c = ta.value.trim();
      if (c) giveFeedback(messageId, "down", c, box);
      var thanks = el("p", "sb-fb-thanks", "Thanks — your feedback helps us improve.");
      form.parentNode.replaceChild(thanks, form);
      ui.input.focus();
    });
    mutate(function () {
      node.appendChild(form);
    });
    ta.focus({ preventScroll: true });
  }

  function onAck(f) {
    if (f["for"] === "email") {
      onEmailAck();
      return;
    }
    if (f["for"] === "rate") {
      onRateAck(f);
      return;
    }
    if (f["for"] !== "feedback" || f.message_id == null) return;
    var req = S.feedbackReq[f.message_id];
    var node = S.byId[f.message_id];
    delete S.feedbackReq[f.message_id];
    if (!req || !node) return;
    Array.prototype.forEach.call(node.querySelectorAll(".sb-fb-btn"), function (b) {
      b.removeAttribute("data-busy");
      b.setAttribute("aria-pressed", b.getAttribute("data-value") === req.value ? "true" : "false");
    });
  }

  function flushFeedback() {
    Object.keys(S.feedbackReq).forEach(function (id) {
      var r = S.feedbackReq[id];
      var frame = { type: "feedback", message_id: Number(id), value: r.value };
      if (r.comment) frame.comment = r.comment;
      wsSend(frame);
    });
  }

  // ---------------------------------------------------------------- handoff / new conversation

  function requestHandoff() {
    S.handoffWanted = true;
    if (S.conn === "open") {
      wsSend({ type: "handoff" });
      S.handoffWanted = false;
      if (S.status === "bot") {
        // Shown until the server's status frame arrives.
        S.statusText = "Asking for a person…";
        S.statusProvisional = true;
        renderStatus();
      }
    } else {
      open();
    }
  }

  // ---------------------------------------------------------------- the end of a conversation

  /** The conversation ended (status `resolved`): nothing still in the outbox will be sent. Each
   * such message says so and leaves the stored outbox; "Start a new conversation" puts its text
   * back into the message box. A late echo (it was stored just before the end) confirms it. */
  function endPending() {
    var ended = 0;
    S.pending.forEach(function (p) {
      if (p.state === "ended") return;
      p.state = "ended";
      ended += 1;
      renderPendingMeta(p);
    });
    if (!ended) return;
    saveOutbox();
    notice(
      (ended === 1 ? "Your last message was" : "Your last " + ended + " messages were") +
        " not sent because this conversation has ended. Start a new conversation to send " +
        (ended === 1 ? "it." : "them."),
      "info"
    );
  }

  function hasEndedLine() {
    return !!ui.log.querySelector('.sb-msg-system[data-kind="ended"]');
  }

  /** The message box, or (once the conversation has ended) the end panel in its place. */
  function renderEnded() {
    var ended = S.status === "resolved";
    var r = S.rating;
    if (ended && r.conv !== S.conversationId) {
      S.rating = r = { value: 0, comment: "", state: "idle", error: "", conv: S.conversationId };
    }
    if (ui.ended.hidden === ended) {
      var hadFocus = ui.form.contains(root.activeElement) || root.activeElement === ui.handoff;
      mutate(function () {
        ui.ended.hidden = !ended;
        ui.form.hidden = ended;
        ui.hint.hidden = ended;
      });
      ui.input.disabled = ended;
      ui.send.disabled = ended;
      if (ended && hadFocus) ui.stars[0].focus({ preventScroll: true });
    }
    if (!ended) return;
    // The server's "ended" line in the transcript says it already: not twice.
    ui.endedText.hidden = hasEndedLine();
    var done = r.state === "done";
    ui.rate.hidden = done;
    var thanks = done ? "Thanks for rating this conversation " + r.value + " out of 5." : "";
    if (ui.rateThanks.textContent !== thanks) ui.rateThanks.textContent = thanks;
    ui.rateThanks.hidden = !done;
    ui.stars.forEach(function (b) {
      var v = Number(b.getAttribute("data-value"));
      b.setAttribute("aria-pressed", v === r.value ? "true" : "false");
      if (v <= r.value) b.setAttribute("data-on", "");
      else b.removeAttribute("data-on");
    });
    if (r.state === "sending") ui.rateSend.setAttribute("aria-disabled", "true");
    else ui.rateSend.removeAttribute("aria-disabled");
    if (ui.rateError.textContent !== r.error) ui.rateError.textContent = r.error;
  }

  function submitRating() {
    var r = S.rating;
    if (r.state !== "idle") return;
    if (!r.value) {
      r.error = "Please choose from 1 to 5 stars.";
      renderEnded();
      ui.stars[0].focus();
      return;
    }
    r.comment = ui.rateComment.value.replace(/^\s+|\s+$/g, "");
    r.state = "sending";
    r.error = "";
    renderEnded();
    if (S.conn === "open") wsSend(rateFrame());
    else connect();
  }

  function rateFrame() {
    var f = { type: "rate", rating: S.rating.value };
    if (S.rating.comment) f.comment = S.rating.comment;
    return f;
  }

  function flushRating() {
    if (S.rating.state === "sending" && S.rating.conv === S.conversationId) wsSend(rateFrame());
  }

  function onRateAck(f) {
    var r = S.rating;
    if (r.state !== "sending") return;
    if (typeof f.rating === "number") r.value = f.rating;
    r.state = "done";
    var hadFocus = ui.rate.contains(root.activeElement);
    renderEnded();
    if (hadFocus) ui.newConv.focus({ preventScroll: true });
  }

  function onRateError(text) {
    S.rating.state = "idle";
    S.rating.error = text;
    renderEnded();
  }

  function startNewConversation() {
    S.token = null;
    storage.remove(TOKEN_KEY);
    S.conversationId = null;
    S.status = "bot";
    S.statusText = null;
    S.queuePosition = S.waitMinutes = S.agentName = null;
    S.askEmail = S.outOfHours = false;
    S.backAt = null;
    S.email = { state: "idle", value: "", error: "", conv: null };
    sessionRemove(EMAIL_KEY);
    ui.emailInput.value = "";
    renderEmail();
    S.feedbackReq = {};
    S.rating = { value: 0, comment: "", state: "idle", error: "", conv: null };
    ui.rateComment.value = "";
    clearNotices();
    // Messages the ended conversation never got go back into the message box, not out on
    // their own: they were written for the old conversation.
    var unsent = [];
    S.pending = S.pending.filter(function (p) {
      if (p.state !== "ended") return true;
      unsent.push(p.text);
      return false;
    });
    saveOutbox();
    if (unsent.length) {
      ui.input.value = unsent.join("\n") + (ui.input.value ? "\n" + ui.input.value : "");
      saveDraft();
    }
    S.pending.forEach(function (p) {
      if (p.state === "held" || p.state === "sent") p.state = "queued";
    });
    mutate(function () {
      resetLog();
      S.pending.forEach(function (p) {
        if (p.rec) ui.log.appendChild(p.rec);
        renderPendingMeta(p);
      });
    }, true);
    renderStatus();
    autosize();
    if (S.conn === "open") wsSend(helloFrame());
    else connect();
    ui.input.focus();
  }

  // ---------------------------------------------------------------- notices

  function clearNotices() {
    while (ui.notices.firstChild) ui.notices.removeChild(ui.notices.firstChild);
  }

  function notice(text, kind, action) {
    var n = el("div", "sb-notice" + (kind === "info" ? " sb-notice-info" : ""));
    n.setAttribute("role", kind === "info" ? "status" : "alert");
    n.appendChild(icon("alert", 18));
    var body = el("div", "sb-notice-body");
    body.appendChild(el("div", null, text));
    if (action) {
      var a = el("button", "sb-btn sb-btn-primary", action.label);
      a.type = "button";
      a.addEventListener("click", function () {
        if (n.parentNode) n.parentNode.removeChild(n);
        action.run();
      });
      body.appendChild(a);
    }
    n.appendChild(body);
    var x = el("button", "sb-notice-x");
    x.type = "button";
    x.setAttribute("aria-label", "Dismiss");
    x.appendChild(icon("close", 16));
    x.addEventListener("click", function () {
      if (n.parentNode) n.parentNode.removeChild(n);
      ui.input.focus();
    });
    n.appendChild(x);
    // Keep at most three notices; the newest matters most.
    while (ui.notices.childNodes.length >= 3) ui.notices.removeChild(ui.notices.firstChild);
    ui.notices.appendChild(n);
    return n;
  }

  var ERROR_TEXT = {
    rate_limited: "You are sending messages too quickly. Please wait a moment.",
    message_too_long: "That message is too long. Please shorten it and try again.",
    conversation_closed: "This conversation has been closed.",
    server_error: "Something went wrong on our side. Please try again.",
    token_invalid: "Your previous conversation could not be resumed, so a new one was started.",
  };

  // The server refused a message for now (rate limit, transient failure): keep it in the outbox
  // as "held" and send the same client_id again after `delayMs`, unless it was sent meanwhile.
  function holdAndResend(p, delayMs) {
    p.state = "held";
    renderPendingMeta(p);
    setTimeout(function () {
      if (S.pending.indexOf(p) >= 0 && p.state === "held") {
        p.state = "queued";
        transmit(p);
      }
    }, delayMs);
  }

  function onError(f) {
    var code = String(f.code || "");
    var text = typeof f.message === "string" && f.message ? f.message : ERROR_TEXT[code] || "Something went wrong.";
    var p;
    // An answer to a rate frame (the server names it): shown in the rating form.
    if (f["for"] === "rate") {
      onRateError(text);
      return;
    }
    // An answer to the email frame: shown next to the field, not as a notice. Frames are answered
    // in order, so an error naming the email (or with no message in flight) is about it.
    if (
      S.email.state === "sending" &&
      (code === "bad_frame" || code === "server_error") &&
      (/e-?mail/i.test(text) || !oldestInFlight(f.client_id))
    ) {
      onEmailError(text);
      return;
    }
    // A transient failure on the server (its database, say): nothing was stored, so the same
    // client_id is sent again after a pause, a few times, before the message counts as failed.
    if (code === "server_error" && f.retryable) {
      p = oldestInFlight(f.client_id);
      if (p && (p.retries = (p.retries || 0) + 1) <= 5) {
        holdAndResend(p, Math.max(1, Number(f.retry_after) || 2) * 1000 * p.retries);
        return;
      }
    }
    switch (code) {
      case "not_started":
        wsSend(helloFrame());
        return;
      case "token_invalid":
        S.token = null;
        storage.remove(TOKEN_KEY);
        notice(text, "info");
        return;
      case "conversation_closed":
        // The conversation ended before this message reached it: the end panel takes over and
        // every unsent message is marked as such (endPending), none waits to be sent.
        applyStatus({ status: "resolved" }, S.status === "resolved" ? S.statusText : null);
        return;
      case "rate_limited":
        p = oldestInFlight(f.client_id);
        if (f.retry_after && !/\d/.test(text)) text += " (try again in " + Math.ceil(f.retry_after) + " s)";
        notice(text, "error");
        if (p) holdAndResend(p, Math.max(1, Number(f.retry_after) || 5) * 1000);
        return;
      case "message_too_long":
      case "bad_frame":
      case "server_error":
        p = oldestInFlight(f.client_id);
        if (p && (code !== "bad_frame" || /text|client_id/.test(text))) {
          p.state = "failed";
          p.tooLong = code === "message_too_long";
          p.reason = p.tooLong ? "Not sent — too long." : "Not sent.";
          saveOutbox();
          renderPendingMeta(p);
        }
        notice(text, "error");
        return;
      case "not_found":
        Object.keys(S.feedbackReq).forEach(function (id) {
          delete S.feedbackReq[id];
        });
        notice(text, "error");
        return;
      default:
        notice(text, "error");
    }
  }

  // ---------------------------------------------------------------- connection

  function helloFrame() {
    var f = { type: "hello" };
    if (S.token) f.token = S.token;
    if (navigator.language) f.language = navigator.language;
    return f;
  }

  function wsSend(obj) {
    var ws = S.ws;
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(obj));
      return true;
    } catch (e) {
      return false;
    }
  }

  function connect() {
    if (S.ws || S.reconnectTimer) {
      // Already connected or connecting; a pending backoff is cut short by an explicit action.
      if (S.reconnectTimer && !S.ws) {
        clearTimeout(S.reconnectTimer);
        S.reconnectTimer = null;
      } else {
        return;
      }
    }
    var gen = ++S.gen;
    var ws;
    S.conn = "connecting";
    renderStatus();
    try {
      ws = new WebSocket(CFG.endpoint);
    } catch (e) {
      S.ws = null;
      scheduleReconnect();
      return;
    }
    S.ws = ws;
    ws.onopen = function () {
      if (gen !== S.gen) return;
      S.lastFrameAt = Date.now();
      wsSend(helloFrame());
      clearInterval(S.pingTimer);
      S.pingTimer = setInterval(function () {
        if (Date.now() - S.lastFrameAt > STALE_MS) {
          dropSocket();
          return;
        }
        wsSend({ type: "ping" });
      }, PING_MS);
    };
    ws.onmessage = function (ev) {
      if (gen !== S.gen) return;
      S.lastFrameAt = Date.now();
      var f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (f && typeof f === "object") dispatch(f);
    };
    ws.onclose = function () {
      if (gen !== S.gen) return;
      onSocketGone();
    };
    ws.onerror = function () {
      /* onclose follows */
    };
  }

  /** Forget the current socket now (half-open or stale) and reconnect. */
  function dropSocket() {
    var ws = S.ws;
    S.gen += 1;
    if (ws) {
      try {
        ws.close();
      } catch (e) {
        /* ignore */
      }
    }
    onSocketGone();
  }

  function onSocketGone() {
    clearInterval(S.pingTimer);
    S.pingTimer = null;
    S.ws = null;
    S.typingSent = false;
    S.conn = "offline";
    setTyping(null);
    stopWaiting();
    // The streamed text is shown again from welcome.streaming; drop the half-built bubbles.
    Object.keys(S.streams).forEach(function (k) {
      var s = S.streams[k];
      if (s.node.parentNode) s.node.parentNode.removeChild(s.node);
    });
    S.streams = {};
    S.pending.forEach(function (p) {
      if (p.state === "sent") p.state = "queued";
      renderPendingMeta(p);
    });
    renderStatus();
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(S.reconnectTimer);
    var base = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, S.attempt));
    var delay = base / 2 + Math.random() * (base / 2);
    S.attempt = Math.min(S.attempt + 1, 10);
    S.reconnectTimer = setTimeout(function () {
      S.reconnectTimer = null;
      connect();
    }, delay);
  }

  function reconnectNow() {
    if (S.conn === "offline" && !S.ws) {
      S.attempt = 0;
      clearTimeout(S.reconnectTimer);
      S.reconnectTimer = null;
      connect();
    }
  }

  function onWelcome(f) {
    if (typeof f.token === "string" && f.token) {
      S.token = f.token;
      storage.set(TOKEN_KEY, f.token);
    }
    S.conversationId = f.conversation_id == null ? null : f.conversation_id;
    restoreEmail();
    if (S.rating.conv !== S.conversationId) {
      S.rating = { value: 0, comment: "", state: "idle", error: "", conv: S.conversationId };
      ui.rateComment.value = "";
    }
    if (typeof f.rating === "number" && f.rating >= 1 && f.rating <= 5 && S.rating.state !== "sending") {
      S.rating.value = f.rating;
      S.rating.state = "done";
    }
    if (typeof f.max_message_chars === "number" && f.max_message_chars > 0) ui.input.maxLength = f.max_message_chars;
    S.conn = "open";
    S.everWelcomed = true;
    S.attempt = 0;
    var history = Array.isArray(f.history) ? f.history : [];
    mutate(function () {
      resetLog();
      history.forEach(function (m) {
        addMessage(m, false);
      });
      // The customer's unconfirmed messages go after the stored history.
      S.pending.forEach(function (p) {
        if (!p.rec) renderPending(p);
        else ui.log.appendChild(p.rec);
      });
      if (f.streaming && f.streaming.reply_to != null && !S.answered[f.streaming.reply_to]) {
        var s = streamFor(f.streaming.reply_to);
        s.text = typeof f.streaming.text === "string" ? f.streaming.text : "";
        // `seq` is the last delta included in `text`; continue after it.
        s.next = typeof f.streaming.seq === "number" ? f.streaming.seq + 1 : 0;
        paintStream(s);
      }
    }, true);
    var newStatus = typeof f.status === "string" ? f.status : "bot";
    var unchanged = newStatus === S.status && (f.queue_position == null ? null : f.queue_position) === S.queuePosition;
    var text = null;
    // `status_text` / `wait_minutes` are optional extras; without them the last status frame's
    // text is kept while nothing changed, else the widget words the status itself.
    if (typeof f.status_text === "string" && f.status_text) text = f.status_text;
    else if (unchanged && !S.statusProvisional) text = S.statusText;
    applyStatus(
      {
        status: newStatus,
        queue_position: f.queue_position,
        agent_name: f.agent_name,
        wait_minutes: f.wait_minutes != null ? f.wait_minutes : unchanged ? S.waitMinutes : null,
        // Optional here (always present on a queued `status` frame); kept while unchanged.
        ask_email: f.ask_email,
        out_of_hours: f.out_of_hours,
        back_at: f.back_at,
      },
      text
    );
    if (newStatus !== "resolved") {
      flushPending();
      flushFeedback();
      flushEmail();
      if (S.handoffWanted) requestHandoff();
    } else {
      S.handoffWanted = false;
      flushFeedback();
      flushRating();
    }
    S.pending.forEach(renderPendingMeta);
    renderEnded();
  }

  function dispatch(f) {
    switch (f.type) {
      case "welcome":
        onWelcome(f);
        break;
      case "message":
        addMessage(f.message, true);
        break;
      case "reply.delta":
        onDelta(f);
        break;
      case "reply.done":
        onDone(f);
        break;
      case "status":
        applyStatus(f, typeof f.text === "string" && f.text ? f.text : null);
        break;
      case "typing":
        if (f.active) setTyping(f.role === "agent" ? "agent" : "bot");
        else if (S.typingRole === (f.role === "agent" ? "agent" : "bot")) setTyping(null);
        break;
      case "ack":
        onAck(f);
        break;
      case "error":
        onError(f);
        break;
      default:
        break; // pong and unknown frames
    }
  }

  // ---------------------------------------------------------------- boot

  function boot() {
    if (document.getElementById("smallbot-support")) return;
    build();
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") reconnectNow();
    });
    if (CFG.open) open();
    else if (S.token || S.pending.length) connect();
  }

  window.SmallbotSupport = {
    __loaded: true,
    open: function () {
      open();
    },
    close: function () {
      close();
    },
    toggle: function () {
      if (S.isOpen) close();
      else open();
    },
    send: function (text) {
      if (!ui) return false;
      if (!S.isOpen) open();
      return sendText(text);
    },
  };

  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot);
})();
