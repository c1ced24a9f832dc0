// pgaas website: the admin dashboard polls its JSON route (session cookie) every few seconds and redraws its
// tables in place, without reloading the page. Plain JavaScript, no framework, no CDN; text only (no innerHTML).
"use strict";

(function () {
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }

  function bytes(n) {
    if (n == null) { return "–"; }
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
  }

  function num(v, digits) {
    return v == null ? "–" : Number(v).toFixed(digits);
  }

  function lag(m) {
    if (m.role === "primary" || m.role === "leader") { return "–"; }
    if (m.lag_bytes == null && m.lag_seconds == null) { return "–"; }
    return bytes(m.lag_bytes || 0) + (m.lag_seconds != null ? ", " + num(m.lag_seconds, 1) + " s" : "");
  }

  function clock(iso) {
    if (!iso) { return "never"; }
    var d = new Date(iso);
    return d.toISOString().substring(11, 19) + " UTC";
  }

  function renderInstances(tbody, data, instanceUrl) {
    var rows = [];
    if (!data.instances.length) {
      var tr = el("tr");
      var td = el("td", "No instances yet.", "muted");
      td.colSpan = 11;
      tr.appendChild(td);
      rows.push(tr);
    }
    data.instances.forEach(function (inst) {
      var members = inst.members.length ? inst.members : [{ name: "–", role: "", state: "" }];
      members.forEach(function (m, i) {
        var tr = el("tr", null, i === 0 ? "first" : "");
        tr.setAttribute("data-instance", inst.name);
        tr.setAttribute("data-member", m.name);
        if (i === 0) {
          var th = el("th");
          th.scope = "row";
          th.rowSpan = members.length;
          var a = el("a", inst.name);
          a.href = instanceUrl.replace("NAME", encodeURIComponent(inst.name));
          th.appendChild(a);
          if (inst.errors && inst.errors.length) { th.appendChild(el("div", inst.errors.join("; "), "muted")); }
          tr.appendChild(th);
          var h = el("td");
          h.rowSpan = members.length;
          h.appendChild(el("span", inst.health, "badge health-" + inst.health.replace(/ /g, "-")));
          tr.appendChild(h);
        }
        tr.appendChild(el("td", m.name));
        tr.appendChild(el("td", m.role === "primary" || m.role === "leader" ? "primary" : (m.role ? "standby" : "")));
        var st = el("td");
        if (m.state) { st.appendChild(el("span", m.state, "badge state-" + m.state)); }
        tr.appendChild(st);
        tr.appendChild(el("td", lag(m), "num"));
        tr.appendChild(el("td", m.cpu_percent == null ? "–" : num(m.cpu_percent, 1) + " %", "num"));
        tr.appendChild(el("td", bytes(m.memory_bytes), "num"));
        tr.appendChild(el("td", bytes(m.volume_bytes), "num"));
        if (i === 0) {
          var c = el("td", inst.connections == null ? "–" : inst.connections + " / " + inst.max_connections, "num");
          c.rowSpan = members.length;
          c.setAttribute("data-field", "connections");
          tr.appendChild(c);
          var t = el("td", num(inst.tps, 1), "num");
          t.rowSpan = members.length;
          t.setAttribute("data-field", "tps");
          tr.appendChild(t);
        }
        rows.push(tr);
      });
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  function renderHosts(tbody, data) {
    var rows = data.hosts.map(function (h) {
      var tr = el("tr");
      tr.setAttribute("data-host", h.host);
      var th = el("th", h.host);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(el("td", h.members.length ? h.members.join(", ") : "–"));
      tr.appendChild(el("td", num(h.cpu_percent, 1) + " %", "num"));
      tr.appendChild(el("td", bytes(h.memory_bytes), "num"));
      tr.appendChild(el("td", bytes(h.volume_bytes), "num"));
      tr.appendChild(el("td", h.fs_size_bytes ? bytes(h.fs_used_bytes) + " of " + bytes(h.fs_size_bytes) + " (" +
        num(100 * h.fs_used_bytes / h.fs_size_bytes, 0) + " %)" : "–", "num"));
      return tr;
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  function pollDashboard(root) {
    var url = root.getAttribute("data-poll");
    var every = parseInt(root.getAttribute("data-every") || "3000", 10);
    var instanceUrl = root.getAttribute("data-instance-url");
    var state = document.getElementById("dash-state");
    var updated = document.getElementById("dash-updated");
    var delay = every;

    function tick() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.json();
        })
        .then(function (data) {
          renderInstances(document.querySelector("#dash-instances tbody"), data, instanceUrl);
          renderHosts(document.querySelector("#dash-hosts tbody"), data);
          updated.textContent = clock(data.generated_at);
          updated.setAttribute("datetime", data.generated_at);
          state.textContent = "live";
          state.className = "badge status-ok";
          delay = every;
        })
        .catch(function () {
          state.textContent = "not updating";
          state.className = "badge status-failed";
          delay = Math.min(delay * 2, 30000);  // the server restarts or the session ended: back off, keep going
        })
        .then(function () { setTimeout(tick, delay); });
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("dashboard");
    if (root) { pollDashboard(root); }
  });
}());
