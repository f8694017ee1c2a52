// The funnel board: drag a card to another column (SortableJS), close stage menus with Escape.
// The keyboard path needs none of this: each card's Stage menu is a form that htmx posts.
(function () {
  "use strict";

  // htmx settles a swapped element by copying the old one's attributes onto it first; Sortable
  // leaves a style attribute on cards it moved, and setting one is what the CSP forbids.
  htmx.config.attributesToSettle = ["class", "width", "height"];

  // A dropped card already stands in its new column: tell the server, which answers with the
  // card (swapped in place) and the two column headers (out of band).
  function dropped(event) {
    var card = event.item;
    var form = card.querySelector("form.move");
    if (!form || event.from === event.to) return;
    htmx.ajax("POST", form.getAttribute("action"), {
      source: form,
      target: card,
      swap: "outerHTML",
      values: { stage_id: event.to.getAttribute("data-stage"), placed: "1" },
    });
  }

  function makeSortable(list) {
    if (Sortable.get(list)) return;
    Sortable.create(list, {
      group: "funnel",
      sort: false, // a column is ordered by last order, not by hand
      draggable: ".card",
      // Dragging starts on the card itself, not on its link or menu (those stay clickable).
      filter: "a, summary, button, form",
      preventOnFilter: false,
      animation: 150,
      // Cards go above the "More" button, never below it.
      onMove: function (event) {
        return event.related.classList.contains("more") ? -1 : true;
      },
      onAdd: dropped,
    });
  }

  htmx.onLoad(function (root) {
    if (root.matches && root.matches(".cards")) makeSortable(root);
    if (root.querySelectorAll) root.querySelectorAll(".cards").forEach(makeSortable);
    // A card moved into a column before its next page loads may come again with that page.
    if (root.matches && root.matches(".card") && document.querySelectorAll("#" + root.id).length > 1) {
      root.remove();
    }
  });

  // A move the server refused (the stage was removed meanwhile, the session ended) leaves the
  // board out of date: load it afresh rather than show a card where it is not.
  document.body.addEventListener("htmx:responseError", function (event) {
    if (event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("#board")) {
      window.location.reload();
    }
  });

  function closeMenus(except) {
    document.querySelectorAll("details.stage-menu[open]").forEach(function (menu) {
      if (menu !== except) menu.open = false;
    });
  }

  // One stage menu open at a time; a click elsewhere closes it.
  document.addEventListener("toggle", function (event) {
    if (event.target.matches && event.target.matches("details.stage-menu") && event.target.open) {
      closeMenus(event.target);
    }
  }, true);
  document.addEventListener("click", function (event) {
    closeMenus(event.target.closest("details.stage-menu"));
  });

  // Escape closes the open menu and puts the focus back on its summary.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("details.stage-menu[open]");
    if (!open) return;
    event.preventDefault();
    var hadFocus = open.contains(document.activeElement);
    closeMenus(null);
    if (hadFocus) open.querySelector("summary").focus();
  });
})();
