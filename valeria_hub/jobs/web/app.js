// The jobs page: submit a job or cronjob, list them, show a job's details and log,
// delete. Plain JavaScript on the service's JSON API (the very calls the CLI makes); the
// hub's OAuth cookie authenticates and every call sends the page's XSRF token back.
// Whatever a person or a job supplies is put into the page with textContent, never as HTML.
"use strict";

const API = new URL("../", window.location.href);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const XSRF = meta("xsrf-token");
const DEFAULT_PROFILE = meta("default-profile");
const CODE_MAX = Number(meta("code-max-bytes")) || 1000000;
// a file far above the service's limit is not even read (the service would refuse it)
const CODE_SEND_MAX = 8 * CODE_MAX;
const POLL_MS = 5000; // while a job is active and the tab is visible
const MAX_POLL_MS = 60000; // after failures the polls slow down to this
const $ = (id) => document.getElementById(id);

let following = null; // the followed log: {name, controller}
let shown = null; // the object in the details panel: {kind, name}
let active = false; // a listed job is pending or running
let timer = null;
let delay = POLL_MS;
let loading = null; // the refresh under way
let queued = null; // the refresh to run after it

// -- the API ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function detailText(detail) {
  // the service's "field: reason" string, or FastAPI's list naming the fields
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const loc = (e.loc || []).filter((x) => x !== "body").join(".");
        return `${loc || "request"}: ${e.msg || "invalid"}`;
      })
      .join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

async function call(path, options = {}) {
  const resp = await fetch(new URL(path, API), {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", "X-XSRFToken": XSRF, ...options.headers },
  });
  if (resp.ok) return resp;
  if (resp.status === 401) {
    throw new ApiError(401, "Your session has ended: reload the page to log in again.");
  }
  let detail = resp.statusText;
  try {
    detail = detailText((await resp.json()).detail) || detail;
  } catch (e) {
    // not JSON: the status text says enough
  }
  throw new ApiError(resp.status, `${detail} (HTTP ${resp.status})`);
}

const getJson = async (path) => (await call(path)).json();
const enc = encodeURIComponent;

// -- shapes: the service answers the Python client's to_dict() (snake_case) --------------------
function get(obj, snake) {
  if (!obj) return undefined;
  if (snake in obj) return obj[snake];
  return obj[snake.replace(/_([a-z])/g, (_, c) => c.toUpperCase())];
}

function podSpec(obj) {
  let spec = obj.spec || {};
  const template = get(spec, "job_template");
  if (template) spec = template.spec || {};
  return (spec.template || {}).spec || {};
}

function jobStatus(job) {
  const s = job.status || {};
  const cond = (type) => (s.conditions || []).some((c) => c.type === type && c.status === "True");
  if (s.succeeded || cond("Complete")) return "Succeeded";
  if (s.failed || cond("Failed")) return "Failed";
  if (s.active) return "Running";
  return "Pending";
}

const isActive = (job) => ["Running", "Pending"].includes(jobStatus(job));

// -- text: times with their zone, commands quoted as a shell would ----------------------------
function when(value) {
  if (!value) return "-";
  const d = new Date(value);
  if (isNaN(d)) return String(value);
  const p = (n) => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const a = Math.abs(off);
  const zone = off ? `UTC${off > 0 ? "+" : "-"}${p(Math.floor(a / 60))}:${p(a % 60)}` : "UTC";
  const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${day} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`;
}

function duration(start, end) {
  const t0 = Date.parse(start);
  const t1 = end ? Date.parse(end) : Date.now();
  if (isNaN(t0) || isNaN(t1)) return "-";
  const s = Math.max(0, Math.round((t1 - t0) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${m}m${s % 60}s` : m ? `${m}m${s % 60}s` : `${s}s`;
}

