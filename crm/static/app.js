// Small behaviours htmx does not cover, bound by data attributes (no inline script: strict CSP).
(function () {
  "use strict";

  // "Select all on this page": ticks every checkbox named by data-select-all.
  document.addEventListener("change", function (event) {
    var box = event.target.closest("[data-select-all]");
    if (!box) return;
    var name = box.getAttribute("data-select-all");
    document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (other) {
      other.checked = box.checked;
    });
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target.matches("input, textarea, select, [contenteditable]");
    // Escape leaves an inline editor without saving.
    if (event.key === "Escape") {
      var editing = target.closest(".editing");
      var cancel = editing && editing.querySelector("[data-cancel]");
      if (cancel) {
        event.preventDefault();
        cancel.click();
      }
      return;
    }
    // "/" jumps to the search box, as in most web apps.
    if (event.key === "/" && !typing) {
      var search = document.querySelector('input[type="search"]');
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    }
  });
})();
