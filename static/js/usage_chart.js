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
  // Where bar `index` ends on the x scale: where the next one starts (the last one is as wide as
  // the one before it; a category bar is 1 wide).
  var barEnd = function (index) {
    var points = chart.points;
    if (index + 1 < points.length) return points[index + 1].x;
    return points[index].x + (index > 0 ? points[index].x - points[index - 1].x : 1);
  };
  // The bar under x: bars span [x, next x). Rickshaw's own hover picks the nearest point, which
  // names the next bar over the right half of a bar.
  var barAt = function (x) {
    var found = -1;
    for (var i = 0; i < chart.points.length && chart.points[i].x <= x; i++) found = i;
    return found >= 0 && x < barEnd(found) ? found : -1;
  };
  var element = function (tag, className) {
    var node = document.createElement(tag);
    node.className = className;
    return node;
  };

  // The hover detail, in place of Rickshaw.Graph.HoverDetail, which writes its labels with
  // innerHTML: account names are the accounts' own choice, so here every label is text
  // (textContent), never HTML. Same elements and classes, so rickshaw.css styles it.
  var hoverDetail = function (graph, holder) {
    var detail = element("div", "detail inactive");
    var xLabel = detail.appendChild(element("div", "x_label"));
    var item = detail.appendChild(element("div", "item active"));
    var dot = detail.appendChild(element("div", "dot active"));
    graph.element.appendChild(detail);
    var hide = function () { detail.classList.add("inactive"); };
    var align = function (side) {
      [xLabel, item].forEach(function (node) {
        node.classList.remove("left", "right");
        node.classList.add(side);
      });
    };
    var overflow = function () {
      var box = holder.getBoundingClientRect(), error = 0;
      [xLabel, item].forEach(function (node) {
        var rect = node.getBoundingClientRect();
        error += Math.max(0, rect.right - box.right) + Math.max(0, box.left - rect.left);
      });
      return error;
    };
    graph.element.addEventListener("mousemove", function (event) {
      var index = barAt(graph.x.invert(event.clientX - graph.element.getBoundingClientRect().left));
      if (index < 0) return hide();
      var point = chart.points[index], unit = unitOf(index);
      xLabel.textContent = labels[index];
      item.textContent = formatQuantity(point.y) + (unit ? " " + unit : "");
      // Styles set through the CSSOM, which the Content-Security-Policy allows (style="" it does not).
      detail.style.left = (graph.x(point.x) + graph.x(barEnd(index))) / 2 + "px";
      item.style.top = dot.style.top = graph.y(point.y) + "px";
      dot.style.borderColor = graph.series[0].color;
      detail.classList.remove("inactive");
      align("left");
      var leftError = overflow();
      if (leftError > 0) {
        align("right");
        if (overflow() > leftError) align("left");
      }
    });
    graph.element.addEventListener("mouseleave", hide);
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
  hoverDetail(graph, holder);
  graph.render();

  window.addEventListener("resize", function () {
    graph.configure({ width: body.clientWidth || 800 });
    graph.render();
  });
})();