// Python's shlex.split (what the CLI uses for a command given as one string)
function shellSplit(text) {
  const words = [];
  let word = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"') {
      let j = i + 1;
      let part = "";
      for (; j < text.length && text[j] !== c; j++) {
        if (c === '"' && text[j] === "\\" && (text[j + 1] === '"' || text[j + 1] === "\\")) j++;
        part += text[j];
      }
      if (j >= text.length) throw new Error("no closing quotation");
      word = (word ?? "") + part;
      i = j;
    } else if (c === "\\") {
      if (i + 1 >= text.length) throw new Error("no escaped character");
      word = (word ?? "") + text[++i];
    } else if (" \t\r\n".includes(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

// Python's shlex.quote: safe words as they are, anything else in single quotes
function shellQuote(word) {
  const s = String(word);
  if (/^[\w@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'"'"'`)}'`;
}

const shellLine = (words) => (words || []).map(shellQuote).join(" ");

function resourcesText(map) {
  const entries = Object.entries(map || {});
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(", ") : "-";
}

// -- page pieces ------------------------------------------------------------------------------
function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function button(label, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = `btn btn-sm ${cls}`;
  b.addEventListener("click", onClick);
  return b;
}

const newestFirst = (a, b) =>
  String(get(b.metadata, "creation_timestamp")).localeCompare(
    String(get(a.metadata, "creation_timestamp")),
  );

// A table is drawn anew at each poll: the button that had the keyboard focus gets it back.
function focusedButton(body) {
  const el = document.activeElement;
  const row = el && body.contains(el) ? el.closest("tr") : null;
  return row ? { row: Object.entries(row.dataset)[0], cls: el.className } : null;
}

function refocus(body, was) {
  if (!was) return;
  const [key, name] = was.row;
  const row = [...body.rows].find((r) => r.dataset[key] === name);
  const b = row && [...row.querySelectorAll("button")].find((x) => x.className === was.cls);
  if (b) b.focus();
}

function renderJobs(items) {
  const body = document.querySelector("#jobs tbody");
  const was = focusedButton(body);
  body.replaceChildren();
  for (const job of items.sort(newestFirst)) {
    const name = job.metadata.name;
    const status = jobStatus(job);
    const s = job.status || {};
    const row = document.createElement("tr");
    row.dataset.job = name;
    cell(row, name, "job-name");
    cell(row, status, `job-status status-${status}`);
    cell(row, when(get(job.metadata, "creation_timestamp")));
    cell(row, when(get(s, "start_time")));
    cell(row, when(get(s, "completion_time")));
    const actions = cell(row, "");
    actions.append(
      button("Details", "btn-outline-secondary job-details", () => showDetails("Job", name)),
      button("Logs", "btn-outline-primary job-logs", () => showLogs(name, status)),
      button("Delete", "btn-outline-danger job-delete", () => remove("Job", name)),
    );
    body.appendChild(row);
  }
  refocus(body, was);
  $("empty").hidden = items.length > 0;
}

function renderCronjobs(items) {
  const body = document.querySelector("#cronjobs tbody");
  const was = focusedButton(body);
  body.replaceChildren();
  for (const cj of items.sort(newestFirst)) {
    const name = cj.metadata.name;
    const spec = cj.spec || {};
    const s = cj.status || {};
    const row = document.createElement("tr");
    row.dataset.cronjob = name;
    cell(row, name, "cronjob-name");
    cell(row, String(spec.schedule ?? "-"), "cronjob-schedule font-monospace");
    cell(row, spec.suspend ? "yes" : "no", "cronjob-suspend");
    cell(row, String((s.active || []).length), "cronjob-active");
    cell(row, when(get(s, "last_schedule_time")), "cronjob-last");
    cell(row, when(get(cj.metadata, "creation_timestamp")));
    const actions = cell(row, "");
    actions.append(
      button("Details", "btn-outline-secondary cronjob-details", () =>
        showDetails("CronJob", name),
      ),
      button("Delete", "btn-outline-danger cronjob-delete", () => remove("CronJob", name)),
    );
    body.appendChild(row);
  }
  refocus(body, was);
  $("cron-empty").hidden = items.length > 0;
}

// -- refreshing: every few seconds while a job is active, never while the tab is hidden -------
function schedule() {
  window.clearTimeout(timer);
  timer = null;
  const polling = active && !document.hidden;
  $("live").textContent = polling ? `updating every ${POLL_MS / 1000} s while a job runs` : "";
  if (polling) timer = window.setTimeout(refresh, delay);
}

// the lists' summaries (names, times, counts, conditions: what the tables show, a tenth of
// the full objects); a job's details come from GET jobs/NAME
async function load() {
  const [jobs, crons] = await Promise.allSettled([
    getJson("jobs/?view=summary"),
    getJson("cronjobs/?view=summary"),
  ]);
  const failed = [];
  if (jobs.status === "fulfilled") {
    const items = jobs.value.items || [];
    renderJobs(items);
    active = items.some(isActive);
  } else {
    failed.push(`Could not list your jobs: ${jobs.reason.message}`);
    if (jobs.reason.status === 401) active = false; // logged out: polls would change nothing
  }
  if (crons.status === "fulfilled") renderCronjobs(crons.value.items || []);
  else failed.push(`Could not list your cronjobs: ${crons.reason.message}`);
  if (shown) await loadDetails();
  showMessage(failed.join(" "));
  delay = failed.length ? Math.min(delay * 2, MAX_POLL_MS) : POLL_MS;
}

// Refreshes never overlap: one asked for during another runs once that one is over (a
// second ask joins the first), so what it shows is never older than the ask.
async function refresh() {
  if (loading) {
    queued = queued || loading.catch(() => {}).then(() => ((queued = null), refresh()));
    return queued;
  }
  loading = load();
  try {
    await loading;
  } finally {
    loading = null;
    schedule();
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) schedule(); // stops the timer
  else refresh(); // catch up at once, then poll again if needed
});

// -- details ------------------------------------------------------------------------------------
function term(dl, label, value, cls) {
  const dt = document.createElement("dt");
  dt.className = "col-sm-2";
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.className = `col-sm-10${cls ? ` ${cls}` : ""}`;
  if (value instanceof Node) dd.appendChild(value);
  else dd.textContent = value;
  dl.append(dt, dd);
}

function mainContainerStatus(obj, pod) {
  const name = (podSpec(obj).containers || [{}])[0].name;
  const statuses = get(pod.status, "container_statuses") || [];
  return statuses.find((c) => c.name === name) || statuses[0];
}

function exitCode(obj, pod) {
  const cs = pod && mainContainerStatus(obj, pod);
  if (!cs) return "- (no pod)";
  const state = cs.state || {};
  const ended = state.terminated || (get(cs, "last_state") || {}).terminated;
  if (ended) {
    const why = [ended.reason, ended.message].filter(Boolean).join(": ");
    return `${get(ended, "exit_code")}${why ? ` (${why})` : ""}`;
  }
  if (state.running) return "- (running)";
  if (state.waiting) return `- (waiting${state.waiting.reason ? `: ${state.waiting.reason}` : ""})`;
  return "-";
}

// the timeline made from the status the job and its pods report (kept as long as they are)
function timeline(kind, obj, pods) {
  const out = [];
  const add = (time, what, detail, untimed) => {
    if (time || untimed) out.push({ time, what, detail: detail || "" });
  };
  const why = (o) => [o.reason, o.message].filter(Boolean).join(": ");
  const s = obj.status || {};
  add(get(obj.metadata, "creation_timestamp"), kind === "Job" ? "Submitted" : "Created");
  add(get(s, "last_schedule_time"), "Last scheduled");
  add(get(s, "last_successful_time"), "Last run succeeded");
  add(get(s, "start_time"), "Job started");
  for (const pod of pods) {
    const ps = pod.status || {};
    const podName = pod.metadata.name;
    add(get(pod.metadata, "creation_timestamp"), `Pod ${podName} created`);
    for (const c of ps.conditions || []) {
      if (c.status === "True") add(get(c, "last_transition_time"), `Pod ${c.type}`, why(c));
    }
    const containers = [
      ...(get(ps, "init_container_statuses") || []),
      ...(get(ps, "container_statuses") || []),
    ];
    for (const cs of containers) {
      const st = cs.state || {};
      if (st.waiting) add(null, `Container ${cs.name} waiting`, why(st.waiting), true);
      if (st.running) add(get(st.running, "started_at"), `Container ${cs.name} started`);
      if (st.terminated) {
        const t = st.terminated;
        add(get(t, "started_at"), `Container ${cs.name} started`);
        const code = get(t, "exit_code");
        add(get(t, "finished_at"), `Container ${cs.name} exited, code ${code}`, why(t));
      }
    }
    if (ps.reason || ps.message) add(null, `Pod ${ps.phase || ""}`.trim(), why(ps), true);
  }
  // the job's verdict comes after its pods' news of the same second
  for (const c of s.conditions || []) {
    const state = c.status === "True" ? "" : ` (${c.status})`;
    add(get(c, "last_transition_time"), `Job ${c.type}${state}`, why(c));
  }
  add(get(s, "completion_time"), "Job completed");
  // in time order (a stable sort: ties keep the order above); what has no time (a
  // waiting container) is the latest news
  const at = (e) => (e.time ? Date.parse(e.time) : Infinity);
  return out.sort((a, b) => (at(a) === at(b) ? 0 : at(a) < at(b) ? -1 : 1));
}

function renderDetails(kind, obj, pods) {
  const dl = $("details");
  dl.replaceChildren();
  const m = obj.metadata || {};
  const s = obj.status || {};
  const spec = obj.spec || {};
  const container = (podSpec(obj).containers || [{}])[0];
  const pod = pods.slice().sort(newestFirst)[0];
  $("details-kind").textContent = kind === "Job" ? "Job" : "Cronjob";
  $("details-name").textContent = m.name;
  term(dl, "Namespace", m.namespace || "-");
  if (kind === "Job") {
    term(dl, "Status", jobStatus(obj), "details-status");
    term(dl, "Exit code", exitCode(obj, pod), "details-exit");
  } else {
    term(dl, "Schedule", String(spec.schedule ?? "-"), "details-schedule font-monospace");
    term(dl, "Suspended", spec.suspend ? "yes" : "no");
    term(dl, "Last schedule", when(get(s, "last_schedule_time")));
  }
  term(dl, "Image", container.image || "-", "details-image font-monospace");
  const command = container.command || [];
  const args = container.args || [];
  const line = command.length ? shellLine(command) : "(the image's own)";
  term(dl, "Command", line, "details-command font-monospace");
  if (args.length) term(dl, "Arguments", shellLine(args), "details-args font-monospace");
  if (get(container, "working_dir")) term(dl, "Working directory", get(container, "working_dir"));
  const resources = container.resources || {};
  term(dl, "Requests", resourcesText(resources.requests), "details-requests");
  term(dl, "Limits", resourcesText(resources.limits), "details-limits");
  term(dl, "Submitted", when(get(m, "creation_timestamp")), "details-submitted");
  if (kind === "Job") {
    term(dl, "Started", when(get(s, "start_time")), "details-started");
    term(dl, "Finished", when(get(s, "completion_time")), "details-finished");
    const failed = (s.conditions || []).find((c) => c.type === "Failed" && c.status === "True");
    const end = get(s, "completion_time") || get(failed, "last_transition_time");
    const start = get(s, "start_time");
    term(dl, "Duration", start && (end || isActive(obj)) ? duration(start, end) : "-");
    const limit = get(spec, "active_deadline_seconds");
    if (limit) term(dl, "Time limit", `${limit} s`);
    term(dl, "Pod", pod ? `${pod.metadata.name} (${(pod.status || {}).phase || "-"})` : "-");
    const logs = document.createElement("span");
    const raw = document.createElement("a");
    raw.href = new URL(`jobs/logs/${enc(m.name)}/`, API).toString();
    raw.target = "_blank";
    raw.rel = "noopener";
    raw.className = "ms-2 details-log-link";
    raw.textContent = "Open the log as text";
    logs.append(
      button("Show log", "btn-outline-primary details-log", () => showLogs(m.name, jobStatus(obj))),
      raw,
    );
    term(dl, "Log", logs);
  }
  const body = document.querySelector("#timeline tbody");
  body.replaceChildren();
  for (const e of timeline(kind, obj, pods)) {
    const row = document.createElement("tr");
    cell(row, e.time ? when(e.time) : "now");
    cell(row, e.what);
    cell(row, e.detail);
    body.appendChild(row);
  }
}

// Kubernetes' own events about the job and its pods (GET jobs/NAME/events), oldest first
function eventObject(e) {
  const o = get(e, "involved_object") || {};
  const path = get(o, "field_path");
  return [o.kind, o.name, path ? `(${path})` : ""].filter(Boolean).join(" ") || "-";
}

function renderEvents(answer) {
  const body = document.querySelector("#events tbody");
  body.replaceChildren();
  const row = () => body.appendChild(document.createElement("tr"));
  if (answer.status === "rejected") {
    cell(row(), `Could not read the events: ${answer.reason.message}`, "events-error").colSpan = 6;
    return;
  }
  const items = answer.value.items || [];
  if (!items.length) {
    cell(row(), "No events (or none kept any more).", "events-none").colSpan = 6;
    return;
  }
  for (const e of items) {
    const tr = row();
    tr.className = e.type === "Warning" ? "event-warning" : "event-normal";
    const last = get(e, "last_timestamp") || get(e, "event_time") || get(e, "first_timestamp");
    const time = cell(tr, when(last), "event-time");
    const first = get(e, "first_timestamp");
    if (first && first !== last) time.title = `first seen ${when(first)}`;
    cell(tr, e.type || "-", "event-type");
    cell(tr, e.reason || "-", "event-reason");
    cell(tr, eventObject(e), "event-object");
    cell(tr, e.message || "", "event-message");
    cell(tr, String(e.count ?? 1), "event-count");
  }
}

async function loadDetails() {
  const { kind, name } = shown;
  const path = `${kind === "Job" ? "jobs" : "cronjobs"}/${enc(name)}`;
  try {
    // the events are news beside the details: their failure is said in their table
    const events = getJson(`${path}/events`);
    events.catch(() => {}); // read below, or dropped with the details' own failure
    const [obj, pods] = await Promise.all([
      getJson(path),
      kind === "Job" ? getJson(`pods/?job_name=${enc(name)}`) : { items: [] },
    ]);
    const [answer] = await Promise.allSettled([events]);
    if (shown && shown.name === name && shown.kind === kind) {
      renderDetails(kind, obj, pods.items || []);
      renderEvents(answer);
    }
  } catch (e) {
    if (shown && shown.name === name) {
      $("details").replaceChildren();
      document.querySelector("#events tbody").replaceChildren();
      document.querySelector("#timeline tbody").replaceChildren();
      term($("details"), "Error", e.message, "details-error");
    }
  }
}

async function showDetails(kind, name) {
  shown = { kind, name };
  $("details-panel").hidden = false;
  await loadDetails();
  $("details-panel").scrollIntoView({ block: "nearest" });
}

function closeDetails() {
  shown = null;
  $("details-panel").hidden = true;
}

// -- logs -----------------------------------------------------------------------------------------
function stopFollowing() {
  if (following) {
    following.controller.abort();
    following = null;
  }
}

async function showLogs(name, status) {
  stopFollowing();
  const pre = $("log");
  const state = $("log-state");
  $("log-panel").hidden = false;
  $("log-name").textContent = name;
  $("log-raw").href = new URL(`jobs/logs/${enc(name)}/`, API).toString();
  pre.textContent = "";
  const controller = new AbortController();
  following = { name, controller };
  const live = status === "Running" || status === "Pending";
  state.textContent = live ? "(following)" : "";
  try {
    const path = `jobs/logs/${enc(name)}/${live ? "?stream=true" : ""}`;
    const resp = await call(path, { signal: controller.signal });
    if (!live) {
      pre.textContent = await resp.text();
      return;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pre.textContent += decoder.decode(value, { stream: true });
      pre.scrollTop = pre.scrollHeight;
    }
    state.textContent = "(ended)";
    refresh();
  } catch (e) {
    if (e.name === "AbortError") return;
    if (live && /yet/.test(e.message) && following && following.controller === controller) {
      // the job has no pod or log yet: try again shortly
      following = null;
      window.setTimeout(() => showLogs(name, status), 1500);
      return;
    }
    state.textContent = "";
    pre.textContent = `No log: ${e.message}`;
  } finally {
    if (following && following.controller === controller) following = null;
  }
}

// -- deleting -------------------------------------------------------------------------------------
async function remove(kind, name) {
  const question =
    kind === "Job"
      ? `Delete job ${name}? Its pods and logs are deleted too.`
      : `Delete cronjob ${name}? No more runs start, and the jobs it started are deleted too.`;
  if (!window.confirm(question)) return;
  try {
    await call(`${kind === "Job" ? "jobs" : "cronjobs"}/${enc(name)}`, { method: "DELETE" });
    if (kind === "Job" && $("log-name").textContent === name) {
      stopFollowing();
      $("log-panel").hidden = true;
    }
    if (shown && shown.kind === kind && shown.name === name) closeDetails();
    await refresh();
  } catch (e) {
    showMessage(`Could not delete ${name}: ${e.message}`);
  }
}

// -- submitting: the body the CLI sends: {"job": manifest, "profile": ..., "code": base64 zip} --
class FormError extends Error {}

function parseEnv(text) {
  const env = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf("=");
    if (at < 1) throw new FormError(`environment line ${i + 1}: expected NAME=value`);
    env.push({ name: line.slice(0, at).trim(), value: line.slice(at + 1) });
  });
  return env;
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return window.btoa(binary);
}

async function buildBody() {
  const value = (id) => $(id).value;
  const name = value("f-name").trim();
  const image = value("f-image").trim();
  const schedule = value("f-schedule").trim();
  const kind = schedule ? "CronJob" : "Job";
  const container = { name: "job" };
  if (image) container.image = image;
  if (value("f-command").trim()) {
    try {
      container.command = shellSplit(value("f-command"));
    } catch (e) {
      throw new FormError(`command: ${e.message}`);
    }
  }
  const env = parseEnv(value("f-env"));
  if (env.length) container.env = env;
  const pod = { template: { spec: { restartPolicy: "Never", containers: [container] } } };
  const job = {
    apiVersion: "batch/v1",
    kind,
    metadata: name ? { name } : { generateName: kind === "CronJob" ? "cron-" : "job-" },
    spec: kind === "Job" ? pod : { schedule, jobTemplate: { spec: pod } },
  };
  const body = { job };
  if (value("f-profile")) body.profile = value("f-profile");
  const file = $("f-code").files[0];
  if (file) {
    if (file.size > CODE_SEND_MAX) {
      throw new FormError(
        `code: ${file.name} has ${file.size} bytes; ` +
          `the service takes archives of up to ${CODE_MAX} bytes`,
      );
    }
    body.code = base64(await file.arrayBuffer());
  }
  return { kind, body };
}

function formMessage(error, ok) {
  $("submit-error").textContent = error;
  $("submit-error").hidden = !error;
  $("submit-ok").textContent = ok;
  $("submit-ok").hidden = !ok;
}

async function submitForm(event) {
  event.preventDefault();
  const submitButton = $("submit");
  if (submitButton.disabled) return;
  submitButton.disabled = true;
  formMessage("", "");
  try {
    const { kind, body } = await buildBody();
    const path = kind === "Job" ? "jobs/" : "cronjobs/";
    const resp = await call(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const made = await resp.json();
    formMessage("", `Submitted ${kind === "Job" ? "job" : "cronjob"} ${made.metadata.name}.`);
    $("f-name").value = "";
    $("f-code").value = "";
    await refresh();
  } catch (e) {
    formMessage(`Not submitted: ${e.message}`, "");
  } finally {
    submitButton.disabled = false;
  }
}

async function loadProfiles() {
  const select = $("f-profile");
  try {
    const profiles = await getJson("profiles/");
    for (const [name, p] of Object.entries(profiles)) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = p.description ? `${name} – ${p.description}` : name;
      option.selected = name === DEFAULT_PROFILE;
      select.appendChild(option);
    }
  } catch (e) {
    const option = document.createElement("option");
    option.value = "";
    option.textContent = "the service's default";
    select.appendChild(option);
  }
}

$("submit-form").addEventListener("submit", submitForm);
$("refresh").addEventListener("click", () => refresh());
$("details-close").addEventListener("click", closeDetails);
loadProfiles();
refresh();
