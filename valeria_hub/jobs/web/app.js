// The jobs page: lists the user's jobs, shows and follows logs, deletes jobs.
// Plain JavaScript on the service's JSON API; the hub's OAuth cookie authenticates.
"use strict";

const API = new URL("../", window.location.href);
// the session's XSRF token: every call made with the login cookie sends it back
const XSRF = document.querySelector('meta[name="xsrf-token"]').content;
const REFRESH_MS = 5000;
let following = null; // {name, controller}

function apiUrl(path) {
  return new URL(path, API).toString();
}

function showMessage(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = !text;
}

async function errorText(resp) {
  let detail = "";
  try {
    const body = await resp.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (e) {
    detail = resp.statusText;
  }
  if (resp.status === 401) {
    return "Your session has ended: reload the page to log in again.";
  }
  return `${detail} (HTTP ${resp.status})`;
}

async function call(path, options) {
  const resp = await fetch(apiUrl(path), {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", "X-XSRFToken": XSRF, ...(options || {}).headers },
  });
  if (!resp.ok) {
    throw new Error(await errorText(resp));
  }
  return resp;
}

function jobStatus(job) {
  const s = job.status || {};
  if (s.succeeded) return "Succeeded";
  if (s.failed) return "Failed";
  if (s.active) return "Running";
  return "Pending";
}

function when(value) {
  if (!value) return "-";
  const d = new Date(value);
  return isNaN(d) ? String(value) : d.toLocaleString();
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

function render(items) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  items.sort((a, b) =>
    String(b.metadata.creation_timestamp).localeCompare(String(a.metadata.creation_timestamp)),
  );
  for (const job of items) {
    const name = job.metadata.name;
    const status = jobStatus(job);
    const s = job.status || {};
    const row = document.createElement("tr");
    row.dataset.job = name;
    cell(row, name, "job-name");
    cell(row, status, `job-status status-${status}`);
    cell(row, when(job.metadata.creation_timestamp));
    cell(row, when(s.start_time));
    cell(row, when(s.completion_time));
    const actions = cell(row, "");
    actions.appendChild(
      button("Logs", "btn-outline-primary job-logs", () => showLogs(name, status)),
    );
    actions.appendChild(button("Delete", "btn-outline-danger job-delete", () => remove(name)));
    body.appendChild(row);
  }
  document.getElementById("empty").hidden = items.length > 0;
}

async function loadJobs() {
  try {
    const resp = await call("jobs/");
    render((await resp.json()).items || []);
    showMessage("");
  } catch (e) {
    showMessage(`Could not list your jobs: ${e.message}`);
  }
}

function stopFollowing() {
  if (following) {
    following.controller.abort();
    following = null;
  }
}

async function showLogs(name, status) {
  stopFollowing();
  const panel = document.getElementById("log-panel");
  const pre = document.getElementById("log");
  const state = document.getElementById("log-state");
  panel.hidden = false;
  document.getElementById("log-name").textContent = name;
  pre.textContent = "";
  const controller = new AbortController();
  following = { name, controller };
  const live = status === "Running" || status === "Pending";
  state.textContent = live ? "(following)" : "";
  try {
    const path = `jobs/logs/${encodeURIComponent(name)}/${live ? "?stream=true" : ""}`;
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
    loadJobs();
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

async function remove(name) {
  if (!window.confirm(`Delete job ${name}? Its pods and logs are deleted too.`)) return;
  try {
    await call(`jobs/${encodeURIComponent(name)}`, { method: "DELETE" });
    if (document.getElementById("log-name").textContent === name) {
      stopFollowing();
      document.getElementById("log-panel").hidden = true;
    }
    await loadJobs();
  } catch (e) {
    showMessage(`Could not delete ${name}: ${e.message}`);
  }
}

document.getElementById("refresh").addEventListener("click", loadJobs);
loadJobs();
window.setInterval(loadJobs, REFRESH_MS);
