// The dashboard: the machine live (admins), latency per route and per model, and the LLM benchmark.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, withQuery } from "../api.js";
import { duration, num, span, when } from "../format.js";
import { LineChart } from "../components/chart.jsx";
import { usePolling } from "../polling.js";
import { Latency } from "./latency.jsx";

const POLL_MS = 2500;
const percent = (value) => (value == null ? "–" : `${num(value)} %`);

/** One row of the machine chart: a reading of /metrics or of /metrics/history. */
function machineRow(t, reading) {
  const row = { t, cpu: reading.cpu_usage_percent, memory: reading.memory_usage_percent };
  reading.gpus.forEach((gpu, index) => {
    row[`gpu${index}`] = gpu.utilization_percent;
    row[`gpumem${index}`] = gpu.memory_total_mb ? (100 * gpu.memory_used_mb) / gpu.memory_total_mb : null;
  });
  return row;
}

/** The readings kept so far plus `readings` newer than the last, within `seconds` of the newest. */
function addReadings(previous, readings, seconds) {
  let rows = previous ? previous.rows : [];
  let gpus = previous ? previous.gpus : [];
  for (const reading of readings) {
    if (rows.length && rows.at(-1).t >= reading.t) continue;
    rows = [...rows, machineRow(reading.t, reading)];
    gpus = reading.gpus.map((gpu) => gpu.name);
  }
  const newest = rows.length ? rows.at(-1).t : 0;
  rows = rows.filter((row) => row.t > newest - seconds);
  return previous && rows === previous.rows ? previous : { rows, gpus };
}

function Live() {
  const [sample, setSample] = useState(null);
  const [history, setHistory] = useState(null);
  const [seconds, setSeconds] = useState(600);
  const [error, setError] = useState("");
  const seeded = useRef(false);

  usePolling(async () => {
    try {
      // The server keeps the last minutes of readings: the chart is full from the first paint.
      const [metrics, past] = await Promise.all([
        api.get("/metrics"),
        seeded.current ? null : api.get("/metrics/history"),
      ]);
      const keep = past ? past.window_seconds : seconds;
      if (past) {
        seeded.current = true;
        setSeconds(keep);
      }
      const readings = [...(past ? past.samples : []), { ...metrics, t: metrics.sampled_at }];
      setHistory((previous) => addReadings(previous, readings, keep));
      setSample(metrics);
      setError("");
      return true;
    } catch (failure) {
      setError(failure.status === 403 ? "The live view of the machine is for administrators." : failure.message);
      return failure.status !== 403;
    }
  }, POLL_MS);

  const rows = history?.rows || [];
  const gpus = history?.gpus || [];
  const column = (name) => rows.map((row) => row[name] ?? null);
  const machine = [column("t"), column("cpu"), column("memory")];
  const gpuData = [column("t"), ...gpus.flatMap((_, index) => [column(`gpu${index}`), column(`gpumem${index}`)])];
  const gpuSeries = gpus.flatMap((name, index) => [
    { label: `GPU ${index} ${name} use`, colour: index },
    { label: `GPU ${index} memory`, colour: index, dashed: true },
  ]);
  const minutes = Math.round(seconds / 60);

  return (
    <section class="section" aria-labelledby="live-title">
      <h2 id="live-title">Machine, live</h2>
      {error && <p role="alert" class="error">{error}</p>}
      {sample && (
        <>
          <dl class="stats">
            <div><dt>CPU</dt><dd>{num(sample.cpu_usage_percent)} %</dd></div>
            <div><dt>Memory</dt><dd>{num(sample.memory_usage_percent)} % ({num(sample.memory_used_mb / 1024)} of {num(sample.memory_total_mb / 1024)} GB)</dd></div>
            <div><dt>Disk</dt><dd>{num(sample.disk_usage_percent)} % ({num(sample.disk_used_gb)} of {num(sample.disk_total_gb)} GB)</dd></div>
            <div><dt>Server process</dt><dd>{num(sample.process_rss_mb)} MB, {num(sample.process_cpu_percent)} % CPU</dd></div>
            <div><dt>Up for</dt><dd>{span(sample.uptime_seconds)}</dd></div>
            <div><dt>Database connections</dt><dd>{sample.database_pool.in_use} in use, {sample.database_pool.idle} idle</dd></div>
            {sample.gpus.map((gpu, index) => (
              <div key={index}>
                <dt>GPU {index}: {gpu.name}</dt>
                <dd>
                  {num(gpu.utilization_percent)} %, {num(gpu.memory_used_mb)} of {num(gpu.memory_total_mb)} MB
                  {gpu.temperature_c != null && `, ${num(gpu.temperature_c)} °C`}
                </dd>
              </div>
            ))}
          </dl>
          <h3>CPU and memory, last {minutes} minutes</h3>
          <LineChart
            summary={`CPU and memory use over the last ${minutes} minutes; now CPU ${num(sample.cpu_usage_percent)} %, memory ${num(sample.memory_usage_percent)} %`}
            data={machine}
            series={[{ label: "CPU" }, { label: "Memory" }]}
            timeWindow={seconds}
            format={percent}
            yRange={[0, 100]}
          />
          {gpus.length > 0 ? (
            <>
              <h3>GPUs, last {minutes} minutes</h3>
              <LineChart summary={`GPU use and GPU memory over the last ${minutes} minutes`} data={gpuData} series={gpuSeries} timeWindow={seconds} format={percent} yRange={[0, 100]} />
            </>
          ) : (
            <p class="muted">No GPU found (NVIDIA GPUs are read through NVML).</p>
          )}
        </>
      )}
    </section>
  );
}

