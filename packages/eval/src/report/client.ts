/**
 * The script the report runs in the browser: it reads the summaries from the page's JSON block and
 * draws every figure with ECharts (inlined beside it) on its SVG renderer. Each figure element gets
 * `data-rendered="true"` once drawn, or `"error"` (and a console error) when drawing failed. Plain
 * ES2017 kept in a string, so no bundler or transpiler touches what the browser runs.
 */
export const CLIENT_SCRIPT = `
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pickrank-data").textContent);
  var run = data.run;
  var pairs = data.pairs;
  var palette = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc"];
  function fmt(v) { return v === null || v === undefined ? "–" : Number.isInteger(v) ? String(v) : v.toFixed(3); }
  function draw(id, option) {
    var el = document.getElementById(id);
    if (!el) return;
    try {
      var chart = echarts.init(el, null, { renderer: "svg" });
      option.animation = false;
      option.color = palette;
      chart.setOption(option);
      el.setAttribute("data-rendered", "true");
    } catch (e) {
      el.setAttribute("data-rendered", "error");
      console.error("pickrank report: figure " + id + " failed: " + (e && e.stack ? e.stack : e));
    }
  }
  function curveSeries(curves) {
    var series = [];
    curves.forEach(function (c, i) {
      var color = palette[i % palette.length];
      var stack = "band-" + i;
      var common = { type: "line", stack: stack, stackStrategy: "all", symbol: "none", silent: true, lineStyle: { opacity: 0 } };
      series.push(Object.assign({ name: c.name + " (interval low)", data: c.points.map(function (p) { return p.lo; }) }, common));
      series.push(Object.assign({ name: c.name + " (interval)", data: c.points.map(function (p) { return p.hi - p.lo; }),
        areaStyle: { color: color, opacity: 0.18 } }, common));
      series.push({ name: c.name, type: "line", color: color, symbolSize: 6, data: c.points.map(function (p) { return p.estimate; }) });
    });
    return series;
  }
  function curveChart(id, curves, yName) {
    if (curves.length === 0) return;
    var ks = curves[0].points.map(function (p) { return p.k; });
    curves.forEach(function (c) { if (c.points.length > ks.length) ks = c.points.map(function (p) { return p.k; }); });
    draw(id, {
      legend: { data: curves.map(function (c) { return c.name; }) },
      tooltip: { trigger: "axis", valueFormatter: fmt },
      xAxis: { type: "category", name: "k", data: ks },
      yAxis: { type: "value", name: yName, scale: true },
      series: curveSeries(curves),
    });
  }
  function boxChart(id, which) {
    var cs = run.configs.filter(function (c) { return c[which]; });
    if (cs.length === 0) return;
    draw(id, {
      tooltip: { trigger: "item" },
      xAxis: { type: "category", data: cs.map(function (c) { return c.config; }) },
      yAxis: { type: "value", name: which + " score", scale: true },
      series: [{ name: which, type: "boxplot", data: cs.map(function (c) {
        var d = c[which].distribution; return [d.min, d.q1, d.median, d.q3, d.max];
      }) }],
    });
  }
  function groupChart(id, field) {
    var groups = run.breakdowns.filter(function (g) { return g.field === field; });
    if (groups.length === 0) return;
    var values = [];
    groups.forEach(function (g) { if (values.indexOf(g.value) < 0) values.push(g.value); });
    draw(id, {
      legend: {},
      tooltip: { trigger: "axis", valueFormatter: fmt },
      xAxis: { type: "category", data: values, axisLabel: { interval: 0, rotate: values.length > 6 ? 30 : 0 } },
      yAxis: { type: "value", name: "gain over random (k = N)" },
      series: run.configs.map(function (c) {
        return { name: c.config, type: "bar", data: values.map(function (v) {
          var g = groups.filter(function (x) { return x.config === c.config && x.value === v; })[0];
          return g ? g.selectorGainOverRandom.estimate : null;
        }) };
      }),
    });
  }
  function winChart(id, score) {
    var names = run.configs.map(function (c) { return c.config; });
    var cells = [];
    run.winRates.forEach(function (w) {
      if (w.score === score && w.rate) cells.push([names.indexOf(w.b), names.indexOf(w.a), w.rate.estimate]);
    });
    if (cells.length === 0) return;
    draw(id, {
      tooltip: { formatter: function (p) { return names[p.value[1]] + " over " + names[p.value[0]] + ": " + fmt(p.value[2]); } },
      xAxis: { type: "category", data: names, name: "column" },
      yAxis: { type: "category", data: names, name: "row", inverse: true },
      visualMap: { min: 0, max: 1, calculable: false, orient: "horizontal", left: "center", bottom: 0 },
      grid: { bottom: 70 },
      series: [{ type: "heatmap", data: cells, label: { show: true, formatter: function (p) { return fmt(p.value[2]); } } }],
    });
  }
  function sweepChart(id) {
    if (!pairs || pairs.tieProtocol.sweep.length === 0) return;
    var sw = pairs.tieProtocol.sweep;
    draw(id, {
      tooltip: { trigger: "axis", valueFormatter: fmt },
      xAxis: { type: "category", name: "t", data: sw.map(function (s) { return s.threshold; }) },
      yAxis: { type: "value", name: "validation accuracy", scale: true },
      series: [{ name: "validation accuracy", type: "line", data: sw.map(function (s) { return s.accuracy; }) }],
    });
  }
  if (run) {
    var selectorCurves = run.configs.map(function (c) { return { name: c.config, points: c.selector.curve.points }; });
    curveChart("fig-curve-selector", selectorCurves, "best selector score");
    curveChart("fig-curve-judge", run.configs.filter(function (c) { return c.judge; })
      .map(function (c) { return { name: c.config, points: c.judge.curve.points }; }), "judge score of the pick");
    boxChart("fig-dist-selector", "selector");
    boxChart("fig-dist-judge", "judge");
    groupChart("fig-group-category", "category");
    groupChart("fig-group-challenge", "challenge");
    winChart("fig-win-selector", "selector");
    winChart("fig-win-judge", "judge");
  }
  sweepChart("fig-pairs-sweep");
})();
`;
