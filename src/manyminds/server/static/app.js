// The manyminds web page: ask box, one live column per member, the verdict, the agreement view
// and the run history. Vanilla JS served by `manyminds serve`; no build step, no other host.
//
// Everything a model or a document wrote is untrusted data: it reaches the page only through
// `textContent`, text nodes and `setAttribute` on inert attributes — never `innerHTML`.

const EVENT_KINDS = [
  "run_started", "stage_started", "member_started", "member_delta", "member_retry",
  "member_done", "member_failed", "member_cut", "stage_done", "verdict", "run_failed",
];
const LIVE_STATUSES = new Set(["running", "queued"]);
const MAIN_STAGE = "fan_out";
const STANCE_MARK = { supports: "✓", contradicts: "✗", silent: "–" };

const $ = (id) => document.getElementById(id);

/** Build an element. `props.text` sets textContent; other props become attributes (never event
 * handlers: listeners are added with addEventListener by the caller). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (/^on/i.test(key)) throw new Error(`refusing an inline handler: ${key}`);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const pct = (x) => `${Math.round((Number(x) || 0) * 100)}%`;
const seconds = (s) => (s === undefined || s === null ? "" : `${Number(s).toFixed(1)} s`);

// --- the access token ------------------------------------------------------------------------

const auth = {
  token: null,
  init() {
    const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
    const fromQuery = new URLSearchParams(location.search).get("token");
    const found = fromHash || fromQuery;
    if (found) {
      this.set(found);
      // Keep the token out of the address bar, bookmarks and screenshots.
      const rest = new URLSearchParams(location.hash.slice(1));
      rest.delete("token");
      const hash = rest.toString();
      history.replaceState(null, "", location.pathname + (hash ? `#${hash}` : ""));
    } else {
      try { this.token = sessionStorage.getItem("manyminds-token"); } catch { this.token = null; }
    }
  },
  set(token) {
    this.token = token || null;
    try {
      if (this.token) sessionStorage.setItem("manyminds-token", this.token);
      else sessionStorage.removeItem("manyminds-token");
    } catch { /* storage may be disabled; the token then lives for this page only */ }
  },
  /** EventSource cannot send headers: GETs may carry the token as `?token=`. */
  url(path) {
    if (!this.token) return path;
    return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(this.token)}`;
  },
};

// --- talking to the server ---------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message, detail = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.detail = detail;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "NetworkError", `Cannot reach the manyminds server (${err.message}).`);
  }
  const raw = await response.text();
  let data = null;
  try { data = raw ? JSON.parse(raw) : null; } catch { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const message = error.message || (data && data.detail && JSON.stringify(data.detail)) || raw.slice(0, 300) || response.statusText;
    const failure = new ApiError(response.status, error.type || `HTTP ${response.status}`, message, error);
    if (response.status === 401) askForToken(failure);
    throw failure;
  }
  return data;
}

function askForToken(error) {
  const box = $("token-box");
  box.open = true;
  setStatus(auth.token ? "The server refused this token." : "This server needs an access token.");
  $("token").focus();
  return error;
}

// --- status and errors -----------------------------------------------------------------------

function setStatus(text) {
  $("status").textContent = text || "";
}

function clearError() {
  const box = $("error");
  box.hidden = true;
  box.replaceChildren();
}

/** Show an error plainly: its type, its message (which may list every member's cause), and the
 * causes the page already knows from the member columns. */
function showError(error, heading = "The run failed") {
  const box = $("error");
  const type = error && (error.type || error.name);
  const message = (error && (error.message || error.cause)) || "Unknown error.";
  const parts = [el("strong", { text: type ? `${heading}: ${type}` : heading }), el("p", { class: "error-message", text: message })];
  const known = current ? [...current.members.values()].filter((m) => ["failed", "timeout"].includes(m.main().status)) : [];
  const unlisted = known.filter((m) => !message.includes(m.name));
  if (unlisted.length) {
    parts.push(el("ul", { class: "error-causes" }, unlisted.map((m) => el("li", { text: `${m.name}: ${m.main().error}` }))));
  }
  if (error && error.command) parts.push(el("p", {}, "Fix: ", el("code", { text: error.command })));
  box.replaceChildren(...parts);
  box.hidden = false;
}

// --- one member's column -----------------------------------------------------------------------

const STAGE_LABELS = {
  fan_out: "Answers", compare: "Compare", synthesize: "Chair", claims: "Claims", ground: "Grounding",
};

function stageLabel(stage) {
  if (!stage) return "";
  if (STAGE_LABELS[stage]) return STAGE_LABELS[stage];
  const m = /^(review|revise|round|sample)_(\d+)$/.exec(stage);
  if (m) return `${m[1][0].toUpperCase()}${m[1].slice(1)} ${m[2]}`;
  return stage.replace(/_/g, " ");
}

/** What one member did in one stage: status, text (streamed, then final), latency, tokens. */
class Slot {
  constructor(member, stage, textNode, onChange) {
    this.member = member;
    this.stage = stage;
    this.status = "waiting";
    this.textNode = textNode;
    this.onChange = onChange;
    this.startedAt = null;
    this.latency = null;
    this.tokens = null;
    this.error = "";
    this.note = "";
    this.deltas = 0;
    this.shortAnswer = null;
  }

  start(ts) {
    this.status = "streaming";
    this.startedAt = ts ?? null;
    this.onChange(this);
  }

  append(text, ts) {
    if (!text) return;
    this.status = "streaming";
    this.deltas += 1;
    this.textNode.appendData(text);
    if (this.startedAt !== null && ts !== undefined) this.latency = ts - this.startedAt;
    this.onChange(this, true);
  }

  retry(data) {
    this.status = "retrying";
    this.textNode.data = "";
    this.note = `retry ${data.attempt ?? ""}: ${data.cause ?? ""}${data.delay_s ? ` (waiting ${data.delay_s} s)` : ""}`;
    this.onChange(this);
  }

  /** A finished answer: a MemberAnswer from an event, a verdict or a stored row. */
  complete(answer) {
    this.status = answer.status || "ok";
    if (answer.text) this.textNode.data = answer.text;
    if (answer.latency_s !== undefined && answer.latency_s !== null) this.latency = answer.latency_s;
    const usage = answer.usage || {};
    if (usage.output_tokens !== undefined) this.tokens = usage.output_tokens;
    if (answer.short_answer) this.shortAnswer = answer.short_answer;
    if (answer.error) {
      const e = answer.error;
      this.error = e.message || e.cause || e.type || this.status;
      this.note = "";
    } else if (this.status === "ok") {
      this.note = "";
    }
    this.onChange(this);
  }
}

class MemberColumn {
  constructor(name, model) {
    this.name = name;
    this.model = model || "";
    this.slots = new Map();
    this.mainStage = null;
    this.badge = el("span", { class: "badge status-waiting", text: "waiting" });
    this.meta = el("span", { class: "meta" });
    this.modelLabel = el("span", { class: "model", text: this.model });
    this.short = el("p", { class: "member-short", hidden: true });
    this.textBox = el("div", { class: "member-text", tabindex: "0", "aria-label": `Answer of ${name}` });
    this.mainText = document.createTextNode("");
    this.textBox.append(this.mainText);
    this.errorBox = el("p", { class: "member-error", hidden: true });
    this.noteBox = el("p", { class: "member-note", hidden: true });
    this.later = el("div", { class: "member-stages" });
    this.node = el(
      "article",
      { class: "member status-waiting", dataset: { member: name }, "aria-label": `Member ${name}` },
      el("header", { class: "member-head" },
        el("h3", { text: name }), this.modelLabel,
        el("div", { class: "member-status" }, this.badge, this.meta)),
      this.short, this.textBox, this.noteBox, this.errorBox, this.later,
    );
  }

  setModel(model) {
    if (model && !this.model) {
      this.model = model;
      this.modelLabel.textContent = model;
    }
  }

  main() {
    return this.slot(this.mainStage || MAIN_STAGE);
  }

  /** A specialist the question was not for: not asked; says why. */
  skipped(reason) {
    this.node.className = "member status-skipped";
    this.badge.className = "badge status-skipped";
    this.badge.textContent = "skipped";
    this.noteBox.hidden = false;
    this.noteBox.textContent = reason;
  }

  /** The slot for `stage`; the member's first stage (normally fan_out) is its main column text,
   * later stages (reviews, revisions…) fold into small disclosures below it. */
  slot(stage) {
    stage = stage || MAIN_STAGE;
    let slot = this.slots.get(stage);
    if (slot) return slot;
    if (!this.mainStage) this.mainStage = stage === MAIN_STAGE || !this.slots.size ? stage : MAIN_STAGE;
    if (stage === this.mainStage) {
      slot = new Slot(this, stage, this.mainText, (s, streaming) => this.renderMain(s, streaming));
    } else {
      const text = document.createTextNode("");
      const summary = el("summary");
      const details = el("details", { class: "member-stage", dataset: { stage } }, summary, el("div", { class: "member-text small" }, text));
      this.later.append(details);
      slot = new Slot(this, stage, text, (s) => {
        const bits = [stageLabel(stage), s.status];
        if (s.latency !== null) bits.push(seconds(s.latency));
        if (s.error) bits.push(s.error);
        summary.textContent = bits.join(" · ");
        details.className = `member-stage status-${s.status}`;
      });
      slot.onChange(slot);
    }
    this.slots.set(stage, slot);
    return slot;
  }

  renderMain(slot, streaming = false) {
    this.node.className = `member status-${slot.status}`;
    this.node.dataset.status = slot.status;
    this.node.dataset.deltas = String(slot.deltas);
    this.badge.className = `badge status-${slot.status}`;
    this.badge.textContent = slot.status;
    const meta = [];
    if (slot.latency !== null) meta.push(seconds(slot.latency));
    if (slot.tokens !== null) meta.push(`${slot.tokens} token${slot.tokens === 1 ? "" : "s"}`);
    this.meta.textContent = meta.join(" · ");
    this.short.hidden = !slot.shortAnswer;
    this.short.textContent = slot.shortAnswer ? `Short answer: ${slot.shortAnswer}` : "";
    this.errorBox.hidden = !slot.error;
    this.errorBox.textContent = slot.error;
    this.textBox.hidden = !this.mainText.data && (slot.status === "failed" || slot.status === "timeout");
    this.noteBox.hidden = !slot.note;
    this.noteBox.textContent = slot.note;
    if (streaming) this.textBox.scrollTop = this.textBox.scrollHeight;
  }
}

// --- the current run -------------------------------------------------------------------------

/** @type {null | {id: string, question: string, members: Map<string, MemberColumn>, stages: Map<string, HTMLElement>, stage: string|null, source: EventSource|null, done: boolean, checked: boolean}} */
let current = null;

function startRun(id, question) {
  closeSource();
  current = { id, question, members: new Map(), stages: new Map(), stage: null, source: null, done: false, checked: false };
  clearError();
  $("members").replaceChildren();
  $("stages").replaceChildren();
  $("run-question").textContent = question || "";
  $("run-section").hidden = false;
  $("verdict-section").hidden = true;
  markHistory(id);
  try { history.replaceState(null, "", `${location.pathname}#run=${encodeURIComponent(id)}`); } catch { /* file:// */ }
}

