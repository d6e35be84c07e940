// wmrbench report: sorting, filtering, search and the curves' selection. Handwritten, no
// library; it reads the page (data-* attributes, textContent) and never writes HTML.
(function () {
  "use strict";
  var table = document.getElementById("board");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var search = document.getElementById("search");
  var filters = Array.prototype.slice.call(document.querySelectorAll("select.filter"));
  var count = document.getElementById("shown-count");

  function sortKey(row, col) {
    var cell = row.cells[col];
    var v = cell ? cell.getAttribute("data-sort") : null;
    if (v === null || v === "") { return null; }
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }

  Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-col]"), function (th) {
    th.addEventListener("click", function () {
      var col = Number(th.getAttribute("data-col"));
      // Accuracies sort best first on the first click; text A to Z.
      var numeric = th.getAttribute("data-type") === "number";
      var current = th.getAttribute("aria-sort");
      var descending = current ? current === "ascending" : numeric;
      Array.prototype.forEach.call(table.tHead.querySelectorAll("th[aria-sort]"), function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var sorted = rows.slice().sort(function (a, b) {
        var x = sortKey(a, col), y = sortKey(b, col);
        if (x === y) { return 0; }
        if (x === null) { return 1; }  // empty cells last either way
        if (y === null) { return -1; }
        var c = x < y ? -1 : 1;
        return descending ? -c : c;
      });
      sorted.forEach(function (r) { body.appendChild(r); });
    });
  });

  function applyFilters() {
    var text = search.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var ok = filters.every(function (f) { return !f.value || row.getAttribute("data-" + f.name) === f.value; });
      if (ok && text) { ok = row.textContent.toLowerCase().indexOf(text) !== -1; }
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " rows";
  }
  search.addEventListener("input", applyFilters);
  filters.forEach(function (f) { f.addEventListener("change", applyFilters); });

  function showCurves(id, on) {
    Array.prototype.forEach.call(document.querySelectorAll('#curves g.series, #curves li'), function (el) {
      if (el.getAttribute("data-row") === id) { el.style.display = on ? "" : "none"; }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("input.pick"), function (box) {
    box.addEventListener("change", function () { showCurves(box.getAttribute("data-row"), box.checked); });
  });
  applyFilters();
})();
