// Upload: drop files on the zone or pick them; each is posted to /api/v1/uploads with the
// session's CSRF token, and its prediction (or the server's one-line error) is listed.
"use strict";
(function () {
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var input = document.getElementById("upload-file");
  var zone = document.getElementById("dropzone");
  var results = document.getElementById("upload-results");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var classes = JSON.parse(form.dataset.classes || "[]");

  function line(name) {
    var li = document.createElement("li");
    var title = document.createElement("strong");
    title.textContent = name;
    var state = document.createElement("span");
    state.className = "muted";
    state.textContent = "uploading…";
    li.appendChild(title);
    li.appendChild(state);
    results.prepend(li);
    return { li: li, state: state };
  }

  function show(row, ok, body) {
    row.state.remove();
    if (!ok) {
      row.li.classList.add("failed");
      var err = document.createElement("span");
      err.className = "err";
      err.setAttribute("role", "alert");
      err.textContent = (body && body.detail) ? String(body.detail) : "the upload failed";
      row.li.appendChild(err);
      return;
    }
    var badge = document.createElement("span");
    var slot = classes.indexOf(body.label);
    badge.className = "badge prediction lab-" + (slot >= 0 ? slot % 9 : 9);
    badge.textContent = body.label ? String(body.label) : "no label";
    row.li.appendChild(badge);
    if (typeof body.confidence === "number") {
      var conf = document.createElement("span");
      conf.className = "conf";
      conf.textContent = (100 * body.confidence).toFixed(1) + " %";
      row.li.appendChild(conf);
    }
    var link = document.createElement("a");
    link.href = "/files/" + encodeURIComponent(String(body.id));
    link.textContent = "open";
    row.li.appendChild(link);
  }

  function send(file) {
    var row = line(file.name);
    var data = new FormData();
    data.append("file", file, file.name);
    return fetch("/api/v1/uploads", {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" }
    }).then(function (response) {
      return response.json().catch(function () { return { detail: response.statusText }; })
        .then(function (body) { show(row, response.ok, body); });
    }).catch(function () {
      show(row, false, { detail: "the server did not answer" });
    });
  }

  function sendAll(files) {
    var chain = Promise.resolve();
    Array.prototype.forEach.call(files, function (file) {
      chain = chain.then(function () { return send(file); });
    });
    return chain;
  }

  input.addEventListener("change", function () {
    sendAll(input.files).then(function () { input.value = ""; });
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sendAll(input.files);
  });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.remove("over");
    });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      sendAll(event.dataTransfer.files);
    }
  });
})();