function member(name, model) {
  let column = current.members.get(name);
  if (!column) {
    column = new MemberColumn(name, model);
    current.members.set(name, column);
    $("members").append(column.node);
  } else {
    column.setModel(model);
  }
  return column;
}

function stageItem(stage, status, secs) {
  if (!stage) return;
  let item = current.stages.get(stage);
  if (!item) {
    item = el("li", { dataset: { stage } });
    current.stages.set(stage, item);
    $("stages").append(item);
  }
  item.className = `stage stage-${status}`;
  item.dataset.status = status;
  const mark = status === "done" ? "✓" : status === "failed" ? "✗" : "…";
  item.textContent = `${mark} ${stageLabel(stage)}${secs !== undefined && secs !== null ? ` ${seconds(secs)}` : ""}`;
}

function handleEvent(ev) {
  const data = ev.data || {};
  const stage = ev.stage || current.stage || MAIN_STAGE;
  switch (ev.kind) {
    case "run_started": {
      if (data.question) {
        current.question = data.question;
        $("run-question").textContent = data.question;
      }
      for (const m of (data.council && data.council.members) || []) member(m.name, m.model);
      setStatus(`Asking ${(data.council && data.council.name) || "the council"}…`);
      break;
    }
    case "stage_started":
      current.stage = ev.stage;
      stageItem(ev.stage, "running");
      setStatus(`${stageLabel(ev.stage)}…`);
      break;
    case "stage_done":
      stageItem(ev.stage, "done", data.seconds);
      break;
    case "member_started":
      if (ev.member) member(ev.member, data.model).slot(stage).start(ev.ts);
      break;
    case "member_delta":
      if (ev.member) member(ev.member).slot(stage).append(data.text, ev.ts);
      break;
    case "member_retry":
      if (ev.member) member(ev.member).slot(stage).retry(data);
      break;
    case "member_done":
    case "member_failed":
    case "member_cut":
      if (ev.member) member(ev.member, data.answer && data.answer.model).slot(stage).complete(data.answer || {});
      break;
    case "verdict":
      finishRun();
      renderVerdict(data);
      setStatus(`Answered in ${seconds((data.timings || {}).total)}.`);
      break;
    case "run_failed":
      finishRun();
      if (current.stage) stageItem(current.stage, current.stages.get(current.stage)?.dataset.status === "done" ? "done" : "failed");
      showError(data);
      setStatus("The run failed.");
      break;
    default:
      break;
  }
}

