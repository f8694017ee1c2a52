// The call-back queue by keyboard: j / k move between calls, 1-6 press the focused call's outcome
// buttons (data-key), u undoes (the focused row's outcome, else the one logged last). After an outcome
// the next call to make gets the focus, and each Undo button goes away when its moment has passed
// (data-undo-until, epoch ms). Enter in an outcome form's <select> saves the form.
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-call-row]"));
  }

  function current() {
    return document.activeElement && document.activeElement.closest("[data-call-row]");
  }

  function focusRow(row) {
    if (!row) return;
    row.focus();
    row.scrollIntoView({ block: "nearest" });
  }

  function step(direction) {
    var all = rows();
    var at = all.indexOf(current());
    focusRow(all[at < 0 ? 0 : Math.min(Math.max(at + direction, 0), all.length - 1)]);
  }

  function nextOpen(after) {
    var all = rows();
    var start = after ? all.indexOf(after) : -1;
    for (var i = start + 1; i < all.length; i++) {
      if (!all[i].hasAttribute("data-done")) return all[i];
    }
    return null;
  }

  function latestUndo() {
    // The Undo still offered for the call logged last (the focus has moved on from its row).
    var latest = null;
    document.querySelectorAll("[data-call-row] [data-undo-until]").forEach(function (form) {
      if (!latest || +form.getAttribute("data-undo-until") > +latest.getAttribute("data-undo-until")) latest = form;
    });
    return latest && latest.querySelector('[data-key="u"]');
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    // Enter in an outcome form's list (the reason for leaving) saves, as it does in its text fields:
    // browsers submit a form on Enter in a text field but not in a <select>.
    if (event.key === "Enter" && event.target.matches("select")) {
      var form = event.target.closest(".call-form");
      if (form) {
        event.preventDefault();
        form.requestSubmit();
      }
      return;
    }
    if (event.target.matches("input, textarea, select, [contenteditable]")) return;
    if (!document.querySelector("[data-call-queue]")) return;
    if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      step(event.key === "j" ? 1 : -1);
      return;
    }
    var row = current();
    // A row htmx has not wired yet would submit as a plain form (a page load): wait for data-ready.
    var button = row && row.hasAttribute("data-ready") && row.querySelector('[data-key="' + event.key + '"]');
    if (!button && event.key === "u") button = latestUndo();
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });

  function expireUndo(root) {
    root.querySelectorAll("[data-undo-until]").forEach(function (form) {
      var left = parseInt(form.getAttribute("data-undo-until"), 10) - Date.now();
      setTimeout(function () { form.remove(); }, Math.max(left, 0));
    });
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    // An outerHTML swap replaced the element htmx targeted: find its successor by its id.
    var target = event.detail.target;
    var row = target && target.id && document.getElementById(target.id);
    if (!row || !row.matches("[data-call-row]")) return;
    expireUndo(row);
    if (row.querySelector("[autofocus]")) return;  // a small form opened: its field has the focus
    if (row.hasAttribute("data-done")) {
      // Logged: on to the next call to make (the row stays, with its Undo, until the page reloads).
      focusRow(nextOpen(row) || row);
    } else {
      focusRow(row);
    }
  });

  // htmx calls this once it has wired new content (the page, then every swapped row).
  htmx.onLoad(function (elt) {
    if (!elt.querySelectorAll) return;
    var found = Array.prototype.slice.call(elt.querySelectorAll("[data-call-row]"));
    if (elt.matches("[data-call-row]")) found.push(elt);
    found.forEach(function (row) { row.setAttribute("data-ready", ""); });
  });

  document.addEventListener("DOMContentLoaded", function () {
    expireUndo(document);
    var opened = document.querySelector("[data-call-row] [autofocus]");
    if (!opened) focusRow(nextOpen(null));
  });
})();
