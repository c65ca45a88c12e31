// The customer page's decay curve: intent over the coming weeks if nothing new happens.
"use strict";
(function () {
  const forecast = pdCharts.embedded("forecast-data");
  if (!forecast) { return; }
  pdCharts.draw("forecast-chart", {
    tooltip: { trigger: "axis" },
    grid: { left: 40, right: 15, top: 15, bottom: 30 },
    xAxis: { type: "category", data: forecast.points.map(function (p) { return p.at.slice(5, 10); }) },
    yAxis: { type: "value", min: 0, max: 100 },
    series: [{ name: forecast.label, type: "line", smooth: true, areaStyle: {},
      data: forecast.points.map(function (p) { return Math.round(p.intent_pct * 10) / 10; }) }],
  });
})();
