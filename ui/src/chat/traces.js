// Which agent steps (GET /sessions/{id}/agent-states) belong to which assistant answer.
//
// A step and the answer of its turn both name their run (run_id): that decides. Steps stored before
// runs existed (imported, or from an older server) have no run: they are grouped by request_id (one
// group per turn) and each group goes to the first assistant answer stored at or after the group's
// first step (none yet: that turn still goes on). Steps with no time either go, group by group, to the
// answers that have a thought process, in order.

const time = (value) => (value ? Date.parse(value) : NaN);

function groups(states) {
  const byRun = new Map();
  for (const state of states) {
    const key = state.request_id || `step-group-${byRun.size}`;
    if (!byRun.has(key)) byRun.set(key, []);
    byRun.get(key).push(state);
  }
  return [...byRun.values()];
}

/** A Map from an assistant message's id to its steps. */
export function matchTraces(messages, states) {
  const traces = new Map();
  if (!states.length) return traces;
  const answers = messages.filter((message) => message.role === "assistant" && message.id != null);
  const answerOfRun = new Map(answers.filter((message) => message.run_id).map((message) => [message.run_id, message]));
  const legacy = [];
  for (const state of states) {
    if (!state.run_id) {
      legacy.push(state);
      continue;
    }
    const answer = answerOfRun.get(state.run_id); // none: the run still goes on
    if (answer) traces.set(answer.id, [...(traces.get(answer.id) || []), state]);
  }
  if (legacy.length) matchByTime(answers.filter((message) => !message.run_id), legacy, traces);
  return traces;
}

function matchByTime(answers, states, traces) {
  const timed = answers.every((message) => !Number.isNaN(time(message.created_at)));
  const unmatched = [];
  for (const group of groups(states)) {
    const start = time(group[0].created_at);
    if (!timed || Number.isNaN(start)) {
      unmatched.push(group);
      continue;
    }
    // none: the steps of a run whose answer is not stored yet
    const answer = answers.find((message) => time(message.created_at) >= start);
    if (answer) traces.set(answer.id, [...(traces.get(answer.id) || []), ...group]);
  }
  const withThoughts = answers.filter((message) => message.thought_process && !traces.has(message.id));
  unmatched.forEach((group, index) => {
    if (withThoughts[index]) traces.set(withThoughts[index].id, group);
  });
}

/** `fresh` with the objects of `known` kept where they describe the same step (so views can skip them). */
export function keepKnown(known, fresh) {
  const key = (state) => `${state.run_id || state.request_id}/${state.step}`;
  const index = new Map(known.map((state) => [key(state), state]));
  return fresh.map((state) => {
    const old = index.get(key(state));
    return old && old.status === state.status && old.output === state.output ? old : state;
  });
}