function finishRun() {
  current.done = true;
  closeSource();
  loadHistory();
}

function closeSource() {
  if (current && current.source) {
    current.source.close();
    current.source = null;
  }
}

/** Follow a run's events. The stream replays the run from its start, so a stored run that is
 * still going shows everything so far and then the rest live. */
function follow(id, url) {
  const run = current;
  const source = new EventSource(auth.url(url || `/api/runs/${encodeURIComponent(id)}/events`));
  run.source = source;
  for (const kind of EVENT_KINDS) {
    source.addEventListener(kind, (message) => {
      if (current !== run || run.done) return;
      let ev;
      try { ev = JSON.parse(message.data); } catch { return; }
      handleEvent(ev);
    });
  }
  source.addEventListener("error", async (message) => {
    if (current !== run || run.done) return;
    if (message.data) { // an `event: error` the server sent: {"error": {type, message}}
      let body = {};
      try { body = JSON.parse(message.data); } catch { body = { message: message.data }; }
      run.done = true;
      closeSource();
      showError(body.error || body, "The event stream failed");
      return;
    }
    // A dropped or refused connection. EventSource retries by itself (resuming after the last
    // event it saw); ask the server once whether the run is still going.
    if (run.checked) return;
    run.checked = true;
    try {
      const stored = await api(`/api/runs/${encodeURIComponent(id)}`);
      if (current !== run || run.done) return;
      if (!LIVE_STATUSES.has(stored.status)) {
        run.done = true;
        closeSource();
        renderStoredRun(stored);
      } else {
        run.checked = false;
        setStatus("Reconnecting to the run…");
      }
    } catch (err) {
      if (current !== run) return;
      run.done = true;
      closeSource();
      showError(err, "Cannot follow the run");
    }
  });
}

