// Which agent steps (GET /sessions/{id}/agent-states) belong to which assistant answer.
//
// A message does not name its run, so the steps are grouped by request_id (one group per run) and
// each group goes to the first assistant answer stored at or after the group's first step (none yet:
// the run still goes on). Steps without a time (an import may lack them) go, group by group, to the
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
  return traces;
}

/** `fresh` with the objects of `known` kept where they describe the same step (so views can skip them). */
export function keepKnown(known, fresh) {
  const index = new Map(known.map((state) => [`${state.request_id}/${state.step}`, state]));
  return fresh.map((state) => {
    const old = index.get(`${state.request_id}/${state.step}`);
    return old && old.status === state.status && old.output === state.output ? old : state;
  });
}
