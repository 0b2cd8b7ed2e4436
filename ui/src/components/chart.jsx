// A line chart drawn by uPlot, as wide as its container, in a <figure>. The canvas says nothing to a
// screen reader, so the figure also holds the chart's numbers as a visually hidden table, named by its
// caption (`summary`). The figure's `data-points` is the number of points (x values) it draws.

import { useEffect, useLayoutEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { clock } from "../format.js";

const PALETTE = ["--chart-1", "--chart-2", "--chart-3", "--chart-4", "--chart-5", "--chart-6"];
const DASHED = [6, 4];

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const HOUR = 3600;
const DAY = 24 * HOUR;
const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayAndTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric" });
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** Tick labels of a time axis: one short line each, as precise as the shown span needs. */
function timeTicks(u, ticks) {
  const shown = u.scales.x.max - u.scales.x.min;
  const style = shown <= 2 * DAY ? timeOfDay : shown <= 8 * DAY ? dayAndTime : day;
  return ticks.map((tick) => style.format(new Date(tick * 1000)));
}

/** The y axis as wide as its longest label (uPlot calls it again while the labels settle). */
function axisWidth(u, values, index, cycle) {
  const axis = u.axes[index];
  if (cycle > 1) return axis._size;
  const longest = (values || []).reduce((found, value) => (value.length > found.length ? value : found), "");
  u.ctx.font = axis.font[0];
  return Math.ceil(axis.ticks.size + axis.gap + u.ctx.measureText(longest).width / devicePixelRatio) + 4;
}

function plainFormat(unit) {
  return (value) => (value == null ? "–" : `${Math.round(value * 10) / 10}${unit}`);
}

/**
 * `data`: [xs, ...one array per series]; `series`: [{label, colour?: palette index, dashed?}].
 * The x axis is time (xs in unix seconds) when `timeWindow` (the chart shows that many seconds up to
 * the newest x) or `timeRange` ([from, to], unix seconds) is given; otherwise xs are iteration numbers.
 * `format` writes a y value (axis, legend, table); by default the value with one decimal and `unit`.
 * `yRange`: [min, max] or undefined to fit the data.
 */
export function LineChart({ summary, data, series, timeWindow, timeRange, unit = "", format, yRange, height = 220 }) {
  const time = Boolean(timeWindow || timeRange);
  const box = useRef(null);
  const plot = useRef(null);
  const range = useRef(timeRange);
  range.current = timeRange;
  const write = useRef(format || plainFormat(unit));
  write.current = format || plainFormat(unit);
  const labels = series.map((item) => `${item.label}:${item.colour ?? ""}:${item.dashed ? 1 : 0}`).join("|");

  useLayoutEffect(() => {
    const text = themeColour("--text-muted");
    const grid = themeColour("--border");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const xScale = !time
      ? { time }
      : timeWindow
        ? { time, range: (_, min, max) => [max - timeWindow, max] }
        : { time, range: (_, min, max) => range.current || [min, max] };
    const options = {
      width: Math.max(box.current.clientWidth, 200),
      height,
      scales: { x: xScale, y: yRange ? { range: yRange } : {} },
      axes: [
        time ? { ...axis, space: 90, values: timeTicks } : { ...axis, incrs: [1, 2, 5, 10, 20, 50, 100] },
        { ...axis, size: axisWidth, values: (_, ticks) => ticks.map((tick) => write.current(tick)) },
      ],
      series: [
        { label: time ? "Time" : "Iteration" },
        ...series.map((item, index) => ({
          label: item.label,
          stroke: themeColour(PALETTE[(item.colour ?? index) % PALETTE.length]),
          width: 2,
          dash: item.dashed ? DASHED : undefined,
          // Time series: uPlot shows the points only where they are sparse enough to see.
          points: time ? {} : { show: true },
          value: (_, value) => write.current(value),
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
  }, [labels, timeWindow, time, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data, timeRange?.[0], timeRange?.[1]]);

  const xs = data[0] || [];
  return (
    <figure class="chart-figure" data-points={xs.length}>
      <figcaption class="sr-only">{summary}</figcaption>
      <div class="chart" ref={box} aria-hidden="true" />
      <table class="chart-data sr-only">
        <thead>
          <tr>
            <th scope="col">{time ? "Time" : "Iteration"}</th>
            {series.map((item) => <th scope="col" key={item.label}>{item.label}</th>)}
          </tr>
        </thead>
        <tbody>
          {xs.map((x, row) => (
            <tr key={x}>
              <th scope="row">{time ? clock(x) : x}</th>
              {series.map((item, column) => <td key={item.label}>{write.current(data[column + 1][row])}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
