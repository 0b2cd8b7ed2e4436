// The agent trace of an answer, folded by default: who said what, how each step was routed, timings.

import { useState } from "preact/hooks";
import { duration } from "../format.js";

function Step({ step }) {
  const facts = [
    step.model,
    step.prompt_tokens != null && `${step.prompt_tokens} tokens in`,
    step.completion_tokens != null && `${step.completion_tokens} out`,
    step.ttft_ms != null && `first token ${duration(step.ttft_ms)}`,
    step.duration_ms != null && `took ${duration(step.duration_ms)}`,
    step.status && step.status !== "done" && step.status,
  ].filter(Boolean);
  return (
    <li>
      <p class="step-head">
        <strong>{step.agent}</strong>
        {step.decision && (
          <span>
            {" "}→ {step.decision}
            {step.routed_by && <span class="muted"> (routed by {step.routed_by})</span>}
          </span>
        )}
      </p>
      {facts.length > 0 && <p class="step-facts muted">{facts.join(" · ")}</p>}
      {step.output && <div class="step-output">{step.output}</div>}
    </li>
  );
}

/** The stored steps of an answer (GET /sessions/{id}/agent-states). */
export function Trace({ steps }) {
  const [open, setOpen] = useState(false);
  const total = steps.reduce((sum, step) => sum + (step.duration_ms || 0), 0);
  return (
    <details class="trace" onToggle={(event) => setOpen(event.currentTarget.open)}>
      <summary>
        Agent trace: {steps.length} {steps.length === 1 ? "step" : "steps"}
        {total > 0 && `, ${duration(total)}`}
      </summary>
      {open && <ol>{steps.map((step) => <Step key={`${step.request_id}/${step.step}`} step={step} />)}</ol>}
    </details>
  );
}

/** The steps of a run as its events tell them, while it goes on. */
export function LiveTrace({ steps }) {
  return (
    <details class="trace">
      <summary>Agent trace: {steps.length} {steps.length === 1 ? "step" : "steps"} so far</summary>
      <ol>
        {steps.map((step, index) => (
          <li key={index}>
            <p class="step-head">
              <strong>{step.agent}</strong>
              {step.next && <span> → {step.next}</span>}
              {!step.ended && <span class="muted"> (writing)</span>}
            </p>
            {step.text && <div class="step-output">{step.text}</div>}
          </li>
        ))}
      </ol>
    </details>
  );
}

/** A stored thought process without steps (an answer imported from AI-Lab v2). */
export function ThoughtProcess({ text }) {
  return (
    <details class="trace">
      <summary>Thought process</summary>
      <div class="step-output">{text}</div>
    </details>
  );
}
