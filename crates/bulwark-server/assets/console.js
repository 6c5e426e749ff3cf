// Bulwark console: small improvements over pages that work without script.
// - <time datetime> shown in the browser's locale (the UTC value stays in the title).
// - [data-copy="id"] buttons copy the text of the element with that id.
// - [data-filter="id"] inputs filter the rows of the table with that id as you type.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      if (!t.title) { t.title = t.textContent; }
      t.textContent = d.toLocaleString();
    }
  });
  document.querySelectorAll("[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (!el || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(el.textContent.trim()).then(function () {
        b.textContent = "Copied";
      });
    });
  });
  document.querySelectorAll("[data-filter]").forEach(function (input) {
    input.hidden = false;
    var table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) { return; }
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (row) {
        row.hidden = q !== "" && row.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });
});
// - input[type=file][data-into="id"] reads the chosen file into the textarea with that id.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[type=file][data-into]").forEach(function (input) {
    input.hidden = false;
    input.addEventListener("change", function () {
      var target = document.getElementById(input.getAttribute("data-into"));
      var file = input.files && input.files[0];
      if (!target || !file) { return; }
      file.text().then(function (text) { target.value = text; });
    });
  });
});
