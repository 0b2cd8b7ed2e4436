// The sign-in page: a session cookie from POST /auth/session.

import { useState } from "preact/hooks";
import { api } from "../api.js";

export function Login({ onSignedIn }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    setBusy(true);
    setError("");
    try {
      const me = await api.post(
        "/auth/session",
        { username: form.username.value.trim(), password: form.password.value },
        { signIn: true },
      );
      onSignedIn(me);
    } catch (failure) {
      setError(failure.status === 429 ? `Too many attempts: ${failure.message}` : failure.message);
      setBusy(false);
      form.password.select();
    }
  };

  return (
    <main id="main" class="login">
      <form class="card" onSubmit={submit}>
        <h1>AI-Lab</h1>
        <p class="muted">Sign in to chat with your models.</p>
        <label>
          Username
          <input name="username" autocomplete="username" required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required />
        </label>
        <div role="alert" class="error">{error}</div>
        <button type="submit" class="primary" disabled={busy}>Sign in</button>
      </form>
    </main>
  );
}
