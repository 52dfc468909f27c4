/*
 * cohort.js: the cohort form says, before it is sent, when a table would have more cells than the
 * server computes (the form's data-max-cells, dashboard/forms/cohort.py's MAX_CELLS), with the
 * server's own words, and blocks the submit until it is smaller. Without JavaScript the server
 * answers the same message. Plain ES5, no dependencies.
 */
(function () {
  "use strict";
  var form = document.querySelector("form.cohort-form");
  if (!form) {
    return;
  }
  var max = Number(form.getAttribute("data-max-cells"));
  var out = form.querySelector(".cohort-cells");
  var DAY = 86400000;

  function field(name) {
    return form.elements[name];
  }

  function day(value) {
    var time = Date.parse(value + "T00:00:00Z");
    return isNaN(time) ? null : Math.round(time / DAY);
  }

  function monday(d) {
    return d - ((new Date(d * DAY).getUTCDay() + 6) % 7);
  }

  function rows() {
    var group = field("time_group").value;
    if (group === "years") {
      return 3; // a yearly table always shows three years
    }
    var rolling = field("rolling") && field("rolling").checked;
    var first = rolling ? null : day(field("start_date").value);
    var last = rolling ? null : day(field("end_date").value);
    if (first === null || last === null) {
      return Number(field("num_results").value) || 0;
    }
    if (group === "weeks") {
      return Math.floor((monday(last) - monday(first)) / 7) + 1;
    }
    if (group === "months") {
      var a = new Date(first * DAY), b = new Date(last * DAY);
      return (b.getUTCFullYear() - a.getUTCFullYear()) * 12 + b.getUTCMonth() - a.getUTCMonth() + 1;
    }
    return last - first + 1;
  }

  function check() {
    var columns = (Number(field("num_of_rows").value) || 0) + 1;
    var count = rows();
    var cells = count * columns;
    var message = "";
    if (count > 0 && cells > max) {
      message = "At most " + max.toLocaleString("en") + " cells: " + count.toLocaleString("en") +
        " cohorts x " + columns + " columns is " + cells.toLocaleString("en") +
        ". Ask for fewer cohorts or columns.";
    }
    field("num_of_rows").setCustomValidity(message);
    if (out) {
      out.textContent = message || (count > 0 ? count.toLocaleString("en") + " cohorts x " +
        columns + " columns = " + cells.toLocaleString("en") + " cells" : "");
      out.className = message ? "cohort-cells field-error" : "cohort-cells";
    }
  }

  form.addEventListener("input", check);
  form.addEventListener("change", check);
  check();
})();
