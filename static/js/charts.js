// bioweb charts: draws the metric and figures pages' charts and the device page's small charts
// with uPlot (static/vendor/uplot, `make vendor`). Loaded only on pages with charts.
//
// The server puts every URL on the page, each period's range already computed in the owner's
// time zone; the answers carry each bucket's start with its local offset, so this file does no
// time-zone or calendar arithmetic: it reads the local date and hour out of those strings.
// The x axis is the bucket's index (every bucket as wide as the next, months included).
(function () {
  "use strict";

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December"];
  var WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

  // "2024-05-06T13:00:00+02:00" -> the local wall clock the server wrote.
  function localParts(iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso);
    return { year: +m[1], month: +m[2], day: +m[3], hour: m[4], minute: m[5] };
  }

  // The weekday of a calendar date (a date, not an instant: computed on UTC's calendar).
  function weekday(p) {
    return WEEKDAYS[new Date(Date.UTC(p.year, p.month - 1, p.day)).getUTCDay()];
  }

  // A bucket's label: short for the axis, long for the legend and the table.
  function bucketLabel(iso, bucket, period, long) {
    var p = localParts(iso);
    if (bucket === "hour") {
      var clock = p.hour + ":" + p.minute;
      return long ? weekday(p) + " " + p.day + " " + MONTHS[p.month - 1] + ", " + clock : clock;
    }
    if (bucket === "month") {
      return long ? MONTH_NAMES[p.month - 1] + " " + p.year : MONTHS[p.month - 1];
    }
    if (long) { return weekday(p) + " " + p.day + " " + MONTHS[p.month - 1] + " " + p.year; }
    return period === "week" ? weekday(p) + " " + p.day : p.day + " " + MONTHS[p.month - 1];
  }

  function formatValue(value, scale) {
    if (value === null || value === undefined) { return "no data"; }
    var shown = value * scale;
    var size = Math.abs(shown);
    var digits = size >= 100 ? 0 : size >= 10 ? 1 : 2;
    return shown.toLocaleString("en", { maximumFractionDigits: digits });
  }

  function withUnit(text, unit) {
    return unit === "%" ? text + "%" : text + " " + unit;
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function fetchCalculation(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) {
            throw new Error(body.error_description || "The server answered " + response.status + ".");
          }
          return body;
        });
      });
  }

  // uPlot's series of an answer: x = bucket index, y = value (null: a gap).
  function seriesOf(answer, scale) {
    var xs = [], ys = [];
    answer.results.forEach(function (bucket, index) {
      xs.push(index);
      ys.push(bucket.value === null ? null : bucket.value * scale);
    });
    return [xs, ys];
  }

  function valueSeries(kind, colour, extra) {
    var series = {
      stroke: colour,
      width: 2,
      spanGaps: false,
      points: { show: kind !== "bars", size: 6, fill: colour, stroke: colour }
    };
    if (kind === "bars") {
      series.paths = uPlot.paths.bars({ size: [0.7, 48], align: 0 });
      series.fill = colour;
      series.width = 0;
    }
    return Object.assign(series, extra || {});
  }

  function yRange(kind) {
    return function (u, min, max) {
      if (min === null || max === null) { return [0, 1]; }
      if (kind === "bars") { return [Math.min(0, min), max > 0 ? max * 1.1 : 1]; }
      var pad = (max - min) * 0.15 || Math.abs(max) * 0.05 || 1;
      return [min - pad, max + pad];
    };
  }

  // --- The big chart --------------------------------------------------------------------------

  function setupChart(box) {
    var figure = box.querySelector("[data-chart]");
    var plot = figure.querySelector(".chart-plot");
    var caption = figure.querySelector(".chart-caption");
    var table = figure.querySelector(".chart-table");
    var buttons = Array.prototype.slice.call(box.querySelectorAll("button[data-period]"));
    var kind = figure.dataset.kind;
    var unit = figure.dataset.unit;
    var scale = Number(figure.dataset.scale) || 1;
    var label = figure.dataset.name;
    var readout = figure.querySelector(".chart-readout");
    var chart = null;
    var ticket = 0;
    box.hidden = false;

    function height(width) {
      return Math.round(Math.max(200, Math.min(320, width * 0.45)));
    }

    function xAxis(answer, button, muted, border) {
      var bucket = button.dataset.bucket;
      var period = button.dataset.period;
      var starts = answer.results.map(function (b) { return b.start; });
      return {
        stroke: muted,
        grid: { show: false },
        ticks: { stroke: border, width: 1, size: 4 },
        font: "12px system-ui, sans-serif",
        // Every bucket's index, thinned to what fits: about 44 px a label (56 for hours).
        splits: function (u) {
          var room = u.bbox.width / (window.devicePixelRatio || 1);
          var step = Math.max(1, Math.ceil(starts.length * (bucket === "hour" ? 56 : 44) / Math.max(room, 1)));
          var found = [];
          for (var i = (starts.length - 1) % step; i < starts.length; i += step) { found.push(i); }
          return found;
        },
        values: function (u, splits) {
          return splits.map(function (i) { return starts[i] ? bucketLabel(starts[i], bucket, period, false) : ""; });
        }
      };
    }

    function describe(answer, button) {
      var bucket = button.dataset.bucket;
      var results = answer.results;
      var filled = results.filter(function (b) { return b.value !== null; });
      var text = button.dataset.caption + ". ";
      if (!filled.length) {
        text += "No samples in this period.";
      } else {
        var values = filled.map(function (b) { return b.value; });
        var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
        text += filled.length + " of " + results.length + " " + bucket + "s with samples";
        text += filled.length > 1
          ? "; from " + formatValue(low, scale) + " to " + withUnit(formatValue(high, scale), unit) + "."
          : ": " + withUnit(formatValue(high, scale), unit) + ".";
      }
      caption.textContent = text;

      // The text alternative: every bucket and its value, for screen readers.
      var head = document.createElement("thead");
      var row = document.createElement("tr");
      [bucket.charAt(0).toUpperCase() + bucket.slice(1), label + " (" + unit + ")", "Samples"].forEach(function (name) {
        var th = document.createElement("th");
        th.scope = "col";
        th.textContent = name;
        row.appendChild(th);
      });
      head.appendChild(row);
      var body = document.createElement("tbody");
      results.forEach(function (b) {
        var tr = document.createElement("tr");
        var th = document.createElement("th");
        th.scope = "row";
        th.textContent = bucketLabel(b.start, bucket, button.dataset.period, true);
        var value = document.createElement("td");
        value.textContent = formatValue(b.value, scale);
        var count = document.createElement("td");
        count.textContent = String(b.count);
        tr.append(th, value, count);
        body.appendChild(tr);
      });
      var tableCaption = document.createElement("caption");
      tableCaption.textContent = label + ": " + button.dataset.caption;
      table.replaceChildren(tableCaption, head, body);
    }

    function read(answer, button, index) {
      var results = answer.results;
      if (index === null || index === undefined || !results[index]) {
        index = -1;
        for (var i = results.length - 1; i >= 0; i--) {
          if (results[i].value !== null) { index = i; break; }
        }
        if (index < 0) { readout.textContent = "No samples in this period."; return; }
      }
      var bucket = results[index];
      var when = bucketLabel(bucket.start, button.dataset.bucket, button.dataset.period, true);
      readout.textContent = bucket.value === null
        ? when + ": no samples"
        : when + ": " + withUnit(formatValue(bucket.value, scale), unit) +
          " (" + bucket.count + " sample" + (bucket.count === 1 ? "" : "s") + ")";
    }

    function draw(answer, button) {
      var accent = cssVar("--accent", "#0f766e");
      var muted = cssVar("--muted", "#57606a");
      var border = cssVar("--border", "#d0d7de");
      var bucket = button.dataset.bucket;
      var starts = answer.results.map(function (b) { return b.start; });
      var data = seriesOf(answer, 1);
      var width = Math.max(plot.clientWidth, 200);
      var options = {
        width: width,
        height: height(width),
        scales: {
          x: { time: false, range: [-0.5, Math.max(starts.length - 0.5, 0.5)] },
          y: { range: yRange(kind) }
        },
        axes: [
          xAxis(answer, button, muted, border),
          {
            stroke: muted,
            grid: { stroke: border, width: 1 },
            ticks: { show: false },
            font: "12px system-ui, sans-serif",
            size: 56,
            values: function (u, splits) { return splits.map(function (v) { return formatValue(v, scale); }); }
          }
        ],
        series: [
          {
            label: bucket.charAt(0).toUpperCase() + bucket.slice(1),
            value: function (u, i) { return i === null || !starts[i] ? "—" : bucketLabel(starts[i], bucket, button.dataset.period, true); }
          },
          valueSeries(kind, accent, {
            label: label,
            value: function (u, v) { return v === null || v === undefined ? "—" : withUnit(formatValue(v, scale), unit); }
          })
        ],
        cursor: { drag: { x: false, y: false }, points: { size: 8 } },
        legend: { show: false },
        hooks: {
          // The readout above the chart: the bucket under the pointer (or finger), else the
          // latest with samples.
          setCursor: [function (u) { read(answer, button, u.cursor.idx); }]
        }
      };
      if (chart) { chart.destroy(); }
      chart = new uPlot(options, data, plot);
      figure.uplot = chart;
      figure.dataset.period = button.dataset.period;
      figure.dataset.points = String(starts.length);
      figure.dataset.values = String(data[1].filter(function (v) { return v !== null; }).length);
      figure.dataset.state = "drawn";
      describe(answer, button);
      read(answer, button, null);
    }

    function choose(button) {
      var mine = ++ticket;
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", b === button ? "true" : "false"); });
      figure.dataset.state = "loading";
      figure.setAttribute("aria-busy", "true");
      fetchCalculation(button.dataset.url)
        .then(function (answer) {
          if (mine !== ticket) { return; }
          draw(answer, button);
        })
        .catch(function (error) {
          if (mine !== ticket) { return; }
          figure.dataset.state = "error";
          caption.textContent = "The chart could not be loaded: " + error.message;
        })
        .then(function () { if (mine === ticket) { figure.removeAttribute("aria-busy"); } });
    }

    buttons.forEach(function (button) {
      button.addEventListener("click", function () { choose(button); });
    });
    var first = buttons.find(function (b) { return b.getAttribute("aria-pressed") === "true"; }) || buttons[0];
    if (first) { choose(first); }

    if (window.ResizeObserver) {
      var lastWidth = 0;
      new ResizeObserver(function () {
        var width = Math.max(plot.clientWidth, 200);
        if (!chart || width === lastWidth) { return; }
        lastWidth = width;
        chart.setSize({ width: width, height: height(width) });
      }).observe(plot);
    }
  }

  // --- Small charts (device page) -------------------------------------------------------------

  function setupSparkline(node) {
    var kind = node.dataset.kind;
    var unit = node.dataset.unit;
    var scale = Number(node.dataset.scale) || 1;
    var label = node.dataset.name;
    node.setAttribute("aria-label", label + ", the last 7 days: loading");
    fetchCalculation(node.dataset.url)
      .then(function (answer) {
        var accent = cssVar("--accent", "#0f766e");
        var data = seriesOf(answer, 1);
        var n = answer.results.length;
        var chart = new uPlot({
          width: 112,
          height: 32,
          padding: [3, 2, 3, 2],
          scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: yRange(kind) } },
          axes: [{ show: false }, { show: false }],
          series: [{}, valueSeries(kind, accent, { width: kind === "bars" ? 0 : 1.5, points: { show: kind !== "bars", size: 3, fill: accent, stroke: accent } })],
          cursor: { show: false },
          legend: { show: false }
        }, data, node);
        node.uplot = chart;
        var filled = answer.results.filter(function (b) { return b.value !== null; });
        var word = answer.function === 2 ? "total" : "average";
        var text = label + ", daily " + word + ", the last 7 days: ";
        text += answer.results.map(function (b) {
          return bucketLabel(b.start, "day", "week", false) + " " + (b.value === null ? "none" : formatValue(b.value, scale));
        }).join(", ");
        node.setAttribute("aria-label", text + " (" + unit + ")");
        node.title = filled.length + " of " + n + " days with samples";
        node.dataset.points = String(n);
        node.dataset.values = String(filled.length);
        node.dataset.state = "drawn";
      })
      .catch(function (error) {
        node.dataset.state = "error";
        node.setAttribute("aria-label", label + ": the small chart could not be loaded (" + error.message + ")");
        node.textContent = "—";
      });
  }

  function start() {
    if (!window.uPlot) { return; }
    document.querySelectorAll("[data-chart-box]").forEach(setupChart);
    document.querySelectorAll("[data-sparkline]").forEach(setupSparkline);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
