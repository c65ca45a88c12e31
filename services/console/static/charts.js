// Shared by the console's pages: draw ECharts charts from data the server embedded, and keep them
// sized with the window. Served by the console itself, like the chart library (no CDN).
"use strict";
window.pdCharts = (function () {
  const charts = {};
  window.addEventListener("resize", function () {
    Object.values(charts).forEach(function (chart) { chart.resize(); });
  });
  function draw(id, option) {
    const element = document.getElementById(id);
    if (!element || !window.echarts) { return null; }
    const chart = charts[id] || (charts[id] = window.echarts.init(element));
    chart.setOption(option, true);
    return chart;
  }
  function embedded(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }
  return { draw: draw, embedded: embedded };
})();