// --- asking ------------------------------------------------------------------------------------

async function ask(question) {
  clearError();
  if (!question.trim()) {
    showError({ type: "InputError", message: "The question is empty. Ask something, e.g. “Who wrote Hamlet?”" }, "Cannot ask");
    $("question").focus();
    return;
  }
  const body = {
    question,
    council: $("council").value || null,
    models: null,
    strategy: null,
    tier: $("deep").checked ? "deep" : "quick",
    no_memory: !$("use-memory").checked,
    effort: $("effort").value || null,
  };
  const button = $("ask-button");
  button.disabled = true;
  setStatus("Sending the question…");
  try {
    const run = await api("/api/runs", { method: "POST", body });
    startRun(run.id, question);
    setStatus(run.status === "queued" ? "Queued: waiting for a worker…" : "Asking…");
    follow(run.id, run.events_url);
    loadHistory();
  } catch (err) {
    setStatus("");
    showError(err, "Cannot ask");
  } finally {
    button.disabled = false;
  }
}

// --- the verdict -------------------------------------------------------------------------------

function renderVerdict(v) {
  // Columns for members the events never showed (a stored run, a replay without deltas).
  for (const m of v.members || []) {
    const column = member(m.member, m.model);
    const slot = column.main();
    if (slot.status === "waiting" || slot.status === "streaming" || !slot.textNode.data) slot.complete(m);
    else if (m.short_answer) { slot.shortAnswer = m.short_answer; slot.onChange(slot); }
  }
  $("verdict-section").hidden = false;
  $("answer").textContent = v.answer || "";
  // The prose that explains a short answer, when it says more than the answer itself.
  const explanation = $("explanation");
  const said = (v.explanation || "").trim().replace(/\.$/, "").toLowerCase();
  explanation.hidden = !said || (v.answer || "").toLowerCase().includes(said);
  explanation.textContent = explanation.hidden ? "" : v.explanation;
  const short = $("short-answer");
  short.hidden = !v.short_answer || v.short_answer === v.answer;
  short.textContent = v.short_answer ? `Short answer: ${v.short_answer}` : "";

  // The effort tier: how `auto` routed the question, and what early consensus cut.
  const route = $("route");
  const routeBits = [];
  if (v.route) routeBits.push(`Route: ${v.route.tier} — ${v.route.reason}`);
  else if (v.effort) routeBits.push(`Effort: ${v.effort}`);
  if (v.early_consensus && (v.early_consensus.cut || []).length) {
    routeBits.push(`Early consensus: cut ${v.early_consensus.cut.join(", ")} (${v.early_consensus.reason})`);
  }
  route.hidden = !routeBits.length;
  route.textContent = routeBits.join(" · ");

  const confidence = Math.max(0, Math.min(1, Number(v.confidence) || 0));
  $("confidence-value").textContent = pct(confidence);
  const bar = $("confidence-bar");
  bar.setAttribute("aria-valuenow", String(Math.round(confidence * 100)));
  bar.setAttribute("aria-valuetext", pct(confidence));
  const fill = $("confidence-fill");
  fill.style.width = pct(confidence);
  fill.className = `bar-fill ${confidence >= 0.75 ? "high" : confidence >= 0.5 ? "mid" : "low"}`;
  $("confidence-explanation").textContent = v.confidence_explanation || "";

  fillList("warnings", (v.warnings || []).map((w) => el("li", { text: w })));
  const used = v.memory_used || [];
  fillList("memory-used", used.map((m) => el("li", { dataset: { memoryId: m.id } }, el("q", { text: m.text }),
    el("span", { class: "hint", text: ` (similarity ${Number(m.score).toFixed(2)})` }))));
  const given = (v.memory_members || []).join(", ");
  const withheld = (v.memory_withheld || []).join(", ");
  $("memory-used-caption").textContent = used.length
    ? `Profile ${v.memory_profile}; given to ${given || "no member"}${withheld ? `; withheld from ${withheld}` : ""}.` : "";
  fillList("specialists", (v.specialists || []).map(specialistItem));
  // A specialist that was not asked (out of its domain) never streamed: its column says why.
  for (const n of v.specialists || []) {
    const column = current && current.members.get(n.member);
    if (column && n.status === "skipped") column.skipped(n.reason);
  }
  fillList("dissent", (v.dissent || []).map((d) =>
    el("li", {}, el("q", { text: d.answer }), ` — ${(d.members || []).join(", ")} (${pct(d.share)})`)));

  renderAgreement(v);
  renderPairwise(v.agreement);

  fillList("citations", (v.citations || []).map((c) => el("li", { value: c.id, dataset: { citation: c.id } },
    el("span", { class: "cite-id", text: `[${c.id}] ` }), documentLink(c.document),
    c.location ? `, ${c.location}` : "",
    c.quote ? el("blockquote", { text: c.quote }) : null,
    c.claim_ids && c.claim_ids.length ? el("span", { class: "hint", text: ` supports ${c.claim_ids.join(", ")}` }) : null)));

  fillList("follow-ups", (v.follow_ups || []).map((q) => {
    const button = el("button", { type: "button", class: "link-button", text: q });
    button.addEventListener("click", () => {
      $("question").value = q;
      window.scrollTo({ top: 0, behavior: "smooth" });
      ask(q);
    });
    return el("li", {}, button);
  }));

  const reviews = v.reviews || [];
  $("reviews").hidden = !reviews.length;
  $("reviews-list").replaceChildren(...reviews.map((r) => el("li", {},
    el("strong", { text: `${r.reviewer} (round ${r.round ?? 1})` }),
    r.status === "failed" ? ` failed: ${(r.error && r.error.message) || ""}` : ` ranks ${(r.ranking || []).join(" > ") || "—"}`,
    (r.errors || []).length ? el("ul", {}, r.errors.map((e) => el("li", {}, `${e.member}: `, el("q", { text: e.quote }), ` — ${e.reason}`))) : null)));

  const usage = v.usage || {};
  const bits = [`Run ${v.run_id}`, `council ${v.council}`, `strategy ${v.strategy || "council"}`];
  if (v.chair) bits.push(`chair ${v.chair.member} (${v.chair.status})`);
  bits.push(`${usage.total_tokens ?? 0} tokens`);
  if (v.cost_usd !== null && v.cost_usd !== undefined) bits.push(`$${Number(v.cost_usd).toFixed(4)}`);
  const timings = Object.entries(v.timings || {}).map(([k, s]) => `${stageLabel(k) || k} ${seconds(s)}`);
  $("verdict-footer").textContent = [...bits, ...timings].join(" · ");
  for (const [stage, secs] of Object.entries(v.timings || {})) {
    if (stage !== "total" && current.stages.get(stage)?.dataset.status !== "done") stageItem(stage, "done", secs);
  }
}

