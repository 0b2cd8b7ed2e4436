// The message box: model and pipeline, the text, Send and Stop. Enter sends, Shift+Enter starts a
// new line, Esc stops the answer.

import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";

function useChoices() {
  const [models, setModels] = useState([]);
  const [pipelines, setPipelines] = useState([]);
  useEffect(() => {
    api.get("/v1/models").then(
      // pipeline/* ids serve the OpenAI-compatible API; here the Pipeline choice says that
      (list) => setModels(list.data.map((model) => model.id).filter((id) => !id.startsWith("pipeline/"))),
      () => setModels([]),
    );
    api.get("/pipelines").then(
      (list) => setPipelines(list.items),
      () => setPipelines([]),
    );
  }, []);
  return { models, pipelines };
}

export function Composer({ busy, choice, onChoose, onSend, onStop }) {
  const { models, pipelines } = useChoices();
  const [text, setText] = useState("");
  const { model, pipeline } = choice;

  const submit = async (event) => {
    event?.preventDefault();
    if (busy || !text.trim()) return;
    const sent = text;
    setText("");
    const accepted = await onSend(sent);
    if (!accepted) setText((current) => current || sent);
  };

  const keys = (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && busy) {
      event.preventDefault();
      onStop();
    }
  };

  return (
    <form class="composer" onSubmit={submit}>
      <div class="choices">
        <div class="field">
          <label for="choice-model">Model</label>
          <select id="choice-model" value={model} onChange={(event) => onChoose("model", event.currentTarget.value)}>
            <option value="">Server default</option>
            {model && models.length > 0 && !models.includes(model) && <option value={model}>{model} (not available now)</option>}
            {models.map((id) => <option key={id} value={id}>{id}</option>)}
          </select>
        </div>
        <div class="field">
          <label for="choice-pipeline">Pipeline</label>
          <select id="choice-pipeline" value={pipeline} onChange={(event) => onChoose("pipeline", event.currentTarget.value)}>
            <option value="">Server default</option>
            {pipeline && pipelines.length > 0 && !pipelines.some((item) => item.name === pipeline) && (
              <option value={pipeline}>{pipeline} (not available now)</option>
            )}
            {pipelines.map((item) => (
              <option key={item.name} value={item.name} title={item.description}>{item.name}</option>
            ))}
          </select>
        </div>
      </div>
      <div class="write">
        <label for="message" class="sr-only">Message</label>
        <textarea
          id="message"
          rows={2}
          placeholder="Write a message (Enter sends, Shift+Enter for a new line)"
          value={text}
          onInput={(event) => setText(event.currentTarget.value)}
          onKeyDown={keys}
        />
        <div class="send">
          <button type="submit" class="primary" disabled={busy || !text.trim()}>Send</button>
          <button type="button" disabled={!busy} onClick={onStop}>Stop</button>
        </div>
      </div>
    </form>
  );
}
