// Account page: when the browser's time zone is not the saved one, offer a button that selects
// it in the time zone list (saving stays the person's choice). Without this file, the list alone.
(function () {
  "use strict";

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
    } catch (error) {
      return null;
    }
  }

  // The option for `zone`: spelled the same, else without regard to case.
  function optionFor(select, zone) {
    var lower = zone.toLowerCase();
    var loose = null;
    for (var i = 0; i < select.options.length; i += 1) {
      var value = select.options[i].value;
      if (value === zone) { return select.options[i]; }
      if (!loose && value.toLowerCase() === lower) { loose = select.options[i]; }
    }
    return loose;
  }

  function setup() {
    var select = document.querySelector("select[data-saved-zone]");
    var row = document.querySelector("[data-browser-zone-row]");
    var button = document.querySelector("button[data-browser-zone]");
    var status = document.querySelector("[data-browser-zone-status]");
    var zone = browserZone();
    if (!select || !row || !button || !zone) { return; }
    var option = optionFor(select, zone);
    if (!option || option.value === select.getAttribute("data-saved-zone")) { return; }
    button.textContent = "Use " + option.value + " (your browser's)";
    row.hidden = false;
    button.addEventListener("click", function () {
      select.value = option.value;
      select.dispatchEvent(new Event("change", { bubbles: true }));
      select.focus();
      if (status) { status.textContent = option.value + " is selected. Save to keep it."; }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