/** One line of the verdict's specialists: who, which role, what it did and why, a critic's scores. */
function specialistItem(n) {
  const scores = Object.entries(n.scores || {}).map(([m, s]) => `${m} ${Number(s).toFixed(2)}`).join(", ");
  return el("li", { class: `specialist specialist-${n.status}`, dataset: { member: n.member, status: n.status } },
    el("strong", { text: n.member }), ` (${n.role}, ${n.kind}): `,
    el("span", { class: "specialist-status", text: n.status }),
    n.reason ? ` — ${n.reason}` : "",
    scores ? el("span", { class: "hint", text: ` · scores: ${scores}` }) : null,
    n.kind === "answer" && n.weight !== null && n.weight !== undefined ? el("span", { class: "hint", text: ` · weight ${n.weight}` }) : null);
}

/** The roles of the selected council's members, under the council picker. */
function showCouncilRoles() {
  const list = $("council-roles");
  const council = councilsByName.get($("council").value);
  const members = ((council && council.members) || []).filter((m) => m.role);
  list.hidden = !members.length;
  list.replaceChildren(...members.map((m) => el("li", { dataset: { member: m.name } },
    el("strong", { text: m.name }), `: ${m.role} (${m.role_kind})`,
    m.role_domain ? el("span", { class: "hint", text: ` — ${m.role_domain}` }) : null)));
}

