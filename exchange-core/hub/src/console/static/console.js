// unsilo console: the only script, and every page works without it.
// - [data-live]: the element's content is fetched again from its URL every 10 seconds.
// - textarea[data-check]: the CEL filter is type-checked as it is typed (the hub's own checker), the answer
//   shown in the element named by data-result.
// - form[data-confirm]: asks before submitting.
"use strict";
(function () {
  function refresh(el) {
    fetch(el.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { el.innerHTML = html; } })
      .catch(function () { /* keep what is shown; the next tick tries again */ });
  }
  function checkFilter(area) {
    var form = area.form;
    var schema = form ? form.querySelector("[name=schema]") : null;
    var result = document.getElementById(area.dataset.result);
    if (!result) { return; }
    var url = area.dataset.check + "?schema=" + encodeURIComponent(schema ? schema.value : "") +
      "&filter=" + encodeURIComponent(area.value);
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { result.innerHTML = html; })
      .catch(function () { result.textContent = ""; });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      setInterval(function () { refresh(el); }, 10000);
    });
    document.querySelectorAll("textarea[data-check]").forEach(function (area) {
      var timer = null;
      area.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { checkFilter(area); }, 300);
      });
      checkFilter(area);
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.dataset.confirm)) { e.preventDefault(); }
      });
    });
  });
})();

// A "print" button prints the page (the report pages; print CSS leaves the navigation and forms out).
document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-print]");
  if (b) { e.preventDefault(); window.print(); }
});
