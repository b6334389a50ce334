// Review queue, walked with the keyboard. Keys: 1–9 pick the n-th class, Enter accepts the
// model's label (posted as a confirmation), arrows move, U undoes the last decision.
// Each decision is posted at once to /api/v1/files/{id}/corrections with the session's CSRF
// token; undo posts the correction's id to /review/undo, which deletes that correction (it
// must still be the file's newest) and audits the undo; the file returns to the queue.
"use strict";
(function () {
  var root = document.getElementById("review");
  var queue = document.getElementById("queue");
  if (!root || !queue) { return; }
  var classes = JSON.parse(root.dataset.classes || "[]");
  var canWrite = root.dataset.canWrite === "1";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var items = Array.prototype.slice.call(queue.querySelectorAll(".q-item"));
  var status = document.getElementById("review-status");
  var done = [];  // decisions of this visit, newest last: {item, correctionId, label}
  var current = 0;
  var busy = false;

  function say(text) { status.textContent = text; }

  function select(index, focus) {
    if (!items.length) { return; }
    current = Math.max(0, Math.min(items.length - 1, index));
    items.forEach(function (item, i) { item.classList.toggle("current", i === current); });
    var item = items[current];
    if (focus !== false) {
      item.focus({ preventScroll: true });
      item.scrollIntoView({ block: "nearest" });
    }
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRF-Token": csrf
      },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new Error(data.detail ? String(data.detail) : response.statusText);
        }
        return data;
      });
    });
  }

  function mark(item, text, failed) {
    var cell = item.querySelector("[data-role=decision]");
    cell.textContent = text;
    cell.classList.toggle("failed", !!failed);
  }

  function decide(label) {
    if (!canWrite || busy || !items.length) { return; }
    var item = items[current];
    var fileId = item.dataset.fileId;
    var confirm = label === item.dataset.label;
    busy = true;
    mark(item, "saving…");
    post("/api/v1/files/" + encodeURIComponent(fileId) + "/corrections", { label: label })
      .then(function (saved) {
        done.push({ item: item, correctionId: saved.id, label: label });
        item.classList.add("decided");
        item.dataset.decision = label;
        mark(item, (confirm ? "✓ accepted " : "✎ relabelled ") + label);
        say((confirm ? "Accepted " : "Labelled ") + label + ". Press U to undo.");
        var at = items.indexOf(item);
        if (at < items.length - 1) { select(at + 1); }
      })
      .catch(function (error) {
        mark(item, "not saved", true);
        say("Not saved: " + error.message);
      })
      .then(function () { busy = false; });
  }

  function undo() {
    if (!canWrite || busy) { return; }
    var last = done[done.length - 1];
    if (!last) { say("Nothing to undo."); return; }
    busy = true;
    post("/review/undo", { correction_id: last.correctionId })
      .then(function () {
        done.pop();
        last.item.classList.remove("decided");
        delete last.item.dataset.decision;
        mark(last.item, "");
        select(items.indexOf(last.item));
        say("Undid " + last.label + ".");
      })
      .catch(function (error) { say("Cannot undo: " + error.message); })
      .then(function () { busy = false; });
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" ||
                   target.tagName === "TEXTAREA" || target.isContentEditable)) { return; }
    var key = event.key;
    if (key >= "1" && key <= "9") {
      var n = parseInt(key, 10) - 1;
      if (n < classes.length) { event.preventDefault(); decide(classes[n]); }
    } else if (key === "Enter") {
      if (target && (target.tagName === "A" || target.tagName === "BUTTON")) { return; }
      event.preventDefault();
      if (items.length) { decide(items[current].dataset.label); }
    } else if (key === "ArrowDown" || key === "ArrowRight" || key === "j") {
      event.preventDefault();
      select(current + 1);
    } else if (key === "ArrowUp" || key === "ArrowLeft" || key === "k") {
      event.preventDefault();
      select(current - 1);
    } else if (key === "u" || key === "U") {
      event.preventDefault();
      undo();
    }
  });

  items.forEach(function (item, i) {
    item.addEventListener("click", function (event) {
      if (event.target.closest("a")) { return; }
      select(i);
    });
  });
  document.querySelectorAll(".label-key").forEach(function (button) {
    button.addEventListener("click", function () {
      decide(button.dataset.label);
      if (items.length) { items[current].focus({ preventScroll: true }); }
    });
  });
  select(0);
})();