/** The newest benchmark figures of each model. */
function ModelSpeeds({ runs }) {
  const latest = new Map();
  for (const run of runs) {
    for (const result of run.results || []) {
      if (!latest.has(result.model) && result.aggregate?.succeeded) latest.set(result.model, { run, result });
    }
  }
  if (!latest.size) return <p class="muted">Run a benchmark to measure each model's time to first token and speed.</p>;
  return (
    <div class="table-wrap">
      <table>
        <caption>Time to first token and tokens/s per model (newest benchmark of each)</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col" class="number">TTFT p50</th>
            <th scope="col" class="number">TTFT p95</th>
            <th scope="col" class="number">Tokens/s (mean)</th>
            <th scope="col">Measured</th>
          </tr>
        </thead>
        <tbody>
          {[...latest.entries()].map(([model, { run, result }]) => (
            <tr key={model}>
              <th scope="row"><code>{model}</code></th>
              <td class="number">{duration(result.aggregate.ttft_ms?.p50)}</td>
              <td class="number">{duration(result.aggregate.ttft_ms?.p95)}</td>
              <td class="number">{num(result.aggregate.tokens_per_second?.mean)}</td>
              <td>{when(run.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function BenchmarkForm({ models, running, onStart }) {
  const [fields, setFields] = useState({ model: "", iterations: "3", max_tokens: "64", prompt: "Write one sentence about the sea." });
  const [error, setError] = useState("");
  const field = (name) => ({
    name,
    value: fields[name],
    onInput: (event) => setFields((current) => ({ ...current, [name]: event.currentTarget.value })),
  });
  const submit = async (event) => {
    event.preventDefault();
    setError("");
    try {
      const started = await api.post("/benchmark/llm", {
        model_name: fields.model || undefined,
        iterations: Number(fields.iterations),
        max_tokens: Number(fields.max_tokens),
        prompt: fields.prompt,
        background: true,
      });
      onStart(started.id);
    } catch (failure) {
      setError(failure.message);
    }
  };
  return (
    <form class="bench-form" onSubmit={submit}>
      <div class="field">
        <label for="bench-model">Model</label>
        <select id="bench-model" {...field("model")}>
          <option value="">Server default</option>
          {models.map((id) => <option key={id} value={id}>{id}</option>)}
        </select>
      </div>
      <label>
        Iterations
        <input type="number" min={1} max={100} required {...field("iterations")} />
      </label>
      <label>
        Max tokens
        <input type="number" min={1} max={4096} required {...field("max_tokens")} />
      </label>
      <label class="wide">
        Prompt
        <textarea rows={2} required maxLength={100000} {...field("prompt")} />
      </label>
      <button type="submit" class="primary" disabled={running}>Run benchmark</button>
      {error && <p role="alert" class="error">{error}</p>}
    </form>
  );
}

function RunResults({ run }) {
  const results = run.results || [];
  const most = Math.max(0, ...results.map((result) => result.iterations.length));
  const xs = Array.from({ length: most }, (_, index) => index + 1);
  const measure = (name) => [
    xs,
    ...results.map((result) => xs.map((x) => result.iterations.find((item) => item.iteration === x)?.[name] ?? null)),
  ];
  const series = results.map((result) => ({ label: result.model }));
  return (
    <div class="results">
      <h3>Run of {when(run.created_at)}: {run.status}</h3>
      {run.error && <p class="error">{run.error}</p>}
      {results.length > 0 && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="sr-only">Results per model</caption>
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col" class="number">Succeeded</th>
                  <th scope="col" class="number">TTFT mean</th>
                  <th scope="col" class="number">TTFT p95</th>
                  <th scope="col" class="number">Total mean</th>
                  <th scope="col" class="number">Tokens/s mean</th>
                </tr>
              </thead>
              <tbody>
                {results.map((result) => (
                  <tr key={result.model}>
                    <th scope="row"><code>{result.model}</code></th>
                    <td class="number">{result.aggregate.succeeded} of {result.aggregate.iterations}</td>
                    <td class="number">{duration(result.aggregate.ttft_ms?.mean)}</td>
                    <td class="number">{duration(result.aggregate.ttft_ms?.p95)}</td>
                    <td class="number">{duration(result.aggregate.total_ms?.mean)}</td>
                    <td class="number">{num(result.aggregate.tokens_per_second?.mean)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {most > 0 && (
            <div class="chart-pair">
              <div>
                <h4>Time to first token per iteration</h4>
                <LineChart summary="Time to first token of each run, in milliseconds" data={measure("ttft_ms")} series={series} unit=" ms" height={200} />
              </div>
              <div>
                <h4>Tokens per second per iteration</h4>
                <LineChart summary="Tokens per second of each run" data={measure("tokens_per_second")} series={series} height={200} />
              </div>
            </div>
          )}
        </>
      )}
    </div>
  );
}

function Benchmark() {
  const [models, setModels] = useState([]);
  const [runs, setRuns] = useState([]);
  const [selected, setSelected] = useState(null);
  const [waiting, setWaiting] = useState(null);
  const [error, setError] = useState("");

  const loadRuns = () =>
    api.get(withQuery("/benchmark/runs", { limit: 50 })).then(
      (list) => setRuns(list.items),
      (failure) => setError(failure.message),
    );
  useEffect(() => {
    api.get("/v1/models").then(
      (list) => setModels(list.data.map((model) => model.id)),
      () => setModels([]),
    );
    loadRuns();
  }, []);

  usePolling(async () => {
    if (!waiting) return true;
    try {
      const run = await api.get(`/benchmark/runs/${encodeURIComponent(waiting)}`);
      if (run.status !== "running") {
        setWaiting(null);
        setSelected(run.id);
        loadRuns();
      }
    } catch (failure) {
      setWaiting(null);
      setError(failure.message);
    }
    return true;
  }, 1500);

  const shown = runs.find((run) => run.id === selected) || runs.find((run) => run.status !== "running");
  return (
    <section class="section" aria-labelledby="bench-title">
      <h2 id="bench-title">Benchmark</h2>
      <BenchmarkForm
        models={models}
        running={Boolean(waiting)}
        onStart={(id) => {
          setError("");
          setWaiting(id);
          loadRuns();
        }}
      />
      <p role="status" class="muted">{waiting ? "The benchmark runs…" : ""}</p>
      {error && <p role="alert" class="error">{error}</p>}
      <ModelSpeeds runs={runs} />
      {shown && <RunResults run={shown} />}
      {runs.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption>Benchmark runs</caption>
            <thead>
              <tr>
                <th scope="col">Started</th>
                <th scope="col">Models</th>
                <th scope="col" class="number">Iterations</th>
                <th scope="col">State</th>
                <th scope="col"><span class="sr-only">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={run.id} class={shown === run ? "current" : undefined}>
                  <td id={`bench-${run.id}`}>{when(run.created_at)}</td>
                  <td>{(run.results || []).map((result) => result.model).join(", ") || run.params?.model_name || "–"}</td>
                  <td class="number">{run.params?.iterations ?? "–"}</td>
                  <td>{run.status}</td>
                  <td>
                    <button type="button" class="small" disabled={run.status === "running" || shown === run} onClick={() => setSelected(run.id)} aria-describedby={`bench-${run.id}`}>
                      Show
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function Dashboard({ isAdmin }) {
  return (
    <main id="main" tabIndex={-1} class="page dashboard">
      <h1>Dashboard</h1>
      {isAdmin ? <Live /> : <p class="muted">The live view of the machine is for administrators.</p>}
      <Latency />
      <Benchmark />
    </main>
  );
}