function fillList(id, items) {
  $(id).hidden = !items.length;
  $(`${id}-list`).replaceChildren(...items);
}

/** A document as a link when it is a web address, as text otherwise. */
function documentLink(doc) {
  const text = String(doc || "");
  if (/^https?:\/\//i.test(text)) {
    return el("a", { href: text, rel: "noopener noreferrer nofollow", target: "_blank", text });
  }
  return el("span", { class: "document", text });
}

function stanceCell(stance, title) {
  const s = STANCE_MARK[stance] ? stance : "silent";
  return el("td", { class: `cell stance-${s}`, title: title || s, dataset: { stance: s } },
    el("span", { "aria-hidden": "true", text: STANCE_MARK[s] }),
    el("span", { class: "visually-hidden", text: s }));
}

function renderAgreement(v) {
  const box = $("agreement");
  const claims = v.claims && Array.isArray(v.claims.claims) && v.claims.claims.length ? v.claims : null;
  if (claims) {
    const members = claims.members || [];
    $("agreement-caption").textContent = "Claims × members: each row is one claim, clustered across the members' answers.";
    const head = el("tr", {}, el("th", { scope: "col", text: "Claim" }),
      members.map((m) => el("th", { scope: "col", text: m })),
      el("th", { scope: "col", text: "Status" }), el("th", { scope: "col", text: "Evidence" }));
    const rows = claims.claims.map((c) => el("tr", { dataset: { claim: c.id, status: c.status } },
      el("th", { scope: "row", class: "claim-text" }, el("span", { class: "claim-id", text: c.id }), " ", c.text),
      members.map((m) => {
        const wording = c.wordings && c.wordings[m];
        return stanceCell((c.stances || {})[m], `${m}: ${(c.stances || {})[m] || "silent"}${wording ? ` — “${wording}”` : ""}`);
      }),
      el("td", {}, el("span", { class: `tag claim-${c.status}`, text: c.status })),
      el("td", {}, evidenceCell(c))));
    box.replaceChildren(el("table", { class: "matrix claims-matrix" },
      el("caption", { class: "visually-hidden", text: "Claims by member" }),
      el("thead", {}, head), el("tbody", {}, rows)));
    return;
  }
  // Short answers: each cluster of equivalent answers × members.
  const answers = v.members || [];
  const names = answers.length ? answers.map((m) => m.member) : (v.agreement && v.agreement.members) || [];
  const statusOf = Object.fromEntries(answers.map((m) => [m.member, m.status]));
  const clusters = (v.agreement && v.agreement.clusters) || [];
  const clusterOf = {};
  for (const c of clusters) for (const m of c.members || []) clusterOf[m] = c.id;
  $("agreement-caption").textContent =
    "Answers × members: each row is one answer (members whose answers are equivalent share a row).";
  const head = el("tr", {}, el("th", { scope: "col", text: "Answer" }), names.map((m) => el("th", { scope: "col", text: m })),
    el("th", { scope: "col", text: "Share" }));
  const rows = clusters.map((c) => el("tr", { dataset: { cluster: c.id } },
    el("th", { scope: "row", class: "claim-text", text: c.answer }),
    names.map((m) => {
      let stance = "silent";
      if (statusOf[m] && statusOf[m] !== "ok") stance = "silent";
      else if (clusterOf[m] === c.id) stance = "supports";
      else if (clusterOf[m] !== undefined) stance = "contradicts";
      const why = statusOf[m] && statusOf[m] !== "ok" ? `${m}: ${statusOf[m]}` : `${m}: ${stance}`;
      return stanceCell(stance, why);
    }),
    el("td", { class: "num", text: pct(c.share) })));
  if (!clusters.length) {
    rows.push(el("tr", {}, el("td", { colspan: names.length + 2, text: "No member gave an answer to compare." })));
  }
  box.replaceChildren(el("table", { class: "matrix answers-matrix" },
    el("caption", { class: "visually-hidden", text: "Answers by member" }),
    el("thead", {}, head), el("tbody", {}, rows)));
}

