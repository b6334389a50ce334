// Models page: start a retrain (POST /api/v1/retrain) and follow its job (GET
// /api/v1/jobs/{id} about every second: step i/n, progress bar, log tail, error line); promote
// a candidate (POST /api/v1/models/{id}/activate, optionally reclassifying the index), discard
// it (DELETE /api/v1/models/{id}) or roll back (POST /api/v1/models/rollback). Every request
// carries the session cookie and its CSRF token (X-CSRF-Token); all text goes in as text.
"use strict";
(function () {
  var root = document.getElementById("models-page");
  if (!root) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var status = document.getElementById("models-status");
  var jobsBox = document.getElementById("jobs");
  var jobList = document.getElementById("job-list");
  var template = document.getElementById("job-template");
  var retrainForm = document.getElementById("retrain-form");
  var retrainButton = document.getElementById("retrain-button");
  var retrainError = document.getElementById("retrain-error");
  var FLASH = "landscape-models-flash";

  function say(text) { status.textContent = text; }

  function request(method, url, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var detail = data && data.detail;
          if (Array.isArray(detail)) {
            detail = detail.map(function (d) { return d && d.msg ? d.msg : String(d); }).join("; ");
          }
          var error = new Error(detail ? String(detail) : response.status + " " + response.statusText);
          error.status = response.status;
          throw error;
        }
        return data;
      });
    });
  }

  // Reload the page (the server renders the registry again), with a message for after.
  function reload(message, hash) {
    try { sessionStorage.setItem(FLASH, message); } catch (e) { /* private mode */ }
    history.replaceState(null, "", "/models" + (hash || ""));
    location.reload();
  }

  function showError(box, text) {
    box.textContent = text;
    box.hidden = !text;
  }

  // --- jobs -------------------------------------------------------------------------------

  function part(card, selector) { return card.querySelector(selector); }

  function render(card, job) {
    card.dataset.jobId = String(job.id);
    card.dataset.kind = job.kind;
    card.dataset.state = job.state;
    card.className = "job job-" + job.state;
    card.setAttribute("aria-label", job.kind + " job");
    var kind = String(job.kind || "job");
    part(card, ".job-title").textContent =
      kind.charAt(0).toUpperCase() + kind.slice(1) + " job #" + job.id;
    var badge = part(card, ".job-state");
    badge.textContent = job.state;
    badge.className = "badge job-state state-" + job.state;
    part(card, ".job-who").textContent = job.user ? "started by " + job.user : "";
    var bar = part(card, ".job-bar");
    var step = part(card, ".job-step");
    var p = job.progress;
    if (p && p.steps) {
      bar.max = p.steps;
      bar.value = job.state === "succeeded" ? p.steps : p.step;
      bar.textContent = p.step + "/" + p.steps;
      step.textContent = "Step " + p.step + "/" + p.steps + ": " + (p.message || "");
    } else if (job.state === "running") {
      bar.removeAttribute("value");  // indeterminate until the first step
      step.textContent = "Starting…";
    } else {
      bar.max = 1;
      bar.value = job.state === "succeeded" ? 1 : 0;
      step.textContent = "";
    }
    showError(part(card, ".job-error"), job.state === "failed"
      ? "Failed: " + (job.error || "the job failed (see the log)") : "");
    var done = part(card, ".job-done");
    if (job.state === "succeeded") {
      var model = job.result && job.result.model_id;
      done.textContent = model ? "Done: candidate " + model + " registered." : "Done.";
      done.hidden = false;
    } else {
      done.hidden = true;
    }
    var log = part(card, ".log");
    var atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    log.textContent = job.log_tail || "";
    if (atEnd) { log.scrollTop = log.scrollHeight; }
  }

  function finished(card, job) {
    if (job.kind === "retrain") {
      if (retrainButton) { retrainButton.disabled = false; }
      if (job.state === "succeeded") {
        var model = job.result && job.result.model_id;
        say("Retrain finished: candidate " + (model || "") + " registered. Loading its comparison…");
        window.setTimeout(function () {
          reload("Candidate " + (model || "") + " registered: compare it below.",
                 model ? "#candidate-" + model : "");
        }, 800);
      } else {
        say("Retrain failed: " + (job.error || "see the log"));
      }
    } else if (job.state === "succeeded") {
      say("The " + job.kind + " job finished.");
    } else {
      say("The " + job.kind + " job failed: " + (job.error || "see the log"));
    }
  }

  function follow(card) {
    var id = card.dataset.jobId;
    var misses = 0;
    function tick() {
      request("GET", "/api/v1/jobs/" + encodeURIComponent(id))
        .then(function (job) {
          misses = 0;
          render(card, job);
          if (job.state === "running") {
            window.setTimeout(tick, 1000);
          } else {
            finished(card, job);
          }
        })
        .catch(function (error) {
          misses += 1;
          if (error.status === 401 || error.status === 403 || error.status === 404) {
            showError(part(card, ".job-error"), "Cannot follow the job: " + error.message);
            return;
          }
          part(card, ".job-step").textContent = "Waiting for the server… (" + error.message + ")";
          window.setTimeout(tick, Math.min(1000 * Math.pow(2, misses), 15000));
        });
    }
    window.setTimeout(tick, 1000);
  }

  function addJob(job) {
    var card = template.content.firstElementChild.cloneNode(true);
    render(card, job);
    jobList.prepend(card);
    jobsBox.hidden = false;
    if (job.state === "running") { follow(card); } else { finished(card, job); }
    return card;
  }

  document.querySelectorAll("#job-list .job[data-state=running]").forEach(follow);

  // --- retrain ----------------------------------------------------------------------------

  if (retrainForm) {
    retrainForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!retrainForm.reportValidity()) { return; }
      showError(retrainError, "");
      retrainButton.disabled = true;
      say("Starting a retrain…");
      var body = {
        head_epochs: parseInt(retrainForm.elements.head_epochs.value, 10),
        epochs: parseInt(retrainForm.elements.epochs.value, 10),
        pseudo_labels: retrainForm.elements.pseudo_labels.checked
      };
      request("POST", "/api/v1/retrain", body)
        .then(function (job) {
          say("Retrain job #" + job.id + " started.");
          var card = addJob(job);
          // The button is disabled while the job runs: keep keyboard focus on the job.
          card.setAttribute("tabindex", "-1");
          card.focus({ preventScroll: true });
          card.scrollIntoView({ block: "nearest" });
        })
        .catch(function (error) {
          retrainButton.disabled = false;
          showError(retrainError, (error.status === 409 ? "Not started: " : "Cannot retrain: ") +
                    error.message);
          say("");
        });
    });
  }

  // --- promote, discard, rollback --------------------------------------------------------

  document.querySelectorAll(".promote-form").forEach(function (form) {
    var id = form.dataset.modelId;
    var panel = form.closest(".comparison");
    var errorBox = panel.querySelector(".action-error");
    var buttons = form.querySelectorAll("button");
    function busy(on) { buttons.forEach(function (b) { b.disabled = on; }); }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var reclassify = form.elements.reclassify.checked;
      busy(true);
      showError(errorBox, "");
      say("Promoting " + id + "…");
      request("POST", "/api/v1/models/" + encodeURIComponent(id) + "/activate",
              { reclassify: reclassify })
        .then(function (answer) {
          var message = id + " is now the active model.";
          if (answer.job) { message += " Reclassifying the index (job #" + answer.job.id + ")."; }
          reload(message, "");
        })
        .catch(function (error) {
          busy(false);
          showError(errorBox, "Not promoted: " + error.message);
          say("");
        });
    });

    form.querySelector(".discard-button").addEventListener("click", function () {
      if (!window.confirm("Discard candidate " + id + "? Its registration is removed.")) { return; }
      busy(true);
      showError(errorBox, "");
      request("DELETE", "/api/v1/models/" + encodeURIComponent(id))
        .then(function () { reload("Discarded " + id + ".", ""); })
        .catch(function (error) {
          busy(false);
          showError(errorBox, "Not discarded: " + error.message);
        });
    });
  });

  var rollback = document.getElementById("rollback-button");
  if (rollback) {
    rollback.addEventListener("click", function () {
      if (!window.confirm("Re-activate the model that was active before the current one?")) {
        return;
      }
      rollback.disabled = true;
      say("Rolling back…");
      request("POST", "/api/v1/models/rollback")
        .then(function (answer) {
          reload("Rolled back: " + answer.active.model_id + " is active again.", "");
        })
        .catch(function (error) {
          rollback.disabled = false;
          say("Cannot roll back: " + error.message);
        });
    });
  }

  // --- a message carried over a reload ----------------------------------------------------

  var flash = null;
  try {
    flash = sessionStorage.getItem(FLASH);
    sessionStorage.removeItem(FLASH);
  } catch (e) { /* private mode */ }
  if (flash) { say(flash); }
})();
