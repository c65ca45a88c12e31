// The overview's charts, drawn from the figures the page came with, then refreshed from
// /api/overview every data-refresh-s seconds.
"use strict";
(function () {
  const words = pdCharts.embedded("overview-words");
  const stamp = document.getElementById("refreshed");
  const refreshMs = 1000 * Number(stamp ? stamp.dataset.refreshS : 10);

  function heatmapOption(panel, colors) {
    const cells = [];
    panel.counts.forEach(function (row, r) {
      row.forEach(function (n, c) { cells.push([c, r, n]); });
    });
    return {
      tooltip: { position: "top" },
      grid: { left: 90, right: 20, top: 10, bottom: 60 },
      xAxis: { type: "category", data: panel.columns, splitArea: { show: true } },
      yAxis: { type: "category", data: panel.rows, splitArea: { show: true }, inverse: true },
      visualMap: { min: 0, max: Math.max(1, panel.max), calculable: false, orient: "horizontal",
        left: "center", bottom: 0, inRange: { color: colors } },
      series: [{ type: "heatmap", data: cells, label: { show: true } }],
    };
  }

  function draw(panels) {
    if (panels.matrix && !panels.matrix.unavailable) {
      pdCharts.draw("matrix-chart", heatmapOption(panels.matrix, ["#eef4fa", "#f39c12", "#c0392b"]));
      panels.matrix.counts.forEach(function (row, r) {
        row.forEach(function (n, c) {
          const selector = 'td[data-band="' + panels.matrix.row_keys[r] + '"][data-activity="' +
            panels.matrix.column_keys[c] + '"]';
          const cell = document.querySelector(selector);
          if (cell) { cell.textContent = String(n); }
        });
      });
      const total = document.querySelector('[data-testid="matrix-total"]');
      if (total) { total.textContent = String(panels.matrix.total); }
    }
    if (panels.ladder && !panels.ladder.unavailable) {
      pdCharts.draw("ladder-chart", heatmapOption(panels.ladder, ["#eef4fa", "#5b9bd5", "#1f4e79"]));
    }
    if (panels.funnel && !panels.funnel.unavailable) {
      pdCharts.draw("funnel-chart", {
        tooltip: { trigger: "item" },
        series: [{ type: "funnel", sort: "none", left: "10%", width: "80%", minSize: "8%",
          label: { show: true, position: "inside", formatter: "{b}: {c}" },
          data: panels.funnel.steps.map(function (s) { return { name: s.label, value: s.customers }; }) }],
      });
    }
    if (panels.events && !panels.events.unavailable) {
      pdCharts.draw("events-chart", {
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 50, right: 20, top: 30, bottom: 30 },
        xAxis: { type: "category", data: panels.events.labels },
        yAxis: { type: "value", minInterval: 1 },
        series: panels.events.series.map(function (s) {
          return { name: s.name, type: "bar", stack: "events", data: s.counts };
        }),
      });
    }
    if (panels.actions && !panels.actions.unavailable) {
      pdCharts.draw("actions-chart", {
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 160, right: 20, top: 30, bottom: 20 },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: panels.actions.campaigns, inverse: true },
        series: panels.actions.outcomes.map(function (name, i) {
          return { name: name, type: "bar", stack: "actions",
            data: panels.actions.counts.map(function (row) { return row[i]; }) };
        }),
      });
    }
    if (stamp) { stamp.textContent = words.refreshed + " " + new Date().toLocaleTimeString(); }
  }

  async function refresh() {
    try {
      const response = await fetch("/api/overview", { headers: { Accept: "application/json" } });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (response.ok) { draw(await response.json()); }
    } finally {
      window.setTimeout(refresh, refreshMs);
    }
  }

  draw(pdCharts.embedded("overview-data"));
  window.setTimeout(refresh, refreshMs);
})();