function evidenceCell(claim) {
  const verdict = claim.evidence_verdict || "unchecked";
  const tag = el("span", { class: `tag evidence-${verdict}`, text: verdict.replace("_", " ") });
  const evidence = claim.evidence || [];
  if (!evidence.length) return tag;
  return el("details", { class: "evidence" }, el("summary", {}, tag, ` (${evidence.length})`),
    el("ul", {}, evidence.map((e) => el("li", {},
      el("span", { class: `tag evidence-${e.verdict}`, text: String(e.verdict || "").replace("_", " ") }), " ",
      el("q", { text: e.quote }), " — ", documentLink(e.document), e.location ? `, ${e.location}` : ""))));
}

function renderPairwise(agreement) {
  const box = $("pairwise-table");
  const members = (agreement && agreement.members) || [];
  const matrix = (agreement && agreement.matrix) || [];
  $("pairwise").hidden = members.length < 2;
  box.replaceChildren(el("table", { class: "matrix pairwise-matrix" },
    el("thead", {}, el("tr", {}, el("td"), members.map((m) => el("th", { scope: "col", text: m })))),
    el("tbody", {}, members.map((m, i) => el("tr", {}, el("th", { scope: "row", text: m }),
      members.map((_, j) => {
        const x = Number((matrix[i] || [])[j]) || 0;
        return el("td", { class: `num level-${Math.min(4, Math.floor(x * 5))}`, text: pct(x) });
      }))))));
}

// --- stored runs and history -----------------------------------------------------------------

async function loadRun(id) {
  clearError();
  setStatus("Loading the run…");
  try {
    const run = await api(`/api/runs/${encodeURIComponent(id)}`);
    if (LIVE_STATUSES.has(run.status)) {
      startRun(run.id, run.question);
      setStatus("This run is still going: following it live…");
      follow(run.id);
    } else {
      renderStoredRun(run);
    }
  } catch (err) {
    setStatus("");
    showError(err, "Cannot load the run");
  }
}

function renderStoredRun(run) {
  startRun(run.id, run.question);
  current.done = true;
  const described = (run.settings && run.settings.members) || [];
  for (const m of described) if (m && m.name) member(m.name, m.model);
  for (const row of run.members || []) member(row.member, row.model).slot(row.stage || MAIN_STAGE).complete(row);
  for (const s of run.stages || []) stageItem(s.stage, s.finished_at || s.seconds !== null ? "done" : "failed", s.seconds);
  if (run.verdict) {
    renderVerdict(run.verdict);
    setStatus(`Stored run from ${formatTime(run.created_at)}.`);
  } else {
    const error = run.error || { type: run.status, message: `The run is ${run.status}: it stopped before a verdict.` };
    showError(error, run.status === "incomplete" ? "The run did not finish" : "The run failed");
    setStatus(`Stored run from ${formatTime(run.created_at)} (${run.status}).`);
  }
}

function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

let historyRequest = 0;

