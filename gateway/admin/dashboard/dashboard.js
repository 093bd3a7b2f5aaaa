// Spillway's dashboard: reads the admin API every 2s and follows its event
// stream. Every name that comes from the gateway is set as text (textContent,
// createElement), never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "spillway-admin-token";
  const POLL_MS = 2000;
  const TIMELINE_MAX = 12;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // timelines holds each upstream's breaker transitions seen on the event
  // stream, newest last.
  const timelines = new Map();
  let data = { status: null, upstreams: [], routes: [] };
  // wake ends follow's pause between connections early (a token typed in).
  let wake = () => {};

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function headers(extra) {
    const h = Object.assign({}, extra);
    const t = token();
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }

  // api calls the admin API and answers its JSON; a failed call throws an
  // Error with the API's own message.
  async function api(method, path, body) {
    const init = { method: method, headers: headers(body ? { "Content-Type": "application/json" } : {}), credentials: "omit", cache: "no-store" };
    if (body) init.body = JSON.stringify(body);
    const resp = await fetch(path, init);
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    if (!resp.ok) {
      const msg = json && json.error && json.error.message ? json.error.message : text || resp.statusText;
      const err = new Error(method + " " + path + ": " + resp.status + " " + msg);
      err.status = resp.status;
      throw err;
    }
    return json;
  }

  function showError(msg) {
    const e = document.getElementById("error");
    e.textContent = msg;
    e.hidden = !msg;
  }

  function askToken(ask) { document.getElementById("token-form").hidden = !ask; }

  // el builds an element with text and classes; children are appended.
  function el(tag, text, cls, children) {
    const n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = String(text);
    if (cls) n.className = cls;
    for (const c of children || []) n.appendChild(c);
    return n;
  }

  function stateBadge(state) {
    return el("span", state || "unknown", "state breaker-state state-" + String(state).replace(/[^a-z_]/g, ""));
  }

  function row(dl, term, value) {
    dl.appendChild(el("dt", term));
    dl.appendChild(typeof value === "object" ? el("dd", null, null, [value]) : el("dd", value));
  }

  function breakerButton(name, label, state, cls) {
    const b = el("button", label, cls);
    b.type = "button";
    b.addEventListener("click", () => control("POST", "/api/v1/upstreams/" + encodeURIComponent(name) + "/breaker", { state: state }));
    return b;
  }

  // perSecond writes a rate; byKey writes a map of rates (rejections by
  // reason, fallbacks by kind), "none" when empty.
  function perSecond(v) { return (v || 0).toFixed(v >= 10 ? 0 : 1) + "/s"; }

  function byKey(m) {
    const parts = Object.keys(m || {}).sort().map((k) => k + " " + perSecond(m[k]));
    return parts.length ? parts.join(", ") : "none";
  }

  function pct(v) { return ((v || 0) * 100).toFixed(0) + "%"; }

  function ms(s) { return s === undefined ? "—" : (s * 1000).toFixed(s < 0.01 ? 2 : 0) + " ms"; }

  // rateRows adds an upstream's rates (over the gateway's fixed trailing
  // window, whoever else reads).
  function rateRows(dl, r) {
    if (!r) {
      row(dl, "traffic", "measuring…");
      return;
    }
    row(dl, "traffic", perSecond(r.attempts) + " attempts, " + perSecond(r.failures) + " failures");
    row(dl, "latency", "p50 " + ms(r.p50) + ", p99 " + ms(r.p99));
    row(dl, "rejections", byKey(r.rejections));
  }

  function upstreamCard(u) {
    const live = u.live || {};
    const br = live.breaker || {};
    const card = el("div", null, "card upstream");
    card.dataset.upstream = u.name;
    card.appendChild(el("h3", u.name));
    const dl = el("dl");
    row(dl, "breaker", stateBadge(br.state));
    row(dl, "failure rate", ((br.failure_rate || 0) * 100).toFixed(1) + "%");
    // A breaker that has just closed admits a growing share (slow_start:).
    if (br.slow_start_left) row(dl, "slow start", "admits " + pct(br.slow_start_share) + " of the calls, all in " + br.slow_start_left);
    const bh = live.bulkhead || {};
    // The limit now: an adaptive one moves between its bounds.
    const max = bh.limit || (u.policies && u.policies.bulkhead ? u.policies.bulkhead.max_concurrent : 0);
    const adaptive = bh.mode && bh.mode !== "static" ? " (" + bh.mode + " limit, " + bh.min_concurrent + "–" + bh.max_concurrent + ")" : "";
    row(dl, "bulkhead", (bh.in_use || 0) + (max ? " / " + max : "") + " in use" + adaptive + ", " + (bh.waiting || 0) + " waiting, " + (bh.rejected || 0) + " rejected");
    row(dl, "budget left", live.budget_left === undefined ? "no retries" : live.budget_left.toFixed(1) + " retries");
    if (live.throttle) {
      const th = live.throttle;
      row(dl, "throttle", (th.rejection_probability * 100).toFixed(1) + "% refused now, " + th.accepts + " / " + th.requests + " accepted, " + th.rejected + " rejected");
    }
    if (live.shed) row(dl, "shed", live.shed.sheddable + " sheddable, " + live.shed.default + " default");
    if (live.hedge) {
      row(dl, "hedges", (live.hedge.delay ? "after " + live.hedge.delay : "learning the delay") + ", " + live.hedge.sent + " sent, " + live.hedge.won + " won");
    }
    rateRows(dl, live.rates);
    card.appendChild(dl);
    const tl = el("div", null, "timeline");
    for (const t of timelines.get(u.name) || []) {
      const s = el("span", t.to, "st-" + String(t.to).replace(/[^a-z_]/g, ""));
      s.title = t.from + " → " + t.to + " at " + t.time;
      tl.appendChild(s);
    }
    card.appendChild(tl);
    const ul = el("ul", null, "instances");
    for (const i of u.instances || []) {
      const what = i.ejected ? (i.manual ? "ejected by hand" : "ejected") : i.healthy ? "healthy" : "unhealthy";
      const ramp = i.ramping_for ? ", slow start at " + pct(i.weight) + " for " + i.ramping_for : "";
      ul.appendChild(el("li", i.url + " — " + what + ", " + (i.in_flight || 0) + " in flight" + ramp));
    }
    card.appendChild(ul);
    card.appendChild(el("div", null, "controls", [
      breakerButton(u.name, "Force open", "forced_open", "force-open"),
      breakerButton(u.name, "Force closed", "closed", "force-closed"),
      breakerButton(u.name, "Automatic", "auto", "auto"),
    ]));
    return card;
  }

  function renderUpstreams(container, upstreams) {
    container.replaceChildren(...upstreams.map(upstreamCard));
  }

  // rateLimit describes a route's rate limit for its live cell, "" without one.
  function rateLimit(l) {
    if (!l) return "";
    return "; rate limit " + l.rate + " burst " + l.burst + " by " + l.key + ": " + l.rejected + " refused, " + l.tracked_keys + " keys";
  }

  function renderRoutes(tbody, routes) {
    const rows = routes.map((r) => {
      const tr = el("tr");
      tr.dataset.route = r.name;
      tr.appendChild(el("td", r.name));
      tr.appendChild(el("td", r.upstream || (r.async ? "(async)" : "")));
      tr.appendChild(el("td", (r.fallback || []).join(" → ") || "none"));
      tr.appendChild(el("td", r.optional ? (r.enabled ? "on" : "off") : "—"));
      tr.appendChild(el("td", (r.live ? perSecond(r.live.requests) + " requests; fallbacks: " + byKey(r.live.fallbacks) : "measuring…") + rateLimit(r.rate_limit), "live-rates"));
      const td = el("td");
      if (r.optional) {
        const b = el("button", r.enabled ? "Disable" : "Enable", "route-toggle");
        b.type = "button";
        b.addEventListener("click", () => control("PATCH", "/api/v1/routes/" + encodeURIComponent(r.name), { enabled: !r.enabled }));
        td.appendChild(b);
      }
      tr.appendChild(td);
      return tr;
    });
    tbody.replaceChildren(...rows);
  }

  function renderQueues(tbody, queues) {
    const names = Object.keys(queues || {}).sort();
    document.getElementById("queues-section").hidden = names.length === 0;
    tbody.replaceChildren(...names.map((n) => {
      const q = queues[n];
      return el("tr", null, null, [el("td", n), el("td", q.pending), el("td", q.in_flight), el("td", q.dead_letters),
        el("td", (q.oldest_pending_age_seconds || 0).toFixed(1) + "s")]);
    }));
  }

  // faultRows are a runtime fault's rows: one per kind it injects.
  function faultRows(f, now) {
    const left = Math.max(0, Math.round((Date.parse(f.expires_at) - now) / 1000));
    const expires = left >= 60 ? Math.floor(left / 60) + "m " + (left % 60) + "s" : left + "s";
    const kinds = [];
    if (f.delay) kinds.push(["delay " + f.delay.duration, f.delay.percent]);
    if (f.abort) kinds.push(["abort " + f.abort.status, f.abort.percent]);
    return kinds.map((k) => {
      const tr = el("tr", null, null, [el("td", f.route), el("td", k[0]), el("td", k[1] + "%"), el("td", expires), el("td", f.who)]);
      tr.dataset.fault = f.id;
      return tr;
    });
  }

  // renderFaults lists the runtime faults in force (GET /api/v1/faults);
  // now is the time their expiry counts from (Date.now()).
  function renderFaults(tbody, faults, now) {
    const rows = (faults || []).flatMap((f) => faultRows(f, now));
    if (!rows.length) rows.push(el("tr", null, "no-faults", [el("td", "no runtime fault")]));
    tbody.replaceChildren(...rows);
    document.getElementById("faults-clear").disabled = !faults || !faults.length;
  }

  async function refreshFaults() {
    try {
      const l = await api("GET", "/api/v1/faults");
      renderFaults(document.querySelector("#faults tbody"), (l && l.faults) || [], Date.now());
    } catch (e) { /* refresh shows the API's errors */ }
  }

  function svg(tag, attrs, text) {
    const n = document.createElementNS(SVG_NS, tag);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  function breakerClass(state) {
    if (state === "closed") return "node-ok";
    if (state === "half_open") return "node-warn";
    if (state === "open" || state === "forced_open") return "node-bad";
    return "node-off";
  }

  // renderMap draws routes → upstreams → instances in three columns;
  // fallbacks to an upstream are dashed edges.
  function renderMap(map, routes, upstreams) {
    const W = 220, H = 26, GAP = 10, COLS = [10, 330, 650];
    const pos = new Map();
    const nodes = [], edges = [];
    const place = (key, col, idx, label, cls) => {
      const y = 10 + idx * (H + GAP);
      pos.set(key, { x: COLS[col], y: y });
      nodes.push(svg("rect", { x: COLS[col], y: y, width: W, height: H, class: cls }));
      const t = svg("text", { x: COLS[col] + 8, y: y + 17 }, label.length > 32 ? label.slice(0, 31) + "…" : label);
      t.appendChild(svg("title", {}, label));
      nodes.push(t);
    };
    routes.forEach((r, i) => place("r:" + r.name, 0, i, r.name, r.optional && !r.enabled ? "node-off" : "node-ok"));
    let k = 0;
    upstreams.forEach((u, i) => {
      const br = u.live && u.live.breaker ? u.live.breaker.state : "";
      place("u:" + u.name, 1, i, u.name + " (" + br + ")", breakerClass(br));
      for (const inst of u.instances || []) {
        place("i:" + u.name + ":" + inst.url, 2, k++, inst.url, inst.ejected || !inst.healthy ? "node-bad" : "node-ok");
        edges.push(["u:" + u.name, "i:" + u.name + ":" + inst.url, ""]);
      }
    });
    for (const r of routes) {
      if (r.upstream) edges.push(["r:" + r.name, "u:" + r.upstream, ""]);
      for (const f of r.fallback || []) {
        if (f.startsWith("upstream:")) edges.push(["r:" + r.name, "u:" + f.slice(9), "fallback"]);
      }
    }
    const lines = edges.filter((e) => pos.has(e[0]) && pos.has(e[1])).map((e) => {
      const a = pos.get(e[0]), b = pos.get(e[1]);
      return svg("line", { x1: a.x + W, y1: a.y + H / 2, x2: b.x, y2: b.y + H / 2, class: e[2] });
    });
    const rows = Math.max(routes.length, upstreams.length, k, 1);
    map.setAttribute("viewBox", "0 0 880 " + (20 + rows * (H + GAP)));
    map.setAttribute("height", String(20 + rows * (H + GAP)));
    map.replaceChildren(...lines, ...nodes);
  }

  // render draws the whole page from d ({status, upstreams, routes}).
  function render(d) {
    data = d;
    renderUpstreams(document.getElementById("upstreams"), d.upstreams || []);
    renderRoutes(document.querySelector("#routes tbody"), d.routes || []);
    renderQueues(document.querySelector("#queues tbody"), d.status ? d.status.queues : null);
    renderMap(document.getElementById("map"), d.routes || [], d.upstreams || []);
  }

  async function refresh() {
    if (!token()) {
      // Without a token only status is open: ask for the token rather
      // than fill the console with refused calls.
      askToken(true);
      return;
    }
    try {
      const [status, upstreams, routes] = await Promise.all([
        api("GET", "/api/v1/status"), api("GET", "/api/v1/upstreams"), api("GET", "/api/v1/routes")]);
      render({ status: status, upstreams: (upstreams && upstreams.upstreams) || [], routes: (routes && routes.routes) || [] });
      refreshFaults();
      showError("");
    } catch (e) {
      if (e.status === 401 || e.status === 403) askToken(true);
      showError(e.message);
    }
  }

  async function control(method, path, body) {
    try {
      await api(method, path, body);
      showError("");
      await refresh();
    } catch (e) {
      if (e.status === 401 || e.status === 403) askToken(true);
      showError(e.message);
    }
  }

  // onEvent applies one event of the stream: a breaker transition updates
  // its upstream's state and timeline at once, without waiting for a poll.
  function onEvent(kind, json) {
    if (kind !== "breaker") {
      // An ejection, a runtime change or a reload: read the API again now.
      if (kind !== "rejection" && kind !== "lost") soon("refresh", refresh);
      return;
    }
    const ev = JSON.parse(json);
    const b = ev.data || {};
    const tl = timelines.get(b.upstream) || [];
    tl.push({ from: b.from, to: b.to, time: ev.time });
    timelines.set(b.upstream, tl.slice(-TIMELINE_MAX));
    for (const u of data.upstreams) {
      if (u.name === b.upstream && u.live && u.live.breaker) u.live.breaker.state = b.to;
    }
    soon("render", () => render(data));
  }

  // soon runs fn once shortly, however many events ask for it: the ring
  // replayed at the first connection is one render, not hundreds.
  const pending = new Set();
  function soon(key, fn) {
    if (pending.has(key)) return;
    pending.add(key);
    setTimeout(() => { pending.delete(key); fn(); }, 50);
  }

  // follow reads GET /api/v1/events with fetch (EventSource cannot send the
  // Authorization header) and parses the SSE frames itself; it reconnects
  // with Last-Event-ID after POLL_MS when the stream ends. The first
  // connection asks for everything after id 0: the ring's past transitions
  // fill the timelines.
  async function follow() {
    let lastID = "0";
    const live = document.getElementById("live");
    for (;;) {
      if (token()) {
        try {
          const resp = await fetch("/api/v1/events", { headers: headers({ "Last-Event-ID": lastID }), credentials: "omit", cache: "no-store" });
          if (resp.ok && resp.body) {
            live.textContent = "live";
            live.classList.add("on");
            lastID = await readFrames(resp.body.getReader(), lastID);
          }
        } catch (e) { /* the poll shows the API's errors */ }
      }
      live.textContent = "offline";
      live.classList.remove("on");
      await new Promise((r) => { wake = r; setTimeout(r, POLL_MS); });
    }
  }

  async function readFrames(reader, lastID) {
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return lastID;
      buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let kind = "message", payload = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith(":")) continue;
          const c = line.indexOf(":");
          const field = c < 0 ? line : line.slice(0, c);
          const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
          if (field === "id") lastID = val;
          else if (field === "event") kind = val;
          else if (field === "data") payload.push(val);
        }
        if (payload.length) onEvent(kind, payload.join("\n"));
      }
    }
  }

  function start() {
    document.getElementById("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = document.getElementById("token");
      sessionStorage.setItem(TOKEN_KEY, input.value);
      input.value = "";
      askToken(false);
      refresh();
      wake();
    });
    // The kill switch: every runtime fault removed at once.
    document.getElementById("faults-clear").addEventListener("click", () => control("DELETE", "/api/v1/faults"));
    askToken(!token());
    refresh();
    setInterval(refresh, POLL_MS);
    follow();
  }

  // Exposed for tests, which render hostile names through them.
  window.spillwayDashboard = { render: render, renderUpstreams: renderUpstreams, renderRoutes: renderRoutes, renderMap: renderMap, renderFaults: renderFaults };
  start();
})();
