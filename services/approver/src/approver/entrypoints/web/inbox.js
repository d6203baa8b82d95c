// Approval inbox: lists approvals through the approvals API with the signed-in user's token
// and sends their decisions. Every value from the API is written with textContent, never as
// HTML, so markup inside a summary or an argument is shown as text.
"use strict";

const API = "/v1/approvals";
const TOKEN_KEY = "approver.token";

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function say(text, kind) {
  const message = $("message");
  message.textContent = text;
  message.className = kind || "";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

async function call(path, options) {
  const response = await fetch(API + path, {
    ...options,
    headers: {
      Authorization: "Bearer " + token(),
      "Content-Type": "application/json",
    },
  });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const why = body && body.message ? body.message : response.statusText;
    const error = new Error(`${response.status} ${why}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function requirement(item) {
  const who = `${item.required_count} × ${item.required_level}`;
  return `${item.policy}: ${who}` + (item.remaining ? `, ${item.remaining} to go` : "");
}

function signoffs(item) {
  if (!item.signoffs.length) return "—";
  return item.signoffs
    .map((s) => `${s.approver_id} (${s.level}) ${s.decision}${s.reason ? ": " + s.reason : ""}`)
    .join("\n");
}

// The object the action touches, as the executor will see it: owner, money, other requests,
// and in red what its check would refuse now. Approvers decide on this, not on the summary.
function objectLines(item) {
  const c = item.context;
  if (!c || !c.object_type) return "—";
  const lines = [`${c.object_type} ${c.object_id}`];
  if (c.owner_id) {
    lines.push(`owner ${c.owner_id}` + (c.owned_by_requester ? " (the requester)" : " (NOT the requester)"));
  } else {
    lines.push("not found in this tenant");
  }
  if (c.object_status) lines.push(`status ${c.object_status}`);
  if (c.total !== null && c.total !== undefined) {
    lines.push(`total ${c.total} ${c.currency}, refunded ${c.refunded}, left ${c.refundable}`);
  }
  if (c.requested !== null && c.requested !== undefined) {
    lines.push(`other open requests ${c.requested} (${c.requested_count})`);
  }
  return lines.join("\n");
}

function objectCell(row, item) {
  const td = cell(row, objectLines(item), "object");
  const problem = item.context && item.context.problem;
  if (problem) {
    const warn = document.createElement("span");
    warn.className = "problem";
    warn.textContent = `would fail now: ${problem}`;
    td.appendChild(warn);
  }
}

function decideCell(row, item) {
  const td = cell(row, "", "decide");
  if (!item.can_decide) {
    td.textContent = item.blocked_by ? item.blocked_by.replaceAll("_", " ") : "";
    return;
  }
  const reason = document.createElement("input");
  reason.type = "text";
  reason.placeholder = "reason (required to reject)";
  reason.maxLength = 1000;
  reason.setAttribute("aria-label", "reason");
  const approve = document.createElement("button");
  approve.type = "button";
  approve.textContent = "Approve";
  approve.className = "approve";
  const reject = document.createElement("button");
  reject.type = "button";
  reject.textContent = "Reject";
  reject.className = "reject";
  approve.addEventListener("click", () => decide(item, "approve", reason.value));
  reject.addEventListener("click", () => decide(item, "reject", reason.value));
  td.append(reason, approve, reject);
}

function render(items) {
  const body = $("approvals").querySelector("tbody");
  body.replaceChildren();
  for (const item of items) {
    const row = document.createElement("tr");
    row.dataset.draftId = item.draft_id;
    cell(row, item.summary, "summary");
    cell(row, JSON.stringify(item.arguments, null, 1), "args");
    objectCell(row, item);
    cell(row, item.requester_id, "requester");
    cell(row, requirement(item), "policy");
    cell(row, item.status, "status");
    cell(row, signoffs(item), "signoffs");
    cell(row, new Date(item.expires_at).toLocaleString(), "expires");
    decideCell(row, item);
    body.appendChild(row);
  }
  $("empty").hidden = items.length > 0;
}

async function load() {
  if (!token()) {
    say("Sign in with your access token to see approvals.");
    render([]);
    return;
  }
  const query = new URLSearchParams({ status: $("status").value });
  if ($("actionable").checked) query.set("actionable", "true");
  try {
    const page = await call("?" + query.toString(), { method: "GET" });
    render(page.items);
    say(`${page.items.length} approval(s).`);
  } catch (error) {
    render([]);
    say(`Could not load approvals: ${error.message}`, "error");
  }
}

async function decide(item, verdict, reason) {
  try {
    const after = await call(`/${encodeURIComponent(item.draft_id)}/${verdict}`, {
      method: "POST",
      body: JSON.stringify({ reason: reason.trim() }),
    });
    await load();
    say(`${verdict === "approve" ? "Approved" : "Rejected"}: ${after.summary} — now ${after.status}.`, "ok");
  } catch (error) {
    say(`Could not ${verdict}: ${error.message}`, "error");
  }
}

function signedIn(yes) {
  $("logout").hidden = !yes;
  $("token").value = "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    signedIn(true);
    load();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    signedIn(false);
    load();
  });
  $("refresh").addEventListener("click", load);
  $("status").addEventListener("change", load);
  $("actionable").addEventListener("change", load);
  signedIn(Boolean(token()));
  load();
});
