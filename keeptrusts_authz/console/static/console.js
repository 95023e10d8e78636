// Keeptrusts console: plain JavaScript, no framework, no build step, nothing from another origin.
// The admin token lives in sessionStorage (this tab only) and goes to the wallet API (same
// origin, Envoy's transcoder) as `Authorization: Bearer`. The API enforces every role; the
// console only hides what the token's roles (GET /v1/wallets/whoami) cannot do, and shows the
// API's own error (401/403/...) when a call is refused anyway.
// Money arrives as decimal strings; it is handled as BigInt micro-units and shown with a fixed
// number of decimals per view, right-aligned, with the org currency.
"use strict";
(() => {
  const TOKEN_KEY = "keeptrusts.console.token";
  const SPEND_OPS = new Set(["settle", "expire"]);
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  const RISK = { depleted: 0, at_risk: 1, low: 2, healthy: 3 };
  const state = { token: null, me: null };

  // ------------------------------------------------------------------ DOM helpers (no innerHTML)

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }
  function status(message, bad) {
    const el = $("status");
    el.className = bad ? "status bad" : "status";
    el.textContent = message || "";
  }

  // ------------------------------------------------------------------ money (BigInt micros)

  function micros(value) {
    if (value === null || value === undefined || value === "") return 0n;
    if (typeof value === "bigint") return value;
    if (typeof value === "number") return BigInt(value);
    let s = String(value).trim();
    const neg = s.startsWith("-");
    if (neg) s = s.slice(1);
    const [whole, frac = ""] = s.split(".");
    const m = BigInt(whole || "0") * 1000000n + BigInt((frac + "000000").slice(0, 6));
    return neg ? -m : m;
  }
  function group3(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  // Fixed `dp` decimals (0..6), half away from zero.
  function fmt(m, dp) {
    m = micros(m);
    const neg = m < 0n;
    let a = neg ? -m : m;
    const unit = 10n ** BigInt(6 - dp);
    if (dp < 6) a = ((a + unit / 2n) / unit) * unit;
    const whole = group3((a / 1000000n).toString());
    const frac = (a % 1000000n).toString().padStart(6, "0").slice(0, dp);
    return (neg && a !== 0n ? "-" : "") + whole + (dp ? "." + frac : "");
  }
  // The decimals of one view: 2 when every amount it shows is whole cents, else 6 (exact), so
  // all the view's amounts line up and none is rounded to a misleading 0.00.
  function viewDp(values) {
    return values.every((v) => micros(v) % 10000n === 0n) ? 2 : 6;
  }
  function cur() {
    return state.me ? state.me.currency : "";
  }
  function money(m, dp) {
    return h("td", { class: "num", title: fmt(m, 6) + " " + cur() }, fmt(m, dp));
  }
  function numTd(n) {
    return h("td", { class: "num" }, group3(String(n)));
  }
  function th(label, num) {
    return h("th", { class: num ? "num" : null, scope: "col" }, label);
  }
  function moneyTh(label) {
    return th(label + " (" + cur() + ")", true);
  }
  function pct(part, whole) {
    part = micros(part);
    whole = micros(whole);
    if (whole <= 0n) return part > 0n ? "∞" : "0.0 %";
    const tenths = (part * 1000n + whole / 2n) / whole;
    return (tenths / 10n).toString() + "." + (tenths % 10n).toString() + " %";
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, body, text) {
      const err = body && typeof body === "object" ? body.error || body : null;
      const message = (err && err.message) || text || "request failed";
      super(message);
      this.status = status;
      this.type = (err && (err.type || (err.details && err.details[0] && err.details[0].reason))) || "";
    }
    describe() {
      const what = { 401: "not signed in or token invalid", 403: "not allowed for this token",
        404: "not found", 409: "conflict", 400: "invalid input", 503: "service unavailable" };
      return `${this.status} ${what[this.status] || "error"}: ${this.message}`;
    }
  }

  async function call(method, path, body, headers) {
    const init = {
      method,
      headers: Object.assign({ Accept: "application/json" }, headers || {}),
      credentials: "omit",
      cache: "no-store",
    };
    if (state.token) init.headers.Authorization = "Bearer " + state.token;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = JSON.parse(text); } catch (_) { data = null; }
    if (!res.ok) {
      if (res.status === 401 && path !== "/v1/wallets/whoami") signOut("Your token was refused (401): sign in again.");
      throw new ApiError(res.status, data, text);
    }
    return data === null ? text : data;
  }
  const get = (path) => call("GET", path);
  function qs(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) u.set(k, v);
    const s = u.toString();
    return s ? "?" + s : "";
  }
  async function ledgerOf(walletId, max) {
    const out = [];
    let token = "";
    while (out.length < max) {
      const page = await get(`/v1/wallets/${encodeURIComponent(walletId)}/transactions` +
        qs({ page_size: Math.min(500, max - out.length), page_token: token }));
      out.push(...page.entries);
      token = page.next_page_token;
      if (!token) break;
    }
    return out;
  }
  function newKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "console-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // ------------------------------------------------------------------ sign-in and navigation

  async function signIn(token) {
    state.token = token;
    try {
      state.me = await get("/v1/wallets/whoami");
    } catch (err) {
      state.token = null;
      throw err;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
  }
  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.me = null;
    $("nav").hidden = true;
    $("who").hidden = true;
    $("page").replaceChildren();
    $("signin").hidden = false;
    $("org-name").textContent = "";
    status(message || "", Boolean(message));
    if (location.hash) history.replaceState(null, "", location.pathname);
  }
  function pages() {
    const me = state.me;
    const list = [];
    if (me.reads_all) list.push(["org", "Organization"]);
    if (me.teams.length) list.push(["team", "Team"]);
    if (me.reads_all) list.push(["chargeback", "Chargeback"]);
    list.push(["actions", "Actions"]);
    return list;
  }
  function renderChrome(current) {
    const me = state.me;
    $("signin").hidden = true;
    $("org-name").textContent = me.organization;
    $("who-name").replaceChildren(h("strong", {}, me.name), " ",
      h("span", { class: "roles" }, "(" + me.roles.join(", ") + ")"));
    $("who").hidden = false;
    const nav = $("nav");
    nav.replaceChildren(...pages().map(([id, label]) =>
      h("a", { href: "#/" + id, "aria-current": id === current ? "page" : null }, label)));
    nav.hidden = false;
  }
  // Redraw the current page shortly after a decision, unless the user has moved on meanwhile
  // (a late redraw of another page would replace the form being filled in there).
  let refreshTimer = null;
  function refreshSoon() {
    clearTimeout(refreshTimer);
    const at = location.hash;
    refreshTimer = setTimeout(() => { if (location.hash === at) route(); }, 600);
  }
  async function route() {
    clearTimeout(refreshTimer);
    if (!state.me) return;
    const [, name = "", arg = ""] = location.hash.split("/");
    const allowed = pages().map((p) => p[0]);
    const page = allowed.includes(name) ? name : allowed[0];
    renderChrome(page);
    const root = $("page");
    root.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    status("");
    try {
      const view = await { org: orgPage, team: teamPage, chargeback: chargebackPage, actions: actionsPage }[page](decodeURIComponent(arg));
      root.replaceChildren(view);
      document.title = `${pages().find((p) => p[0] === page)[1]} · Keeptrusts console`;
    } catch (err) {
      root.replaceChildren(h("p", { class: "error", role: "alert" },
        err instanceof ApiError ? err.describe() : String(err)));
    }
  }

  // ------------------------------------------------------------------ shared widgets

  function statusBadge(s) {
    return h("span", { class: "badge " + s }, s.replace("_", " "));
  }
  function kpi(label, value, id) {
    return h("div", { class: "kpi", id }, h("div", { class: "label" }, label),
      h("div", { class: "value" }, value, h("span", { class: "cur" }, cur())));
  }
  function table(caption, head, rows, cls) {
    return h("div", { class: "tablewrap" }, h("table", { class: cls || null },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows)));
  }
  // Rounded axis ticks: step = 1, 2 or 5 x 10^k micros, 4-6 intervals.
  function niceTicks(maxMicros) {
    if (maxMicros <= 0) return { step: 0, top: 0, ticks: [0] };
    const raw = maxMicros / 4;
    let mag = 1;
    while (mag * 10 <= raw) mag *= 10;
    const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw);
    const top = Math.ceil(maxMicros / step) * step;
    const ticks = [];
    for (let v = 0; v <= top; v += step) ticks.push(v);
    return { step, top, ticks };
  }
  function tickLabel(v, step) {
    let dp = 0;
    while (dp < 6 && step % 10 ** (6 - dp) !== 0) dp += 1;
    return fmt(BigInt(v), dp);
  }
  // Stacked daily bars per series: days = ["YYYY-MM-DD"...], series = {name: {day: micros}}.
  function spendChart(days, series, title) {
    const names = Object.keys(series);
    const W = 1000, H = 300, L = 80, R = 16, T = 12, B = 34;
    const pw = W - L - R, ph = H - T - B;
    const totals = days.map((d) => names.reduce((s, n) => s + (series[n][d] || 0), 0));
    const { step, top, ticks } = niceTicks(Math.max(0, ...totals));
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title", id: "spend-chart" },
      svg("title", { id: "chart-title" }, title));
    for (const v of ticks) {
      const y = T + ph - (top ? (ph * v) / top : 0);
      root.append(svg("line", { x1: L, x2: L + pw, y1: y, y2: y, stroke: v ? "#d0d7de" : "#57606a", "stroke-dasharray": v ? "2,3" : "" }));
      root.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end", class: "tick" }, tickLabel(v, step || 1)));
    }
    const slot = pw / Math.max(1, days.length), bw = Math.max(1, slot * 0.75);
    days.forEach((d, i) => {
      const x = L + i * slot + (slot - bw) / 2;
      let y = T + ph;
      names.forEach((n, j) => {
        const v = series[n][d] || 0;
        if (v <= 0 || !top) return;
        const hgt = (ph * v) / top;
        y -= hgt;
        root.append(svg("rect", { x: x.toFixed(1), y: y.toFixed(1), width: bw.toFixed(1), height: hgt.toFixed(1), fill: PALETTE[j % PALETTE.length] },
          svg("title", {}, `${d} ${n}: ${fmt(BigInt(v), 6)} ${cur()}`)));
      });
      if (days.length <= 16 || i % Math.ceil(days.length / 16) === 0)
        root.append(svg("text", { x: (x + bw / 2).toFixed(1), y: T + ph + 16, "text-anchor": "middle" }, d.slice(5)));
    });
    if (!totals.some((t) => t > 0))
      root.append(svg("text", { x: L + pw / 2, y: T + ph / 2, "text-anchor": "middle" }, "No spend in this period yet"));
    // Swatches are SVG (the CSP allows no inline style attributes).
    const legend = h("div", { class: "legend" }, names.map((n, j) =>
      h("span", {}, svg("svg", { width: 10, height: 10, "aria-hidden": "true" },
        svg("rect", { width: 10, height: 10, fill: PALETTE[j % PALETTE.length] })), " ", n)));
    return h("div", { class: "chart" }, root, legend);
  }
  function daysOf(fromIso, toIso) {
    const out = [];
    const end = new Date(toIso).getTime();
    for (let t = new Date(fromIso).getTime(); t < end; t += 86400000) out.push(new Date(t).toISOString().slice(0, 10));
    return out;
  }

  // ------------------------------------------------------------------ Organization

  async function orgPage() {
    const me = state.me;
    const [wallets, report, tickets] = await Promise.all([
      get("/v1/wallets"),
      get("/v1/reports/chargeback" + qs({ period: me.current_month, format: "json", group_by: "team" })),
      get("/v1/wallets/tickets" + qs({ status: "pending" })),
    ]);
    const ws = wallets.wallets;
    const org = ws.find((w) => w.scope === "org");
    const teams = ws.filter((w) => w.scope === "team");
    const burn = ws.reduce((s, w) => s + micros(w.burn_rate_per_day), 0n);
    const spent = BigInt(report.totals.spent_micros);
    const nowMs = Date.now();
    const endMs = new Date(report.to).getTime();
    const daysLeftMicros = BigInt(Math.max(0, Math.round(((endMs - nowMs) / 86400000) * 1e6)));
    const projected = spent + (burn * daysLeftMicros) / 1000000n;
    const rowOf = Object.fromEntries(report.rows.map((r) => [r.team, r]));
    teams.sort((a, b) => (RISK[a.status] ?? 9) - (RISK[b.status] ?? 9) ||
      (a.projected_depletion_date || "9999").localeCompare(b.projected_depletion_date || "9999") ||
      Number(micros(a.balance) - micros(b.balance)));
    const dp = viewDp([org ? org.balance : 0, report.totals.allocated_micros, spent, burn, projected,
      ...teams.flatMap((w) => [w.balance, w.reserved, w.burn_rate_per_day, w.projected_period_spend || 0,
        rowOf[w.owner] ? rowOf[w.owner].spent_micros : 0])]);
    const teamRows = teams.map((w) => {
      const r = rowOf[w.owner];
      return h("tr", { "data-team": w.owner },
        h("td", {}, me.teams.includes(w.owner) ? h("a", { href: "#/team/" + encodeURIComponent(w.owner) }, w.owner) : w.owner),
        h("td", {}, statusBadge(w.status)),
        money(w.balance, dp), money(w.reserved, dp),
        money(r ? r.spent_micros : 0, dp), h("td", { class: "num" }, pct(w.spent_total, w.allocated_total)),
        money(w.burn_rate_per_day, dp), h("td", { class: "num" }, w.projected_depletion_date || "—"),
        w.projected_period_spend ? money(w.projected_period_spend, dp) : h("td", { class: "num", title: "no budget period for this wallet" }, "—"));
    });
    const alerts = [];
    for (const w of ws) if (w.status !== "healthy")
      alerts.push(h("li", {}, statusBadge(w.status), " ", w.id, ": available ", fmt(w.balance, dp), " ", cur(),
        w.projected_depletion_date ? `, runs out ${w.projected_depletion_date}` : ""));
    if (tickets.tickets.length)
      alerts.push(h("li", {}, statusBadge("pending"), ` ${tickets.tickets.length} cost ticket(s) waiting for a decision`,
        me.billing ? h("span", {}, " (", h("a", { href: "#/actions" }, "decide"), ")") : ""));
    if (!report.reconciled) alerts.push(h("li", {}, statusBadge("bad"), " the chargeback report does not reconcile with the ledger"));
    if (projected > micros(org ? org.allocated_total : 0) && micros(org ? org.allocated_total : 0) > 0n)
      alerts.push(h("li", {}, statusBadge("at_risk"), " projected period-end spend exceeds what the pool was credited"));
    const series = {};
    for (const [day, perKey] of Object.entries(report.daily_spend_micros)) {
      for (const [key, v] of Object.entries(perKey)) {
        (series[key] = series[key] || {})[day] = (series[key][day] || 0) + v;
      }
    }
    return h("div", { id: "org-page" },
      h("h1", {}, `Organization ${me.organization} · ${report.period}`),
      h("div", { class: "kpis" },
        kpi("Pool balance", fmt(org ? org.balance : 0, dp), "kpi-pool"),
        kpi("Allocated this period", fmt(report.totals.allocated_micros, dp), "kpi-allocated"),
        kpi("Spent this period", fmt(spent, dp), "kpi-spent"),
        kpi("Burn rate / day (7 d)", fmt(burn, dp), "kpi-burn"),
        kpi("Projected period-end spend", fmt(projected, dp), "kpi-projected")),
      h("section", { class: "card", "aria-labelledby": "alerts-h" }, h("h2", { id: "alerts-h" }, "Alerts"),
        alerts.length ? h("ul", { class: "alerts", id: "alerts" }, alerts) : h("p", { class: "ok", id: "alerts" }, "Nothing needs attention")),
      h("section", { class: "card", "aria-labelledby": "teams-h" }, h("h2", { id: "teams-h" }, "Teams by risk"),
        table(null, [th("Team"), th("Status"), moneyTh("Available"), moneyTh("Reserved"), moneyTh("Spent this period"),
          th("% used", true), moneyTh("Burn / day"), th("Runs out", true), moneyTh("Projected period spend")],
        teamRows.length ? teamRows : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No team wallets yet"))], "compact")),
      h("section", { class: "card", "aria-labelledby": "chart-h" },
        h("h2", { id: "chart-h" }, `Spend per team per day (${cur()})`),
        spendChart(daysOf(report.from, report.to), series, `Daily spend per team in ${report.period}, ${cur()}`)));
  }

  // ------------------------------------------------------------------ Team

  function costOf(t) {
    return t.attributes && t.attributes.cost !== undefined ? micros(t.attributes.cost) : micros(t.amount);
  }
  async function teamPage(arg) {
    const me = state.me;
    const team = me.teams.includes(arg) ? arg : me.teams[0];
    const [bal, users, tickets, topups, entries] = await Promise.all([
      get("/v1/wallets/balance" + qs({ team_id: team })),
      get("/v1/wallets" + qs({ scope: "user" })),
      get("/v1/wallets/tickets" + qs({ team_id: team })),
      topupsOf({ team_id: team }),
      ledgerOf("team:" + team, 1000).catch((e) => { if (e.status === 404) return []; throw e; }),
    ]);
    // The team's users: for a team token, the user wallets the API lets it read (users seen
    // spending for the team); for billing/viewer, user wallets whose entries name this team or
    // whose user spent from the team wallet (at most 50 user wallets are looked at).
    const seen = new Set(entries.map((e) => e.attributes && e.attributes.user).filter(Boolean));
    const candidates = users.wallets.slice(0, 50);
    const ledgers = await Promise.all(candidates.map((u) => ledgerOf(u.id, 500)));
    const userWallets = candidates.filter((u, i) => !me.reads_all || seen.has(u.owner) ||
      ledgers[i].some((e) => e.attributes && e.attributes.team === team));
    const userEntries = ledgers.flat().filter((e) => e.attributes && e.attributes.team === team);
    const all = [...entries, ...userEntries].sort((a, b) => b.time.localeCompare(a.time));
    const month = me.current_month;
    const byGroup = new Map();
    for (const e of all) {
      if (!SPEND_OPS.has(e.op) || !e.time.startsWith(month)) continue;
      const key = `${e.attributes.group || "—"}\u0000${e.attributes.model || "—"}`;
      const cell = byGroup.get(key) || { spent: 0n, requests: 0, tokens: 0 };
      cell.spent += costOf(e);
      cell.requests += 1;
      cell.tokens += Number(e.attributes.input_tokens || 0) + Number(e.attributes.output_tokens || 0);
      byGroup.set(key, cell);
    }
    const w = bal.wallet;
    const dp = viewDp([w.balance, w.reserved, w.allocated_total, w.spent_total,
      ...userWallets.flatMap((u) => [u.balance, u.reserved, u.allocated_total, u.spent_total])]);
    const picker = h("select", { id: "team-picker", "aria-label": "Team", onchange: (ev) => { location.hash = "#/team/" + encodeURIComponent(ev.target.value); } },
      me.teams.map((t) => h("option", { value: t, selected: t === team }, t)));
    const groupRows = [...byGroup.entries()].sort((a, b) => Number(b[1].spent - a[1].spent)).map(([k, c]) => {
      const [g, m] = k.split("\u0000");
      return h("tr", {}, h("td", {}, g), h("td", {}, m), numTd(c.requests), numTd(c.tokens), money(c.spent, 6));
    });
    const ledgerCard = ledgerTable(all);
    const open = tickets.tickets.filter((t) => t.status === "pending");
    const past = tickets.tickets.filter((t) => t.status !== "pending");
    return h("div", { id: "team-page" },
      h("h1", {}, "Team ", picker),
      h("div", { class: "kpis", id: "team-wallet" },
        kpi("Available", fmt(w.balance, dp), "kpi-available"),
        kpi("Reserved", fmt(w.reserved, dp), "kpi-reserved"),
        kpi("Allocated", fmt(w.allocated_total, dp), "kpi-team-allocated"),
        kpi("Spent", fmt(w.spent_total, dp), "kpi-team-spent"),
        h("div", { class: "kpi" }, h("div", { class: "label" }, "Status"), h("div", { class: "value", id: "team-status" }, statusBadge(w.status)))),
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "users-h" }, h("h2", { id: "users-h" }, "Users' wallets"),
          table(null, [th("User"), th("Status"), moneyTh("Available"), moneyTh("Reserved"), moneyTh("Allocated"), moneyTh("Spent")],
            userWallets.length ? userWallets.map((u) => h("tr", {}, h("td", {}, u.owner), h("td", {}, statusBadge(u.status)),
              money(u.balance, dp), money(u.reserved, dp), money(u.allocated_total, dp), money(u.spent_total, dp)))
              : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No user wallets for this team"))], "compact")),
        h("section", { class: "card", "aria-labelledby": "bygroup-h" }, h("h2", { id: "bygroup-h" }, `Spend by consumer group and model (${month})`),
          table(null, [th("Consumer group"), th("Model"), th("Requests", true), th("Tokens", true), moneyTh("Spent")],
            groupRows.length ? groupRows : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No spend this month"))], "compact"))),
      h("section", { class: "card", "aria-labelledby": "tickets-h" }, h("h2", { id: "tickets-h" }, "Cost tickets"),
        ticketTable("Open", open, true), ticketTable("Past", past, false)),
      h("section", { class: "card", "aria-labelledby": "topups-h", id: "team-topups" }, h("h2", { id: "topups-h" }, "Top-up requests"),
        me.roles.includes("team:" + team) ? h("p", { class: "muted" }, "Re-split this budget or ask for more on the ", h("a", { href: "#/actions" }, "Actions"), " page.") : null,
        topups === null ? h("p", { class: "muted" }, "Top-ups are not available on this service.") : [
          topupTable("Open", topups.filter((t) => t.status === "pending"), true, me.billing),
          topupTable("Past", topups.filter((t) => t.status !== "pending"), false, false)]),
      ledgerCard);
  }
  function ledgerTable(all) {
    const distinct = (f) => [...new Set(all.map(f).filter(Boolean))].sort();
    const filters = {};
    const body = h("tbody", {});
    const count = h("span", { class: "muted", id: "ledger-count" });
    function sel(id, label, values) {
      const s = h("select", { id }, h("option", { value: "" }, "all"), values.map((v) => h("option", { value: v }, v)));
      filters[id] = s;
      return h("div", { class: "field" }, h("label", { for: id }, label), s);
    }
    function redraw() {
      const f = Object.fromEntries(Object.entries(filters).map(([k, s]) => [k, s.value]));
      const rows = all.filter((e) => (!f["f-op"] || e.op === f["f-op"]) &&
        (!f["f-group"] || e.attributes.group === f["f-group"]) &&
        (!f["f-model"] || e.attributes.model === f["f-model"]) &&
        (!f["f-user"] || e.attributes.user === f["f-user"]));
      body.replaceChildren(...rows.slice(0, 200).map((e) => h("tr", {},
        h("td", { class: "time" }, e.time.replace("T", " ").slice(0, 19)), h("td", {}, e.op),
        h("td", {}, e.op === "transfer" && e.attributes.to ? `${e.attributes.from || e.wallet} → ${e.attributes.to}` : e.wallet),
        h("td", {}, e.attributes.group || ""), h("td", {}, e.attributes.model || ""), h("td", {}, e.attributes.user || ""),
        money(SPEND_OPS.has(e.op) ? costOf(e) : e.amount, 6), h("td", {}, e.actor || ""), h("td", {}, e.description || ""))));
      count.textContent = ` ${rows.length} entr${rows.length === 1 ? "y" : "ies"}${rows.length > 200 ? ", newest 200 shown" : ""}`;
    }
    const controls = h("div", { class: "filters" },
      sel("f-op", "Operation", distinct((e) => e.op)), sel("f-group", "Consumer group", distinct((e) => e.attributes.group)),
      sel("f-model", "Model", distinct((e) => e.attributes.model)), sel("f-user", "User", distinct((e) => e.attributes.user)));
    for (const s of Object.values(filters)) s.addEventListener("change", redraw);
    redraw();
    return h("section", { class: "card", "aria-labelledby": "ledger-h" }, h("h2", { id: "ledger-h" }, "Recent ledger entries", count), controls,
      h("div", { class: "tablewrap" }, h("table", { class: "compact", id: "ledger" },
        h("thead", {}, h("tr", {}, th("Time (UTC)"), th("Op"), th("Wallet"), th("Group"), th("Model"), th("User"), moneyTh("Amount"), th("Actor"), th("Description"))),
        body)));
  }
  function ticketTable(caption, tickets, open) {
    const head = [th("Ticket"), th("Status"), th("Team"), th("Group"), th("Model"), th("User"), moneyTh("Amount"), th("Created (UTC)", true)];
    if (open) head.push(th("Decision"));
    else head.push(th("Decided by"), th("Reason"));
    const rows = tickets.map((t) => {
      const cells = [h("td", {}, h("code", {}, t.id)), h("td", {}, statusBadge(t.status)), h("td", {}, t.team_id), h("td", {}, t.consumer_group),
        h("td", {}, t.model), h("td", {}, t.user_id || ""), money(t.amount, 6), h("td", { class: "num" }, t.created.replace("T", " ").slice(0, 19))];
      if (open) cells.push(h("td", {}, decisionForm(t)));
      else cells.push(h("td", {}, t.decided_by), h("td", {}, t.reason));
      return h("tr", { "data-ticket": t.id }, cells);
    });
    return table(caption + " tickets", head, rows.length ? rows : [h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "None"))], "compact");
  }
  function decisionForm(t) {
    const reasonId = "reason-" + t.id;
    const result = h("div", { class: "result", role: "status" });
    const reason = h("input", { id: reasonId, name: "reason", maxlength: 500, size: 18 });
    const form = h("form", { class: "inline", "data-ticket": t.id },
      h("div", { class: "field" }, h("label", { for: reasonId }, "Reason"), reason),
      h("button", { type: "submit", value: "approve" }, "Approve"),
      h("button", { type: "submit", value: "deny", class: "danger" }, "Deny"), result);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const action = ev.submitter ? ev.submitter.value : "approve";
      for (const b of form.querySelectorAll("button")) b.disabled = true;
      try {
        const done = await call("POST", `/v1/wallets/tickets/${encodeURIComponent(t.id)}:${action}`, { reason: reason.value });
        result.replaceChildren(h("span", { class: "ok" }, `${done.status} by ${done.decided_by}`));
        status(`Ticket ${t.id} ${done.status}.`);
        refreshSoon();
      } catch (err) {
        result.replaceChildren(h("span", { class: "error", role: "alert" }, err instanceof ApiError ? err.describe() : String(err)));
        for (const b of form.querySelectorAll("button")) b.disabled = false;
      }
    });
    return form;
  }

  // ------------------------------------------------------------------ Chargeback

  const BUDGET_COLUMNS = ["remaining", "used_pct", "spent", "allocated", "transferred_in", "transferred_out",
    "reclaimed", "carried_in", "returned", "forgiven"];
  const USAGE_COLUMNS = ["spent", "spent_real", "spent_estimated", "org_backstop_spent", "requests", "blocked", "held",
    "input_tokens", "output_tokens", "cached_tokens"];
  async function chargebackPage() {
    const me = state.me;
    const [year, month] = me.current_month.split("-");
    const kind = h("select", { id: "cb-kind" }, h("option", { value: "month" }, "Month"), h("option", { value: "quarter" }, "Quarter"));
    const monthInput = h("input", { id: "cb-month", type: "month", value: me.current_month, required: true });
    const qYear = h("input", { id: "cb-qyear", type: "number", min: 2000, max: 2999, value: me.current_quarter.split("-")[0] || year, size: 6 });
    const qNum = h("select", { id: "cb-q" }, [1, 2, 3, 4].map((q) => h("option", { value: q, selected: me.current_quarter.endsWith("Q" + q) }, "Q" + q)));
    const groupBy = h("select", { id: "cb-group" }, [["team", "Team"], ["consumer_group", "Consumer group"], ["model", "Model"], ["user", "User"]]
      .map(([v, l]) => h("option", { value: v }, l)));
    const monthField = h("div", { class: "field" }, h("label", { for: "cb-month" }, "Month"), monthInput);
    const quarterField = h("div", { class: "field", hidden: true }, h("label", { for: "cb-qyear" }, "Fiscal year"), qYear);
    const quarterNum = h("div", { class: "field", hidden: true }, h("label", { for: "cb-q" }, "Quarter"), qNum);
    kind.addEventListener("change", () => {
      const q = kind.value === "quarter";
      monthField.hidden = q;
      quarterField.hidden = !q;
      quarterNum.hidden = !q;
    });
    const out = h("div", { id: "cb-out" });
    const params = () => ({
      period: kind.value === "quarter" ? `${qYear.value}-Q${qNum.value}` : monthInput.value,
      group_by: groupBy.value,
    });
    async function load(ev) {
      if (ev) ev.preventDefault();
      out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      try {
        const p = params();
        const report = await get("/v1/reports/chargeback" + qs({ ...p, format: "json" }));
        out.replaceChildren(chargebackView(report, p));
      } catch (err) {
        out.replaceChildren(h("p", { class: "error", role: "alert" }, err instanceof ApiError ? err.describe() : String(err)));
      }
    }
    const form = h("form", { class: "inline", id: "cb-form", onsubmit: load },
      h("div", { class: "field" }, h("label", { for: "cb-kind" }, "Period"), kind), monthField, quarterField, quarterNum,
      h("div", { class: "field" }, h("label", { for: "cb-group" }, "Group by"), groupBy),
      h("button", { type: "submit" }, "Show"));
    const page = h("div", { id: "chargeback-page" }, h("h1", {}, "Chargeback"), h("section", { class: "card" }, form), out);
    await load();
    return page;
  }
  function usedPct(r) {
    const funded = BigInt(r.allocated_micros || 0) + BigInt(r.transferred_in_micros || 0) -
      BigInt(r.transferred_out_micros || 0) - BigInt(r.reclaimed_micros || 0) + BigInt(r.carried_in_micros || 0);
    return pct(BigInt(r.spent_micros), funded);
  }
  function chargebackView(report, p) {
    const key = report.group_by;
    const funding = report.columns.includes("allocated");
    const dp = 6; // exact: the totals reconcile with the ledger to the micro
    const isMoney = (c) => (c + "_micros") in report.totals;
    const cell = (r, c) => {
      if (c === "used_pct") return h("td", { class: "num" }, usedPct(r));
      if (isMoney(c)) return money(BigInt(r[c + "_micros"]), dp);
      return numTd(r[c]);
    };
    const label = (c) => th(c === "used_pct" ? "% used" : c.replace(/_/g, " "), true);
    // Two tables so that nothing hides at 1280 px: the budget view (what finance reads first:
    // remaining, % used) and the usage view; both list every row and end with the totals.
    const grid = (id, caption, cols) => {
      const head = [h("th", { scope: "col" }, key.replace("_", " ")), ...cols.map(label)];
      const rows = report.rows.map((r) => h("tr", {}, h("td", {}, r[key]), cols.map((c) => cell(r, c))));
      rows.push(h("tr", { class: "total" }, h("td", {}, "Total"), cols.map((c) => cell(report.totals, c))));
      return h("div", { class: "tablewrap" }, h("table", { class: "compact", id },
        h("caption", {}, caption), h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows)));
    };
    const present = (cols) => cols.filter((c) => c === "used_pct" ? funding : report.columns.includes(c));
    const budgetCols = present(BUDGET_COLUMNS);
    const usageCols = present(USAGE_COLUMNS);
    const tables = [];
    if (funding) tables.push(grid("chargeback", `Budget (${report.currency})`, budgetCols));
    tables.push(grid(funding ? "chargeback-usage" : "chargeback", `Usage (${report.currency}, tokens)`, usageCols));
    // Reconciliation, recomputed here in BigInt from the rows: every figure must equal the
    // ledger's own totals (computed by the service straight from the ledger entries).
    const sum = (c) => report.rows.reduce((s, r) => s + BigInt(r[c] || 0), 0n);
    const lt = report.ledger_totals;
    const checks = [["spent", sum("spent_micros"), BigInt(lt.spent_micros), true],
      ["estimated spend", sum("spent_estimated_micros"), BigInt(lt.spent_estimated_micros), true],
      ["requests", sum("requests"), BigInt(lt.spend_entries), false]];
    if (funding) {
      checks.push(["allocated", sum("allocated_micros"), BigInt(lt.allocated_micros), true],
        ["reclaimed", sum("reclaimed_micros"), BigInt(lt.reclaimed_micros), true],
        ["transferred in", sum("transferred_in_micros"), BigInt(lt.transferred_micros), true]);
    }
    const allOk = checks.every(([, a, b]) => a === b);
    const recon = h("ul", { class: "recon", id: "reconciliation" }, checks.map(([n, a, b, isMoney]) =>
      h("li", { class: a === b ? "ok" : "error" }, `${a === b ? "✓" : "✗"} ${n}: rows ${isMoney ? fmt(a, 6) : a} = ledger ${isMoney ? fmt(b, 6) : b}${isMoney ? " " + cur() : ""}`)));
    const downloads = h("div", { class: "downloads" }, [["csv", "CSV"], ["json", "JSON"], ["focus", "FOCUS (CSV)"], ["focus-parquet", "FOCUS (Parquet)"]].map(([f, l]) =>
      h("button", { type: "button", class: "secondary", id: "download-" + f, onclick: () => download(f, p) }, "Download " + l)));
    return h("div", {},
      h("section", { class: "card" }, h("h2", {}, `${report.period} by ${key.replace("_", " ")}`),
        h("p", { class: "muted" }, `${report.from.slice(0, 10)} to ${report.to.slice(0, 10)} (exclusive) · amounts in ${report.currency}, ${dp} decimals · generated ${report.generated_at.slice(0, 19)}`),
        tables),
      h("div", { class: "grid two" },
        h("section", { class: "card", "aria-labelledby": "recon-h" }, h("h2", { id: "recon-h", class: allOk ? "ok" : "error" },
          allOk ? "Reconciled with the ledger to the micro" : "NOT reconciled with the ledger"), recon),
        h("section", { class: "card", "aria-labelledby": "dl-h" }, h("h2", { id: "dl-h" }, "Downloads"), downloads,
          h("p", { class: "muted" }, "FOCUS 1.3: one row per day, team, consumer group, model, user and paying wallet."))));
  }
  async function download(format, p) {
    try {
      const res = await fetch("/v1/reports/chargeback" + qs({ ...p, format }), {
        headers: { Authorization: "Bearer " + state.token }, credentials: "omit", cache: "no-store" });
      if (!res.ok) {
        const text = await res.text();
        let data = null;
        try { data = JSON.parse(text); } catch (_) { data = null; }
        throw new ApiError(res.status, data, text);
      }
      const blob = await res.blob();
      const ext = { json: "json", "focus-parquet": "parquet" }[format] || "csv";
      const name = `chargeback-${p.period}-${p.group_by}${format.startsWith("focus") ? "-focus" : ""}.${ext}`;
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      status(`Downloaded ${name}.`);
    } catch (err) {
      status(err instanceof ApiError ? err.describe() : String(err), true);
    }
  }

  // ------------------------------------------------------------------ Actions

  // One money move form. Its Idempotency-Key is made when the form is drawn and renewed only
  // when the form is edited after a completed submission: a double click (or a resubmit of the
  // unchanged form) carries the same key, so the API applies the move once and replays it.
  function moveForm(id, title, path, fields, build, note) {
    let key = newKey();
    let completed = false;
    const result = h("div", { class: "result", role: "status", id: id + "-result" });
    const inputs = {};
    const parts = fields.map(([name, label, kind, options]) => {
      const fid = `${id}-${name}`;
      let el;
      if (kind === "select") el = h("select", { id: fid, name, required: true }, options.map((o, i) =>
        h("option", { value: o, selected: name === "to" && i === 1 }, o)));
      else if (kind === "amount") el = h("input", { id: fid, name, class: "amount", inputmode: "decimal", required: true, pattern: "[0-9]+(\\.[0-9]{1,6})?", placeholder: "0.00" });
      else if (kind === "user") el = h("input", { id: fid, name, size: 16, required: true, list: fid + "-list", autocomplete: "off", pattern: "[A-Za-z0-9_.@:-]{1,128}" });
      else el = h("input", { id: fid, name, size: kind === "long" ? 28 : 16, required: kind !== "long" });
      inputs[name] = el;
      const list = kind === "user" ? h("datalist", { id: fid + "-list" }, (options || []).map((o) => h("option", { value: o }))) : null;
      return h("div", { class: "field" }, h("label", { for: fid }, label + (kind === "amount" ? ` (${cur()})` : "")), el, list);
    });
    const button = h("button", { type: "submit" }, title);
    const form = h("form", { class: "inline", id, "data-idempotency-key": key }, parts, button);
    form.addEventListener("input", () => {
      if (completed) {
        key = newKey();
        completed = false;
        form.dataset.idempotencyKey = key;
      }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const values = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
      const body = Object.assign(build(values), { amount: values.amount, currency: cur() });
      if (values.description) body.description = values.description;
      button.disabled = true;
      try {
        const done = await call("POST", path, body, { "Idempotency-Key": key });
        completed = true;
        const mdp = viewDp([done.amount, ...Object.values(done.balances)]);
        const bal = Object.entries(done.balances).map(([w, b]) => `${w} ${fmt(b, mdp)}`).join(", ");
        result.replaceChildren(h("span", { class: "ok" }, done.replayed
          ? `Already applied (entry ${done.entry_id}); nothing moved again. Edit the form to send another.`
          : `${done.operation} ${fmt(done.amount, mdp)} ${done.currency} applied (entry ${done.entry_id}). Now: ${bal}`));
        status(`${done.operation} ${done.replayed ? "replayed" : "applied"}.`);
      } catch (err) {
        if (err instanceof ApiError) completed = true;
        status(`${title}: refused.`, true);
        result.replaceChildren(h("span", { class: "error", role: "alert" }, err instanceof ApiError ? err.describe() : String(err)));
      } finally {
        button.disabled = false;
      }
    });
    return h("section", { class: "card", "aria-labelledby": id + "-h" }, h("h2", { id: id + "-h" }, title),
      note ? h("p", { class: "muted" }, note) : null, form, result);
  }
  // A team lead's moves (issue 12 item 5): team wallet <-> one of the team's user wallets through
  // TeamAllocate / TeamReclaim, which honour the Idempotency-Key like the billing moves.
  function leadForms(team, users, suffix) {
    const desc = ["description", "Description", "long"];
    const base = `/v1/wallets/teams/${encodeURIComponent(team)}`;
    return [
      moveForm("team-allocate-form" + suffix, "Allocate to a user", base + "/allocate",
        [["user_id", "User", "user", users], ["amount", "Amount", "amount"], desc],
        (v) => ({ user_id: v.user_id }), `Team wallet team:${team} → one of its users' wallets (within the team's available balance).`),
      moveForm("team-reclaim-form" + suffix, "Reclaim from a user", base + "/reclaim",
        [["user_id", "User", "user", users], ["amount", "Amount", "amount"], desc],
        (v) => ({ user_id: v.user_id }), `One of its users' wallets → team wallet team:${team} (available balance only).`),
      topupForm(team, suffix),
    ];
  }
  // Request a top-up (RequestTopUp). The API takes no Idempotency-Key for it (each call is a new
  // request), so the console sends none: the button is disabled while the call runs and the form
  // is cleared once it is accepted, so a double click or a resend cannot file a second request.
  function topupForm(team, suffix) {
    const id = "topup-form" + suffix;
    const result = h("div", { class: "result", role: "status", id: id + "-result" });
    const amount = h("input", { id: id + "-amount", name: "amount", class: "amount", inputmode: "decimal", required: true, pattern: "[0-9]+(\\.[0-9]{1,6})?", placeholder: "0.00" });
    const reason = h("input", { id: id + "-reason", name: "description", size: 28, required: true, maxlength: 500 });
    const button = h("button", { type: "submit" }, "Request a top-up");
    const form = h("form", { class: "inline", id, "data-team": team },
      h("div", { class: "field" }, h("label", { for: amount.id }, `Amount (${cur()})`), amount),
      h("div", { class: "field" }, h("label", { for: reason.id }, "Reason"), reason), button);
    let busy = false;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (busy) return;
      busy = true;
      button.disabled = true;
      try {
        const done = await call("POST", `/v1/wallets/teams/${encodeURIComponent(team)}/topups`,
          { amount: amount.value.trim(), currency: cur(), description: reason.value.trim() });
        form.reset();
        result.replaceChildren(h("span", { class: "ok" },
          `Top-up ${done.id} for ${fmt(done.amount, viewDp([done.amount]))} ${done.currency} requested: ${done.status}, billing decides.`));
        status(`Top-up ${done.id} requested.`);
      } catch (err) {
        result.replaceChildren(h("span", { class: "error", role: "alert" }, err instanceof ApiError ? err.describe() : String(err)));
      } finally {
        busy = false;
        button.disabled = false;
      }
    });
    return h("section", { class: "card", "aria-labelledby": id + "-h" }, h("h2", { id: id + "-h" }, "Request a top-up"),
      h("p", { class: "muted" }, `From the org pool to team:${team}; billing approves or denies it.`), form, result);
  }
  function topupTable(caption, topups, open, decide) {
    const head = [th("Top-up"), th("Status"), th("Team"), moneyTh("Amount"), th("Reason given"), th("Requested by"), th("Created (UTC)", true)];
    if (open && decide) head.push(th("Decision"));
    else if (!open) head.push(th("Decided by"), th("Decision reason"));
    const dp = viewDp(topups.map((t) => t.amount));
    const rows = topups.map((t) => {
      const cells = [h("td", {}, h("code", {}, t.id)), h("td", {}, statusBadge(t.status)), h("td", {}, t.team_id), money(t.amount, dp),
        h("td", {}, t.description), h("td", {}, t.requested_by), h("td", { class: "num" }, t.created.replace("T", " ").slice(0, 19))];
      if (open && decide) cells.push(h("td", {}, topupDecision(t)));
      else if (!open) cells.push(h("td", {}, t.decided_by), h("td", {}, t.reason));
      return h("tr", { "data-topup": t.id }, cells);
    });
    return table(caption + " top-ups", head, rows.length ? rows : [h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "None"))], "compact");
  }
  // Approve (allocates from the org pool once: a second approval is a 409) or deny, with a reason.
  function topupDecision(t) {
    const reasonId = "topup-reason-" + t.id;
    const result = h("div", { class: "result", role: "status" });
    const reason = h("input", { id: reasonId, name: "reason", maxlength: 500, size: 14 });
    const form = h("form", { class: "inline", "data-topup": t.id },
      h("div", { class: "field" }, h("label", { for: reasonId }, "Reason"), reason),
      h("button", { type: "submit", value: "approve" }, "Approve"),
      h("button", { type: "submit", value: "deny", class: "danger" }, "Deny"), result);
    let busy = false;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (busy) return;
      busy = true;
      const action = ev.submitter ? ev.submitter.value : "approve";
      for (const b of form.querySelectorAll("button")) b.disabled = true;
      try {
        const done = await call("POST", `/v1/wallets/topups/${encodeURIComponent(t.id)}:${action}`, { reason: reason.value });
        result.replaceChildren(h("span", { class: "ok" }, `${done.status} by ${done.decided_by}`));
        status(`Top-up ${t.id} ${done.status}.`);
        refreshSoon();
      } catch (err) {
        result.replaceChildren(h("span", { class: "error", role: "alert" }, err instanceof ApiError ? err.describe() : String(err)));
        busy = false;
        for (const b of form.querySelectorAll("button")) b.disabled = false;
      }
    });
    return form;
  }
  async function topupsOf(params) {
    try {
      return (await get("/v1/wallets/topups" + qs(params))).topups;
    } catch (err) {
      if (err instanceof ApiError && err.status === 503) return null;
      throw err;
    }
  }
  async function actionsPage() {
    const me = state.me;
    const wallets = await get("/v1/wallets");
    const teams = me.teams;
    const leads = me.roles.filter((r) => r.startsWith("team:")).map((r) => r.slice(5));
    const users = wallets.wallets.filter((w) => w.scope === "user").map((w) => w.owner);
    const targets = [...teams.map((t) => "team:" + t), ...users.map((u) => "user:" + u)];
    const target = (v, field) => {
      const [scope, owner] = v.split(/:(.*)/s);
      return { [(field ? field + "_" : "") + scope + "_id"]: owner };
    };
    const desc = ["description", "Description", "long"];
    const sections = [];
    if (me.billing) {
      sections.push(
        moveForm("credit-form", "Credit the org pool", "/v1/wallets/credit", [["amount", "Amount", "amount"], desc], () => ({}), null),
        moveForm("allocate-form", "Allocate", "/v1/wallets/allocate", [["target", "To wallet", "select", targets], ["amount", "Amount", "amount"], desc],
          (v) => target(v.target), "Org pool → team or user wallet."),
        moveForm("reclaim-form", "Reclaim", "/v1/wallets/reclaim", [["target", "From wallet", "select", targets], ["amount", "Amount", "amount"], desc],
          (v) => target(v.target), "Team or user wallet → org pool (available balance only)."),
        moveForm("transfer-form", "Transfer", "/v1/wallets/transfer",
          [["from", "From wallet", "select", targets], ["to", "To wallet", "select", targets], ["amount", "Amount", "amount"], desc],
          (v) => Object.assign(target(v.from, "from"), target(v.to, "to")), "Between two team (or user) wallets, atomically."));
    } else if (leads.length) {
      // A team token lists its own team's user wallets only; a token that reads all gets no
      // suggestions (the API refuses users of other teams either way).
      const own = me.reads_all ? [] : users;
      for (const [i, team] of leads.entries()) {
        sections.push(h("section", { class: "card", id: "lead-role" + (i ? "-" + team : "") }, h("h2", {}, `Team lead: ${team}`),
          h("p", { class: "muted" }, `This token re-splits team:${team}'s budget between the team wallet and its users' wallets, and asks billing for top-ups. ` +
            "Moves never exceed the team's available balance and never reach another team's user: the API refuses them and the answer is shown."),
          h("p", {}, h("a", { href: "#/team/" + encodeURIComponent(team) }, "See the team's wallet and top-ups"))),
        ...leadForms(team, own, i ? "-" + team : ""));
      }
    }
    if (!me.billing && !leads.length) {
      sections.push(h("p", { class: "muted", id: "no-actions" }, "This token reads only: it has no money moves or ticket decisions (billing role needed)."));
    }
    const wide = [];
    if (me.billing) {
      const pending = await get("/v1/wallets/tickets" + qs({ status: "pending" }));
      wide.push(h("section", { class: "card", "aria-labelledby": "decide-h" }, h("h2", { id: "decide-h" }, "Pending cost tickets"),
        ticketTable("Open", pending.tickets, true)));
      const topups = await topupsOf({ status: "pending" });
      wide.push(h("section", { class: "card", "aria-labelledby": "decide-topups-h", id: "pending-topups" }, h("h2", { id: "decide-topups-h" }, "Pending top-up requests"),
        topups === null ? h("p", { class: "muted" }, "Top-ups are not available on this service.") : topupTable("Open", topups, true, true)));
    }
    return h("div", { id: "actions-page" }, h("h1", {}, "Actions"), h("div", { class: "grid two" }, sections), wide);
  }

  // ------------------------------------------------------------------ start

  document.addEventListener("DOMContentLoaded", async () => {
    $("signin-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = $("token");
      $("signin-error").textContent = "";
      try {
        await signIn(input.value.trim());
        input.value = "";
        await route();
        $("main").focus();
      } catch (err) {
        $("signin-error").textContent = err instanceof ApiError ? err.describe() : String(err);
      }
    });
    $("sign-out").addEventListener("click", () => signOut());
    window.addEventListener("hashchange", route);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      try {
        await signIn(saved);
        await route();
      } catch (_) {
        signOut("Your saved session expired: sign in again.");
      }
    }
  });
})();