async function loadHistory() {
  const mine = ++historyRequest;
  const params = new URLSearchParams({ limit: "50" });
  const search = $("history-search").value.trim();
  if (search) params.set("search", search);
  let data;
  try {
    data = await api(`/api/runs?${params}`);
  } catch (err) {
    if (mine === historyRequest) $("history-list").replaceChildren(el("li", { class: "error-inline", text: err.message }));
    return;
  }
  if (mine !== historyRequest) return; // a newer search answered first
  const runs = (data && data.runs) || [];
  $("history-empty").hidden = runs.length > 0;
  $("history-empty").textContent = search ? "No run matches." : "No runs yet.";
  $("history-list").replaceChildren(...runs.map((run) => {
    const meta = [run.status];
    if (run.confidence !== null && run.confidence !== undefined) meta.push(pct(run.confidence));
    if (run.council) meta.push(run.council);
    meta.push(formatTime(run.created_at));
    const button = el("button", { type: "button", class: "history-item", dataset: { runId: run.id } },
      el("span", { class: "history-question", text: run.question || "(no question)" }),
      run.short_answer || run.answer ? el("span", { class: "history-answer", text: run.short_answer || run.answer }) : null,
      el("span", { class: `history-meta status-${run.status}`, text: meta.join(" · ") }));
    button.addEventListener("click", () => loadRun(run.id));
    return el("li", { dataset: { runId: run.id } }, button);
  }));
  if (current) markHistory(current.id);
}

function markHistory(id) {
  for (const button of document.querySelectorAll(".history-item")) {
    if (button.dataset.runId === id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

// --- the personal memory -----------------------------------------------------------------------

async function loadMemory() {
  let data;
  try {
    data = await api("/api/memory");
  } catch (err) {
    if (err.status !== 401) $("memory-list").replaceChildren(el("li", { class: "error-inline", text: err.message }));
    return;
  }
  const memories = (data && data.memories) || [];
  $("memory-empty").hidden = memories.length > 0;
  $("memory-list").replaceChildren(...memories.map((m) => {
    const forget = el("button", { type: "button", class: "link-button forget", text: "Forget",
      "aria-label": `Forget: ${m.text.slice(0, 60)}` });
    forget.addEventListener("click", () => forgetMemory(m.id));
    return el("li", { dataset: { memoryId: m.id } }, el("span", { class: "memory-text", text: m.text }), " ", forget);
  }));
}

async function addMemory() {
  const text = $("memory-text").value;
  clearError();
  try {
    await api("/api/memory", { method: "POST", body: { text } });
    $("memory-text").value = "";
    setStatus("Remembered.");
  } catch (err) {
    showError(err, "Cannot remember this");
  }
  loadMemory();
}

async function forgetMemory(id) {
  clearError();
  try {
    await api(`/api/memory/${encodeURIComponent(id)}`, { method: "DELETE" });
    setStatus("Forgotten.");
  } catch (err) {
    showError(err, "Cannot forget this");
  }
  loadMemory();
}

/** @type {Map<string, any>} council name → its view (members with their roles) */
const councilsByName = new Map();

async function loadCouncils() {
  try {
    const data = await api("/api/councils");
    const select = $("council");
    const councils = (data && data.councils) || [];
    if (!councils.length) return;
    for (const c of councils) councilsByName.set(c.name, c);
    select.replaceChildren(...councils.map((c) => el("option", {
      value: c.name,
      selected: c.name === data.default,
      text: `${c.name} — ${(c.members || []).map((m) => (m.role ? `${m.name} [${m.role}]` : m.name)).join(", ")}`,
    })));
    select.addEventListener("change", showCouncilRoles);
    showCouncilRoles();
  } catch (err) {
    if (err.status !== 401) showError(err, "Cannot list the councils");
  }
}

// --- wiring ------------------------------------------------------------------------------------

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function init() {
  auth.init();
  $("token").value = auth.token || "";
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ask($("question").value);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      ask($("question").value);
    }
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    auth.set($("token").value.trim());
    $("token-box").open = false;
    setStatus(auth.token ? "Token saved for this tab." : "Token cleared.");
    clearError();
    loadCouncils();
    loadHistory();
    loadMemory();
  });
  $("history-form").addEventListener("submit", (e) => {
    e.preventDefault();
    loadHistory();
  });
  $("history-search").addEventListener("input", debounce(loadHistory, 250));
  $("memory-form").addEventListener("submit", (e) => {
    e.preventDefault();
    addMemory();
  });
  loadCouncils();
  loadHistory();
  loadMemory();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("run");
  if (wanted) loadRun(wanted);
}

init();
