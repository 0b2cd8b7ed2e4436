// A /chat run's events folded into what the page shows while its answer grows.
//
// The object is mutated in place as events arrive (a stream may bring hundreds a second) and its
// listeners are told; the view that shows it redraws at most once per animation frame.

export function newRun() {
  return {
    id: null,
    sessionId: null,
    lastEventId: 0,
    steps: [], // {agent, text, next, ended}: one per agent step (one without agent for a direct answer)
    status: "running", // then "done", "error" or "cancelled"
    response: "",
    error: null,
    final: null, // the final event: model, usage, ttft_ms, tokens_per_second
    listeners: new Set(),
  };
}

export function subscribe(run, listener) {
  run.listeners.add(listener);
  return () => run.listeners.delete(listener);
}

export function notify(run) {
  for (const listener of run.listeners) listener();
}

function currentStep(run, agent) {
  let step = run.steps.at(-1);
  if (!step || step.ended || step.agent !== agent) {
    step = { agent, text: "", next: null, ended: false };
    run.steps.push(step);
  }
  return step;
}

/** Folds one event ({id, data}) into the run. */
export function applyEvent(run, { id, data }) {
  if (Number.isFinite(id)) run.lastEventId = id;
  switch (data.type) {
    case "run":
      run.id = data.run_id;
      run.sessionId = data.session_id;
      break;
    case "agent_start":
      run.steps.push({ agent: data.agent ?? null, text: "", next: null, ended: false });
      break;
    case "delta":
      currentStep(run, data.agent ?? null).text += data.delta ?? "";
      break;
    case "decision":
      currentStep(run, data.agent ?? null).next = data.next;
      break;
    case "agent_end":
      currentStep(run, data.agent ?? null).ended = true;
      break;
    case "final":
      run.status = "done";
      run.response = data.response ?? "";
      run.final = data;
      break;
    case "cancelled":
      run.status = "cancelled";
      run.response = data.response ?? "";
      break;
    case "error":
      run.status = "error";
      run.error = data.error || "The answer failed.";
      break;
    default:
      break;
  }
  notify(run);
}

/** The text to show: the growing step while the run goes on, then the answer. */
export function shownText(run) {
  if (run.status === "running") return run.steps.at(-1)?.text ?? "";
  return run.response;
}

/** Whether the steps came from a pipeline of agents (a direct answer has one step with no agent). */
export function hasAgents(run) {
  return run.steps.some((step) => step.agent);
}
