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

  // A gallery's perturbation row: 0.5 + (adversarial - clean) * scale, tile by tile, from the two
  // image strips above it (the file holds no third image). Drawn when its result's page opens.
  function drawPerturbation(canvas) {
    if (canvas.getAttribute("data-drawn")) { return; }
    var table = canvas.closest("table");
    var clean = table.querySelector("img.clean"), adversarial = table.querySelector("img.adversarial");
    Promise.all([clean.decode(), adversarial.decode()]).then(function () {
      var w = canvas.width, h = canvas.height, tile = Number(canvas.getAttribute("data-tile"));
      var scales = canvas.getAttribute("data-scales").split(" ").map(Number);
      var ctx = canvas.getContext("2d");
      ctx.drawImage(clean, 0, 0, w, h);
      var a = ctx.getImageData(0, 0, w, h).data;
      ctx.drawImage(adversarial, 0, 0, w, h);
      var out = ctx.getImageData(0, 0, w, h);
      var b = out.data;
      for (var y = 0; y < h; y += 1) {
        for (var x = 0; x < w; x += 1) {
          var i = 4 * (y * w + x), gap = x % tile === tile - 1, s = scales[Math.floor(x / tile)];
          for (var c = 0; c < 3; c += 1) {
            b[i + c] = gap ? 255 : Math.round(127.5 + (b[i + c] - a[i + c]) * s);  // clamped by the array
          }
          b[i + 3] = 255;
        }
      }
      ctx.putImageData(out, 0, 0);
      canvas.setAttribute("data-drawn", "1");
    });
  }
  function drawShownPage() {
    var id = window.location.hash.slice(1);
    var page = id ? document.getElementById(id) : null;
    if (page && page.classList.contains("page")) {
      Array.prototype.forEach.call(page.querySelectorAll("canvas.perturbation"), drawPerturbation);
    }
  }
  window.addEventListener("hashchange", drawShownPage);
  drawShownPage();
})();
