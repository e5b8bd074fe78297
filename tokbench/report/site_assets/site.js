/* tokbench leaderboard site: sortable, filterable tables and Plotly figures. No network, no eval. */
(function () {
  "use strict";

  function sortValue(cell, numeric) {
    var raw = cell ? cell.getAttribute("data-sort") : null;
    if (raw === null) raw = cell ? cell.textContent.trim() : "";
    if (raw === "") return null;
    if (!numeric) return raw.toLowerCase();
    var value = Number(raw);
    return isNaN(value) ? null : value;
  }

  function sortTable(table, column, header) {
    var numeric = header.getAttribute("data-type") === "num";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i++) headers[i].removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, index) {
      return { row: row, index: index, value: sortValue(row.cells[column], numeric) };
    });
    keyed.sort(function (a, b) {
      if (a.value === null || b.value === null) {
        if (a.value === b.value) return a.index - b.index;
        return a.value === null ? 1 : -1; // missing values always last
      }
      var order = a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
      return (ascending ? order : -order) || a.index - b.index;
    });
    keyed.forEach(function (item) { body.appendChild(item.row); });
  }

  function setUpBoard(block) {
    var table = block.querySelector("table.board");
    if (!table || !table.tHead) return;
    var headers = table.tHead.rows[0].cells;
    var toolbar = block.querySelector(".toolbar");
    var text = block.querySelector("input[data-filter-text]");
    var count = block.querySelector("[data-count]");
    var selects = [];
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);

    Array.prototype.forEach.call(headers, function (header, column) {
      var button = header.querySelector("button");
      if (button) button.addEventListener("click", function () { sortTable(table, column, header); });
      if (!header.hasAttribute("data-filter")) return;
      var values = {};
      rows.forEach(function (row) {
        var cell = row.cells[column];
        var value = cell ? cell.textContent.trim() : "";
        if (value !== "") values[value] = true;
      });
      var options = Object.keys(values).sort(function (a, b) {
        var x = Number(a), y = Number(b);
        return !isNaN(x) && !isNaN(y) ? x - y : a.localeCompare(b);
      });
      if (options.length < 2) return;
      var label = document.createElement("label");
      label.textContent = header.getAttribute("data-filter") + " ";
      var select = document.createElement("select");
      var all = document.createElement("option");
      all.value = "";
      all.textContent = "all";
      select.appendChild(all);
      options.forEach(function (value) {
        var option = document.createElement("option");
        option.value = value;
        option.textContent = value;
        select.appendChild(option);
      });
      select.addEventListener("change", apply);
      label.appendChild(select);
      toolbar.insertBefore(label, count);
      selects.push({ column: column, select: select });
    });

    function apply() {
      var needle = text ? text.value.trim().toLowerCase() : "";
      var shown = 0;
      rows.forEach(function (row) {
        var visible = !needle || row.textContent.toLowerCase().indexOf(needle) !== -1;
        selects.forEach(function (filter) {
          var cell = row.cells[filter.column];
          if (filter.select.value && (!cell || cell.textContent.trim() !== filter.select.value)) visible = false;
        });
        row.hidden = !visible;
        if (visible) shown++;
      });
      if (count) count.textContent = shown + " of " + rows.length + " rows";
    }
    if (text) text.addEventListener("input", apply);
    apply();
  }

  function renderFigures() {
    var blocks = document.querySelectorAll("script.plotly-figure");
    if (!blocks.length) return;
    if (typeof Plotly === "undefined") {
      throw new Error("plotly.min.js did not load; figures cannot be drawn");
    }
    Array.prototype.forEach.call(blocks, function (block) {
      var target = document.getElementById(block.getAttribute("data-target"));
      var figure = JSON.parse(block.textContent);
      Plotly.newPlot(target, figure.data, figure.layout, { displaylogo: false, responsive: true });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-board]"), setUpBoard);
    renderFigures();
  });
})();
