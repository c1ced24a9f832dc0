// pgaas website: copy buttons and the job page's live events. Plain JavaScript, no framework, no CDN.
"use strict";

function copyText(input, button) {
  var done = function () {
    var old = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = old; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
  } else {
    input.focus();
    input.select();
    try { if (document.execCommand("copy")) { done(); } } catch (e) { /* the text stays selected */ }
  }
}

function cell(text, cls) {
  var td = document.createElement("td");
  if (cls) { td.className = cls; }
  td.textContent = text == null ? "" : String(text);
  return td;
}

function badge(text, prefix) {
  var span = document.createElement("span");
  span.className = "badge " + prefix + text;
  span.textContent = text;
  return span;
}

function pollJob(tbody) {
  var url = tbody.getAttribute("data-poll");
  var after = parseInt(tbody.getAttribute("data-after") || "0", 10);
  var statusEl = document.getElementById("job-status");
  var delay = 700;

  function render(job) {
    job.events.forEach(function (e) {
      var tr = document.createElement("tr");
      tr.className = "ev-" + e.status;
      tr.appendChild(cell(e.time));
      tr.appendChild(cell(e.task || e.event));
      tr.appendChild(cell(e.host));
      var st = cell("");
      st.appendChild(badge(e.status, "status-"));
      tr.appendChild(st);
      tr.appendChild(cell(e.duration == null ? "" : e.duration + " s"));
      tr.appendChild(cell(e.message, "msg"));
      tbody.appendChild(tr);
      after = Math.max(after, e.id);
    });
    if (statusEl.getAttribute("data-status") !== job.status) {
      statusEl.setAttribute("data-status", job.status);
      statusEl.replaceChildren(badge(job.status, "status-"));
    }
    var cancel = document.getElementById("job-cancel");
    if (cancel && job.cancel_requested) {
      var cb = cancel.querySelector("button");
      cb.disabled = true;
      cb.textContent = "Cancel requested";
    }
    if (job.terminal) {
      if (cancel) { cancel.hidden = true; }
      var retry = document.getElementById("job-retry");
      if (retry && job.retryable) { retry.hidden = false; }
    }
    var started = document.getElementById("job-started");
    if (started && job.started) { started.textContent = job.started; }
    if (job.terminal) {
      var live = document.getElementById("job-live");
      if (live) { live.hidden = true; }
      var finished = document.getElementById("job-finished");
      if (finished && job.finished) { finished.textContent = job.finished; }
      if (job.status === "succeeded") {
        var next = document.getElementById("job-next");
        if (next) { next.hidden = false; }
        if (job.download_url) {  // a dump: the file is ready
          var dl = document.getElementById("job-download");
          if (dl) { dl.hidden = false; }
        }
      } else {
        var box = document.getElementById("job-failure");
        box.querySelector("h2").textContent = job.status === "canceled" ? "This job was canceled" : "This job failed";
        document.getElementById("job-error").textContent = job.error;
        var tasks = document.getElementById("job-failed-tasks");
        tasks.replaceChildren();
        job.failures.forEach(function (f) {
          var p = document.createElement("p");
          var strong = document.createElement("strong");
          strong.textContent = "Failed task: ";
          p.appendChild(strong);
          p.appendChild(document.createTextNode((f.task || f.event) + (f.host ? " on " + f.host : "")));
          tasks.appendChild(p);
          if (f.message) {
            var pre = document.createElement("pre");
            pre.textContent = f.message;
            tasks.appendChild(pre);
          }
        });
        box.hidden = false;
      }
    }
  }

  function tick() {
    fetch(url + "?after=" + after, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (job) {
        render(job);
        delay = 700;
        if (!job.terminal) { setTimeout(tick, delay); }
      })
      .catch(function () {
        delay = Math.min(delay * 2, 10000);  // the server restarts or the network drops: back off, keep going
        setTimeout(tick, delay);
      });
  }
  tick();
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      copyText(document.getElementById(button.getAttribute("data-copy")), button);
    });
  });
  var tbody = document.getElementById("job-events");
  if (tbody && tbody.getAttribute("data-terminal") !== "true") { pollJob(tbody); }
});
