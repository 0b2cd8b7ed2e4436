// The dashboard's latency section: per route and per model, over a window the reader picks, as charts
// over time (from /performance/history) and as tables (from /performance/summary).

import { useState } from "preact/hooks";
import { api, withQuery } from "../api.js";
import { duration, num, span, when } from "../format.js";
import { LineChart } from "../components/chart.jsx";
import { usePolling } from "../polling.js";

const REFRESH_MS = 30000;
const BUCKETS = 60;
const CHAT_ROUTE = "POST /chat";
const MODEL_LINES = 5;
const WINDOWS = [
  [1, "last hour"],
  [6, "last 6 hours"],
  [24, "last 24 hours"],
  [24 * 7, "last 7 days"],
  [24 * 30, "last 30 days"],
];
const perSecond = (value) => (value == null ? "–" : `${num(value)} tok/s`);

function LatencyTable({ title, rows, first }) {
  const entries = Object.entries(rows).sort((a, b) => b[1].count - a[1].count);
  if (!entries.length) return <p class="muted">{title}: nothing measured in this window.</p>;
  return (
    <div class="table-wrap">
      <table>
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">{first}</th>
            <th scope="col" class="number">Requests</th>
            <th scope="col" class="number">Errors</th>
            <th scope="col" class="number">p50</th>
            <th scope="col" class="number">p95</th>
            <th scope="col" class="number">p99</th>
          </tr>
        </thead>
        <tbody>
          {entries.map(([name, stats]) => (
            <tr key={name}>
              <th scope="row"><code>{name}</code></th>
              <td class="number">{stats.count}</td>
              <td class="number">{stats.errors ? `${stats.errors} (${num(stats.error_rate * 100)} %)` : 0}</td>
              <td class="number">{duration(stats.p50)}</td>
              <td class="number">{duration(stats.p95)}</td>
              <td class="number">{duration(stats.p99)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * Chart data from series of /performance/history: the bucket starts of all of them, and one column per
 * line (`lines`: [{series, field}]), null where a series has no point.
 */
function bucketColumns(lines) {
  const xs = [...new Set(lines.flatMap((line) => line.series.points.map((point) => point.t)))].sort((a, b) => a - b);
  return [
    xs,
    ...lines.map(({ series, field }) => {
      const at = new Map(series.points.map((point) => [point.t, point[field]]));
      return xs.map((x) => at.get(x) ?? null);
    }),
  ];
}

/** A chart of some series of /performance/history; nothing measured: a line that says so. */
function HistoryChart({ title, summary, lines, range, format, empty }) {
  const shown = lines.filter((line) => line.series.points.some((point) => point[line.field] != null));
  return (
    <div class="history-chart">
      <h4>{title}</h4>
      {shown.length ? (
        <LineChart
          summary={summary}
          data={bucketColumns(shown)}
          series={shown.map((line) => ({ label: line.label, colour: line.colour, dashed: line.dashed }))}
          timeRange={range}
          format={format}
          height={200}
        />
      ) : (
        <p class="muted">{empty}</p>
      )}
    </div>
  );
}

/** p50 (dashed) and p95 (solid) of each series, one colour per series. */
function percentileLines(list) {
  return list.flatMap((series, index) => [
    { series, field: "p95_ms", label: `${series.name} p95`, colour: index },
    { series, field: "p50_ms", label: `${series.name} p50`, colour: index, dashed: true },
  ]);
}

function LatencyOverTime({ history, range, period }) {
  const endpoints = history.series.filter((series) => series.kind === "endpoint").sort((a, b) => b.count - a.count);
  const models = history.series.filter((series) => series.kind === "model").sort((a, b) => b.count - a.count).slice(0, MODEL_LINES);
  const [picked, setPicked] = useState("");
  const fallback = endpoints.find((series) => series.name === CHAT_ROUTE) || endpoints[0];
  const route = endpoints.find((series) => series.name === picked) || fallback;
  const each = span(history.bucket_seconds);
  return (
    <>
      <h3>Over time</h3>
      <p class="muted">
        Each point covers {each}; a stretch without requests has none
        {history.truncated ? " (the oldest are left out: too many requests to read at once)" : ""}.
        p95 solid, p50 dashed.
      </p>
      {endpoints.length > 0 && (
        <div class="field inline">
          <label for="latency-route">Route</label>
          <select id="latency-route" value={route?.name} onChange={(event) => setPicked(event.currentTarget.value)}>
            {endpoints.map((series) => <option key={series.name} value={series.name}>{series.name}</option>)}
          </select>
        </div>
      )}
      <HistoryChart
        title={route ? `Latency of ${route.name}` : "Latency per route"}
        summary={route ? `50th and 95th percentile latency of ${route.name} over the ${period}` : "Latency per route"}
        lines={route ? percentileLines([route]) : []}
        range={range}
        format={duration}
        empty="No request in this window."
      />
      <div class="chart-pair">
        <HistoryChart
          title="Latency per model"
          summary={`50th and 95th percentile duration of each model's generations over the ${period}`}
          lines={percentileLines(models)}
          range={range}
          format={duration}
          empty="No generation in this window."
        />
        <HistoryChart
          title="Time to first token per model"
          summary={`Median time to first token of each model over the ${period}`}
          lines={models.map((series, index) => ({ series, field: "ttft_ms", label: series.name, colour: index }))}
          range={range}
          format={duration}
          empty="No streamed generation in this window."
        />
        <HistoryChart
          title="Tokens per second per model"
          summary={`Median tokens per second of each model over the ${period}`}
          lines={models.map((series, index) => ({ series, field: "tokens_per_second", label: series.name, colour: index }))}
          range={range}
          format={perSecond}
          empty="No generation with a token count in this window."
        />
      </div>
    </>
  );
}

export function Latency() {
  const [hours, setHours] = useState(24);
  const [summary, setSummary] = useState(null);
  const [history, setHistory] = useState(null);
  const [error, setError] = useState("");
  usePolling(
    async () => {
      try {
        const [nextSummary, nextHistory] = await Promise.all([
          api.get(withQuery("/performance/summary", { hours })),
          api.get(withQuery("/performance/history", { hours, buckets: BUCKETS })),
        ]);
        setSummary(nextSummary);
        setHistory({ ...nextHistory, until: Date.now() / 1000 });
        setError("");
      } catch (failure) {
        setError(failure.message);
      }
      return true;
    },
    REFRESH_MS,
    hours,
  );
  const period = WINDOWS.find(([value]) => value === hours)?.[1] || `last ${hours} hours`;
  const range = history ? [Date.parse(history.since) / 1000, history.until] : undefined;
  return (
    <section class="section" aria-labelledby="latency-title">
      <h2 id="latency-title">Latency</h2>
      <div class="field inline">
        <label for="latency-window">Window</label>
        <select id="latency-window" value={hours} onChange={(event) => setHours(Number(event.currentTarget.value))}>
          {WINDOWS.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
        </select>
      </div>
      {error && <p role="alert" class="error">{error}</p>}
      {summary && (
        <p class="muted">
          {summary.total} requests since {when(summary.since)}; percentiles by {summary.percentile_method}.
        </p>
      )}
      {history && <LatencyOverTime history={history} range={range} period={period} />}
      {summary && (
        <>
          <LatencyTable title="Latency per route" first="Route" rows={summary.endpoints} />
          <LatencyTable title="Latency per model" first="Model" rows={summary.models} />
        </>
      )}
    </section>
  );
}
