// emidbench report page: sortable, filterable tables. No libraries, no network.
// A table with class "sortable-table" sorts on a click of any header with class
// "sortable" (numbers by their data-v, empty cells last, then text); its controls
// (data-for = the table's id) filter rows by family, modality and shift name.
(function () {
  "use strict";

  function cellKey(row, col) {
    var td = row.cells[col];
    if (!td) return { num: null, text: "" };
    var v = td.getAttribute("data-v");
    if (v !== null && v !== "") {
      var f = parseFloat(v);
      if (!isNaN(f)) return { num: f, text: v };
    }
    return { num: null, text: (v !== null ? v : td.textContent).trim().toLowerCase() };
  }

  function compare(a, b, numeric) {
    if (numeric) {
      if (a.num === null && b.num === null) return 0;
      if (a.num === null) return 1; // empty cells last in either direction
      if (b.num === null) return -1;
      return a.num - b.num;
    }
    return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
  }

  function sortBy(table, th) {
    var col = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (r, i) { return { r: r, k: cellKey(r, col), i: i }; });
    keyed.sort(function (x, y) {
      var c = compare(x.k, y.k, numeric);
      if (c !== 0 && !(numeric && (x.k.num === null || y.k.num === null))) c = dir === "ascending" ? c : -c;
      return c !== 0 ? c : x.i - y.i; // stable
    });
    keyed.forEach(function (e) { body.appendChild(e.r); });
  }

  function applyFilters(table, box) {
    var fam = box.querySelector("select[data-filter=family]");
    var mod = box.querySelector("select[data-filter=modality]");
    var name = box.querySelector("input[data-filter=name]");
    var want = {
      family: fam ? fam.value : "",
      modality: mod ? mod.value : "",
      name: name ? name.value.trim().toLowerCase() : ""
    };
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = (!want.family || r.getAttribute("data-family") === want.family) &&
               (!want.modality || r.getAttribute("data-modality") === want.modality) &&
               (!want.name || (r.getAttribute("data-name") || "").indexOf(want.name) >= 0);
      r.hidden = !ok;
      if (ok) shown++;
    }
    var count = box.querySelector(".count");
    if (count) count.textContent = shown + " of " + rows.length + " rows shown";
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable-table"), function (table) {
      Array.prototype.forEach.call(table.querySelectorAll("thead th.sortable"), function (th) {
        th.tabIndex = 0;
        th.addEventListener("click", function () { sortBy(table, th); });
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th); }
        });
      });
    });
    Array.prototype.forEach.call(document.querySelectorAll(".controls[data-for]"), function (box) {
      var table = document.getElementById(box.getAttribute("data-for"));
      if (!table) return;
      Array.prototype.forEach.call(box.querySelectorAll("[data-filter]"), function (el) {
        el.addEventListener("input", function () { applyFilters(table, box); });
        el.addEventListener("change", function () { applyFilters(table, box); });
      });
      applyFilters(table, box);
    });
  });
})();
