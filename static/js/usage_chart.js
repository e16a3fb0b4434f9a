// Draws the usage report's chart with Rickshaw (served from static/vendor, never a CDN).
// The data comes from the page's json_script element "usage-chart-data": quantities only, never
// cost. {kind: "time" | "category", unit, points: [{x, y, label, unit?}]}; time x values are UTC
// seconds, category x values are indexes into the labels.
(function () {
  var source = document.getElementById("usage-chart-data");
  var holder = document.getElementById("usage-chart");
  if (!source || !holder || !window.Rickshaw || !window.d3) return;
  var chart = JSON.parse(source.textContent);
  if (!chart.points.length) return;

  var body = holder.querySelector(".usage-chart-body");
  var labels = chart.points.map(function (p) { return p.label; });
  var unitOf = function (index) {
    var point = chart.points[index];
    return (point && point.unit) || chart.unit || "";
  };
  var formatQuantity = function (y) {
    return y.toLocaleString("en-US", { maximumFractionDigits: 6 });
  };
  var indexOfX = function (x) {
    for (var i = 0; i < chart.points.length; i++) if (chart.points[i].x === x) return i;
    return -1;
  };

  var graph = new Rickshaw.Graph({
    element: body,
    width: body.clientWidth || 800,
    height: 260,
    renderer: "bar",
    series: [{
      name: "Quantity",
      color: "#00a37a",
      data: chart.points.map(function (p) { return { x: p.x, y: p.y }; })
    }]
  });

  if (chart.kind === "time") {
    new Rickshaw.Graph.Axis.Time({ graph: graph, timeFixture: new Rickshaw.Fixtures.Time() }); // UTC
  } else {
    new Rickshaw.Graph.Axis.X({
      graph: graph,
      orientation: "bottom",
      element: holder.querySelector(".usage-chart-x"),
      // A bar spans [x, x + 1): its label goes in its middle.
      tickValues: chart.points.map(function (p) { return p.x + 0.5; }),
      tickFormat: function (x) {
        // As many characters as a bar is wide (about 7 px each); the hover shows the full name.
        var room = Math.max(3, Math.floor(graph.width / labels.length / 7));
        var label = labels[Math.floor(x)] || "";
        return label.length > room ? label.slice(0, room - 1) + "…" : label;
      }
    });
  }
  new Rickshaw.Graph.Axis.Y({
    graph: graph,
    orientation: "left",
    element: holder.querySelector(".usage-chart-y"),
    tickFormat: Rickshaw.Fixtures.Number.formatKMBT
  });
  new Rickshaw.Graph.HoverDetail({
    graph: graph,
    xFormatter: function (x) {
      var index = indexOfX(x);
      return index >= 0 ? labels[index] : "";
    },
    formatter: function (series, x, y) {
      var unit = unitOf(indexOfX(x));
      return formatQuantity(y) + (unit ? " " + unit : "");
    }
  });
  graph.render();

  window.addEventListener("resize", function () {
    graph.configure({ width: body.clientWidth || 800 });
    graph.render();
  });
})();
