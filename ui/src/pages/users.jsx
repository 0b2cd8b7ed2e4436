// Users (admins): list, add with a role, change role, password or access, delete; then the
// signed-in user's own API tokens.

import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { when } from "../format.js";
import { ConfirmButton } from "../components/confirm.jsx";
import { TokensSection } from "./tokens.jsx";

const userPath = (user) => `/users/${encodeURIComponent(user.username)}`;

function AddUser({ onAdded }) {
  const [error, setError] = useState("");
  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    setError("");
    try {
      const user = await api.post("/users", {
        username: form.username.value.trim(),
        password: form.password.value,
        role: form.role.value,
      });
      form.reset();
      onAdded(user);
    } catch (failure) {
      setError(failure.message);
    }
  };
  return (
    <form class="row-form" onSubmit={submit} aria-labelledby="add-user-title">
      <h2 id="add-user-title" class="sr-only">Add a user</h2>
      <label>
        Username
        <input name="username" autocomplete="off" required maxLength={64} />
      </label>
      <label>
        Password
        <input name="password" type="password" autocomplete="new-password" required />
      </label>
      <div class="field">
        <label for="new-user-role">Role</label>
        <select id="new-user-role" name="role">
          <option value="user">user</option>
          <option value="admin">admin</option>
        </select>
      </div>
      <button type="submit" class="primary">Add user</button>
      {error && <p role="alert" class="error">{error}</p>}
    </form>
  );
}

function PasswordForm({ user, onSave, onCancel }) {
  const [value, setValue] = useState("");
  const input = useRef(null);
  useEffect(() => input.current.focus(), []);
  return (
    <form
      class="inline-form"
      onSubmit={(event) => {
        event.preventDefault();
        onSave(value);
      }}
      onKeyDown={(event) => event.key === "Escape" && onCancel()}
    >
      <input type="text" autocomplete="username" value={user.username} hidden readOnly />
      <input
        type="password"
        autocomplete="new-password"
        aria-label={`New password for ${user.username}`}
        value={value}
        required
        ref={input}
        onInput={(event) => setValue(event.currentTarget.value)}
      />
      <button type="submit" class="small primary" disabled={!value}>Save</button>
      <button type="button" class="small" onClick={onCancel}>Cancel</button>
    </form>
  );
}

function UserRow({ user, onChange, onDelete }) {
  const [settingPassword, setSettingPassword] = useState(false);
  const nameId = `user-${user.id}`;
  return (
    <tr>
      <th scope="row" id={nameId}>{user.username}</th>
      <td>
        <select aria-label={`Role of ${user.username}`} value={user.role} onChange={(event) => onChange(user, { role: event.currentTarget.value })}>
          <option value="user">user</option>
          <option value="admin">admin</option>
        </select>
      </td>
      <td>{user.disabled ? "disabled" : "active"}</td>
      <td>{when(user.created_at)}</td>
      <td class="row-actions">
        <button
          type="button"
          class="small"
          aria-describedby={nameId}
          onClick={() => onChange(user, { disabled: !user.disabled })}
        >
          {user.disabled ? "Enable" : "Disable"}
        </button>
        {settingPassword ? (
          <PasswordForm
            user={user}
            onCancel={() => setSettingPassword(false)}
            onSave={async (password) => {
              if (await onChange(user, { password })) setSettingPassword(false);
            }}
          />
        ) : (
          <button type="button" class="small" aria-describedby={nameId} onClick={() => setSettingPassword(true)}>
            Set password
          </button>
        )}
        <ConfirmButton
          label={`Delete ${user.username}`}
          question={`Delete ${user.username} and all their chats?`}
          confirm="Yes, delete"
          onConfirm={() => onDelete(user)}
        >
          Delete
        </ConfirmButton>
      </td>
    </tr>
  );
}

export function Users() {
  const [users, setUsers] = useState(null);
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");

  const load = () =>
    api.get("/users").then(
      (list) => setUsers(list.items),
      (failure) => setError(failure.message),
    );
  useEffect(() => {
    load();
  }, []);

  const change = async (user, patch) => {
    setError("");
    setNotice("");
    try {
      const updated = await api.patch(userPath(user), patch);
      setUsers((current) => current.map((item) => (item.id === updated.id ? updated : item)));
      setNotice(patch.password ? `Password of ${user.username} changed.` : `${user.username} updated.`);
      return true;
    } catch (failure) {
      setError(failure.message);
      load(); // shows the stored values again
      return false;
    }
  };

  const remove = async (user) => {
    setError("");
    setNotice("");
    try {
      await api.del(userPath(user));
      setUsers((current) => current.filter((item) => item.id !== user.id));
      setNotice(`${user.username} deleted.`);
    } catch (failure) {
      setError(failure.message);
    }
  };

  return (
    <main id="main" tabIndex={-1} class="page">
      <h1>Users</h1>
      <AddUser
        onAdded={(user) => {
          setUsers((current) => [...(current || []), user]);
          setNotice(`${user.username} added.`);
        }}
      />
      {error && <p role="alert" class="error">{error}</p>}
      <p role="status" class="muted">{notice}</p>
      {users && (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Users</caption>
            <thead>
              <tr>
                <th scope="col">Username</th>
                <th scope="col">Role</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col"><span class="sr-only">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {users.map((user) => (
                <UserRow key={user.id} user={user} onChange={change} onDelete={remove} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <TokensSection />
    </main>
  );
}
