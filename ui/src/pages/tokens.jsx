// API tokens of the signed-in user: create one (its secret shown once), list them, revoke one.

import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { when } from "../format.js";
import { copyText } from "../markdown.js";
import { ConfirmButton } from "../components/confirm.jsx";

export function Tokens() {
  return (
    <main id="main" tabIndex={-1} class="page">
      <h1>API tokens</h1>
      <TokensSection />
    </main>
  );
}

export function TokensSection() {
  const [items, setItems] = useState(null);
  const [error, setError] = useState("");
  const [name, setName] = useState("");
  const [created, setCreated] = useState(null);
  const [copied, setCopied] = useState("");

  const load = () =>
    api.get("/auth/tokens").then(
      (list) => setItems(list.items),
      (failure) => setError(failure.message),
    );
  useEffect(() => {
    load();
  }, []);

  const create = async (event) => {
    event.preventDefault();
    setError("");
    try {
      const token = await api.post("/auth/tokens", { name: name.trim() });
      setCreated(token);
      setCopied("");
      setName("");
      load();
    } catch (failure) {
      setError(failure.message);
    }
  };

  const revoke = async (token) => {
    setError("");
    try {
      await api.del(`/auth/tokens/${encodeURIComponent(token.id)}`);
      load();
    } catch (failure) {
      setError(failure.message);
    }
  };

  return (
    <section aria-labelledby="tokens-title" class="section">
      <h2 id="tokens-title">Your API tokens</h2>
      <p class="muted">
        A token lets a script or an OpenAI client act as you (<code>Authorization: Bearer …</code>). It is shown
        once, when you create it.
      </p>
      <form class="row-form" onSubmit={create}>
        <label>
          Token name
          <input value={name} maxLength={64} required onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <button type="submit" class="primary" disabled={!name.trim()}>Create token</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {created && (
        <div class="card created" role="status">
          <p>
            Your new token <strong>{created.name}</strong>. Copy it now: it will not be shown again.
          </p>
          <p class="secret">
            <code>{created.token}</code>
          </p>
          <button
            type="button"
            class="small"
            onClick={() => copyText(created.token).then(() => setCopied("Copied."), () => setCopied("Copy failed: select the token and copy it."))}
          >
            Copy token
          </button>{" "}
          <button type="button" class="small" onClick={() => setCreated(null)}>Done</button>
          <span class="muted"> {copied}</span>
        </div>
      )}
      {items && !items.length && <p class="muted">You have no API tokens.</p>}
      {items && items.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Your API tokens</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Starts with</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
                <th scope="col"><span class="sr-only">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {items.map((token) => (
                <tr key={token.id}>
                  <th scope="row">{token.name}</th>
                  <td><code>{token.prefix}…</code></td>
                  <td>{when(token.created_at)}</td>
                  <td>{token.last_used_at ? when(token.last_used_at) : "never"}</td>
                  <td>{token.revoked_at ? `revoked ${when(token.revoked_at)}` : "active"}</td>
                  <td>
                    {!token.revoked_at && (
                      <ConfirmButton
                        label={`Revoke ${token.name}`}
                        question={`Revoke ${token.name}?`}
                        confirm="Yes, revoke"
                        onConfirm={() => revoke(token)}
                      >
                        Revoke
                      </ConfirmButton>
                    )}
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
