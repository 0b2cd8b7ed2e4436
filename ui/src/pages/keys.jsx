// Provider keys (admins): every supported service with its masked key; store, test or delete a
// key; rotate the vault's master key.

import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { when } from "../format.js";
import { ConfirmButton } from "../components/confirm.jsx";

/** `NAME=VALUE` lines as an object (blank lines skipped). */
function parseConfig(text) {
  const config = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const equals = trimmed.indexOf("=");
    if (equals < 1) throw new Error(`"${trimmed}" is not NAME=VALUE`);
    config[trimmed.slice(0, equals).trim()] = trimmed.slice(equals + 1).trim();
  }
  return config;
}

function Hint({ format }) {
  if (!format) return null;
  const fields = Object.entries(format.config || {});
  return (
    <div class="muted hint">
      {format.expected && <p>Key: {format.expected}</p>}
      {fields.length > 0 && (
        <ul>
          {fields.map(([field, spec]) => (
            <li key={field}>
              <code>{field}</code>
              {spec.required ? " (required)" : ""}: {spec.help}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Service({ name, stored, format, onChanged }) {
  const [key, setKey] = useState("");
  const [config, setConfig] = useState("");
  const [result, setResult] = useState("");
  const [error, setError] = useState("");
  const fieldId = `key-${name}`;

  const save = async (event) => {
    event.preventDefault();
    setError("");
    setResult("");
    try {
      const body = { service_name: name, api_key: key, config: parseConfig(config) };
      const answer = await api.post("/api-keys", body);
      setKey("");
      setResult(answer.message);
      onChanged();
    } catch (failure) {
      setError(failure.message);
    }
  };

  const test = async () => {
    setError("");
    setResult(`Testing ${name}…`);
    try {
      const answer = await api.post(`/api-keys/${encodeURIComponent(name)}/test`, {});
      setResult(`${name}: ${answer.result}${answer.detail ? ` (${answer.detail})` : ""}`);
      onChanged();
    } catch (failure) {
      setResult("");
      setError(failure.message);
    }
  };

  const remove = async () => {
    setError("");
    setResult("");
    try {
      const answer = await api.del(`/api-keys/${encodeURIComponent(name)}`);
      setResult(answer.message);
      onChanged();
    } catch (failure) {
      setError(failure.message);
    }
  };

  const settings = Object.entries(stored?.config || {});
  return (
    <section class="card service" aria-labelledby={`${fieldId}-title`}>
      <h2 id={`${fieldId}-title`}>{name}</h2>
      <dl class="facts-list">
        <dt>Key</dt>
        <dd>{stored?.masked_key ? <code>{stored.masked_key}</code> : stored ? "none (needs no key)" : "not set"}</dd>
        {stored && (
          <>
            <dt>From</dt>
            <dd>{stored.source === "environment" ? "environment variable" : "vault"}</dd>
            <dt>Last test</dt>
            <dd>{stored.last_test_result ? `${stored.last_test_result}, ${when(stored.last_tested_at)}` : "never"}</dd>
          </>
        )}
        {settings.length > 0 && (
          <>
            <dt>Config</dt>
            <dd>{settings.map(([field, value]) => `${field}=${value}`).join(", ")}</dd>
          </>
        )}
      </dl>
      <Hint format={format} />
      <form class="key-form" onSubmit={save}>
        {/* names the key for password managers (and browsers expect it beside a password field) */}
        <input type="text" autocomplete="username" value={name} hidden readOnly />
        <label>
          API key for {name}
          <input type="password" autocomplete="off" spellcheck={false} value={key} onInput={(event) => setKey(event.currentTarget.value)} />
        </label>
        <label>
          Config for {name}
          <textarea
            rows={2}
            spellcheck={false}
            placeholder="optional: NAME=VALUE, one a line"
            value={config}
            onInput={(event) => setConfig(event.currentTarget.value)}
          />
        </label>
        <div class="actions">
          <button type="submit" class="primary small" aria-label={`Save ${name} key`}>Save</button>
          <button type="button" class="small" aria-label={`Test ${name} key`} disabled={!stored} onClick={test}>Test</button>
          {stored?.source === "vault" && (
            <ConfirmButton label={`Delete ${name} key`} question={`Delete the ${name} key?`} confirm="Yes, delete" onConfirm={remove}>
              Delete
            </ConfirmButton>
          )}
        </div>
      </form>
      <p role="status" class="muted">{result}</p>
      {error && <p role="alert" class="error">{error}</p>}
    </section>
  );
}

function Rotate() {
  const [message, setMessage] = useState("");
  const [error, setError] = useState("");
  const rotate = async () => {
    setMessage("");
    setError("");
    try {
      const answer = await api.post("/api-keys/rotate", {});
      setMessage(answer?.message || "The master key was rotated.");
    } catch (failure) {
      setError(`Rotation failed: ${failure.message}`);
    }
  };
  return (
    <section class="section" aria-labelledby="rotate-title">
      <h2 id="rotate-title">Master key</h2>
      <p class="muted">Rotating re-encrypts every stored key under a new master key.</p>
      <ConfirmButton question="Re-encrypt every key under a new master key?" confirm="Yes, rotate" onConfirm={rotate}>
        Rotate master key
      </ConfirmButton>
      <p role="status" class="muted">{message}</p>
      {error && <p role="alert" class="error">{error}</p>}
    </section>
  );
}

export function Keys({ isAdmin }) {
  const [listing, setListing] = useState(null);
  const [error, setError] = useState("");

  const load = () =>
    api.get("/api-keys").then(
      (answer) => {
        setListing(answer);
        setError("");
      },
      (failure) => setError(failure.message),
    );
  useEffect(() => {
    if (isAdmin) load();
  }, [isAdmin]);

  const stored = new Map((listing?.configured_services || []).map((item) => [item.service_name, item]));
  const names = [...new Set([...(listing?.supported_services || []), ...stored.keys()])];
  return (
    <main id="main" tabIndex={-1} class="page">
      <h1>Provider keys</h1>
      {!isAdmin && <p>Only administrators manage the keys of the model providers.</p>}
      {isAdmin && (
        <>
          <p class="muted">Keys are stored encrypted and never shown again: only their last 4 characters.</p>
          {error && <p role="alert" class="error">{error}</p>}
          <div class="services">
            {names.map((name) => (
              <Service key={name} name={name} stored={stored.get(name)} format={listing?.formats?.[name]} onChanged={load} />
            ))}
          </div>
          <Rotate />
        </>
      )}
    </main>
  );
}
