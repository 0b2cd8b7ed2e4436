// A line chart drawn by uPlot, as wide as its container. The canvas says nothing to a screen
// reader: `summary` names what it shows, and the pages give the numbers as text beside it.

import { useEffect, useLayoutEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const PALETTE = ["--chart-1", "--chart-2", "--chart-3", "--chart-4", "--chart-5", "--chart-6"];

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/**
 * `data`: [xs, ...one array per series]; `series`: [{label}]; `timeWindow`: xs are unix seconds and the
 * chart shows that many seconds up to the newest (otherwise xs are iteration numbers); `unit`: added
 * to the y values; `yRange`: [min, max] or undefined to fit the data.
 */
export function LineChart({ summary, data, series, timeWindow, unit = "", yRange, height = 220 }) {
  const time = Boolean(timeWindow);
  const box = useRef(null);
  const plot = useRef(null);
  const labels = series.map((item) => item.label).join("|");

  useLayoutEffect(() => {
    const text = themeColour("--text-muted");
    const grid = themeColour("--border");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const options = {
      width: Math.max(box.current.clientWidth, 200),
      height,
      scales: {
        x: time ? { time, range: (_, min, max) => [max - timeWindow, max] } : { time },
        y: yRange ? { range: yRange } : {},
      },
      axes: [
        time ? axis : { ...axis, incrs: [1, 2, 5, 10, 20, 50, 100] },
        { ...axis, size: 60, values: (_, ticks) => ticks.map((tick) => `${tick}${unit}`) },
      ],
      series: [
        { label: time ? "Time" : "Iteration" },
        ...series.map((item, index) => ({
          label: item.label,
          stroke: themeColour(PALETTE[index % PALETTE.length]),
          width: 2,
          points: { show: !time },
          value: (_, value) => (value == null ? "–" : `${Math.round(value * 10) / 10}${unit}`),
        })),
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    plot.current = new uPlot(options, data, box.current);
    const resize = new ResizeObserver(() => {
      plot.current.setSize({ width: Math.max(box.current.clientWidth, 200), height });
    });
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      plot.current.destroy();
      plot.current = null;
    };
  }, [labels, timeWindow, unit, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return <div class="chart" ref={box} role="img" aria-label={summary} />;
}
