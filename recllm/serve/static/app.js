// The page: search as you type (/v1/items), build a history, ask /v1/recommend. No build step.
"use strict";
const $ = (id) => document.getElementById(id);
const picked = [];  // [{item_id, label}]
let searchTimer = null, searchSeq = 0;

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function call(url, options) {
  const response = await fetch(url, { ...options, headers: headers() });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) $("auth").style.display = "block";
  if (!response.ok) throw new Error((body && body.error) || ("HTTP " + response.status));
  return body;
}

function showError(message) { $("error").textContent = message || ""; }

function li(text, cls) {
  const el = document.createElement("li");
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}

async function search() {
  const q = $("search").value.trim();
  const seq = ++searchSeq;
  if (!q) { $("results").replaceChildren(); return; }
  try {
    const body = await call("/v1/items?limit=8&q=" + encodeURIComponent(q));
    if (seq !== searchSeq) return;  // a later keystroke has its own answer
    $("results").replaceChildren(...body.items.map((item) => {
      const el = li(item.label);
      el.setAttribute("role", "option");
      el.dataset.id = item.item_id;
      el.addEventListener("click", () => add(item));
      return el;
    }));
    showError("");
  } catch (e) { showError(e.message); }
}

function add(item) {
  if (!picked.some((h) => h.item_id === item.item_id)) picked.push(item);
  $("search").value = "";
  $("results").replaceChildren();
  drawHistory();
  $("search").focus();
}

function drawHistory() {
  $("history").replaceChildren(...picked.map((item, i) => {
    const el = li(item.label);
    const remove = document.createElement("button");
    remove.textContent = "remove";
    remove.addEventListener("click", () => { picked.splice(i, 1); drawHistory(); });
    el.append(remove);
    return el;
  }));
  $("count").textContent = picked.length ? `(${picked.length})` : "";
}

async function recommend() {
  showError("");
  $("recs").replaceChildren();
  $("status").textContent = "asking the model …";
  $("go").disabled = true;
  try {
    const body = await call("/v1/recommend", {
      method: "POST",
      body: JSON.stringify({ history_ids: picked.map((h) => h.item_id), k: Number($("k").value),
                             explain: $("explain").checked }),
    });
    $("recs").replaceChildren(...body.items.map((item) => {
      const el = li(item.label);
      if (item.reason) el.append(Object.assign(document.createElement("span"), { className: "reason", textContent: item.reason }));
      return el;
    }));
    $("status").textContent = body.items.length
      ? `${body.items.length} items · ${body.model || body.backend} · ${body.seconds} s`
      : (body.note || "no recommendations");
  } catch (e) {
    showError(e.message);
    $("status").textContent = "";
  } finally { $("go").disabled = false; }
}

$("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 150); });
$("go").addEventListener("click", recommend);
