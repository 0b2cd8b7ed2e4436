// The page frame: who is signed in, the main navigation, and the page the hash names.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, whenSignedOut } from "./api.js";
import { navigate, useRoute } from "./router.js";
import { Login } from "./pages/login.jsx";
import { Chat } from "./pages/chat.jsx";
import { Keys } from "./pages/keys.jsx";
import { Users } from "./pages/users.jsx";
import { Tokens } from "./pages/tokens.jsx";
import { Lazy } from "./components/lazy.jsx";

const loadDashboard = () => import("./pages/dashboard.jsx").then((module) => module.Dashboard);

const TITLES = { chat: "Chat", keys: "Keys", users: "Users", tokens: "API tokens", dashboard: "Dashboard" };

export function App() {
  const [user, setUser] = useState(undefined); // undefined: not known yet; null: signed out
  const [failure, setFailure] = useState("");
  const route = useRoute();
  const returnTo = useRef(null);

  const whoAmI = () => {
    setFailure("");
    // Answers {"user": null} when nobody is signed in (no 401 in the console of a first visit).
    api.get("/auth/session", { signIn: true }).then(
      (state) => setUser(state.user),
      (error) => (error.status === 401 ? setUser(null) : setFailure(error.message)),
    );
  };
  useEffect(() => {
    whenSignedOut(() => setUser(null));
    whoAmI();
  }, []);

  useEffect(() => {
    if (user === null && route.page !== "login") {
      returnTo.current = location.hash;
      navigate("login", null, { replace: true });
    } else if (user && route.page === "login") {
      navigate("chat", null, { replace: true });
    }
  }, [user, route.page]);

  useEffect(() => {
    document.title = user ? `${TITLES[route.page] || "Chat"} · AI-Lab` : "Sign in · AI-Lab";
  }, [user, route.page]);

  // a new page takes the focus, so that keyboard and screen reader users start at its top
  const shownPage = useRef(null);
  useEffect(() => {
    if (!user) return;
    if (shownPage.current && shownPage.current !== route.page) document.getElementById("main")?.focus();
    shownPage.current = route.page;
  }, [user, route.page]);

  if (failure) {
    return (
      <main class="centered">
        <p role="alert">The server cannot be reached: {failure}</p>
        <button type="button" onClick={whoAmI}>Try again</button>
      </main>
    );
  }
  if (user === undefined) return <main class="centered" aria-busy="true">Loading…</main>;
  if (user === null) {
    const signedIn = (me) => {
      setUser(me);
      const target = returnTo.current;
      returnTo.current = null;
      if (target && !target.startsWith("#/login")) location.replace(target);
    };
    return <Login onSignedIn={signedIn} />;
  }

  const signOut = async () => {
    try {
      await api.post("/auth/logout", {});
    } finally {
      returnTo.current = null; // the next one to sign in starts afresh
      setUser(null);
      navigate("login", null, { replace: true });
    }
  };
  return (
    <div class="frame">
      <Header user={user} page={route.page} onSignOut={signOut} />
      <Page user={user} route={route} />
    </div>
  );
}

function Header({ user, page, onSignOut }) {
  const isAdmin = user.role === "admin";
  const links = [
    ["chat", "Chat"],
    ["keys", "Keys"],
    ["dashboard", "Dashboard"],
    ...(isAdmin ? [["users", "Users"]] : []),
    ["tokens", "API tokens"],
  ];
  return (
    <header class="topbar">
      <a class="skip" href="#main" onClick={skipToMain}>Skip to content</a>
      <span class="brand">AI-Lab</span>
      <nav aria-label="Main">
        <ul>
          {links.map(([name, label]) => (
            <li key={name}>
              <a href={`#/${name}`} aria-current={page === name ? "page" : undefined}>{label}</a>
            </li>
          ))}
        </ul>
      </nav>
      <div class="who">
        <span class="who-name" title={`Signed in as ${user.name ?? user.username}`}>{user.name ?? user.username}</span>
        <button type="button" onClick={onSignOut}>Sign out</button>
      </div>
    </header>
  );
}

function skipToMain(event) {
  event.preventDefault();
  document.getElementById("main")?.focus();
}

function Page({ user, route }) {
  const isAdmin = user.role === "admin";
  switch (route.page) {
    case "keys":
      return <Keys isAdmin={isAdmin} />;
    case "users":
      return isAdmin ? <Users /> : <Tokens />;
    case "tokens":
      return <Tokens />;
    case "dashboard":
      return <Lazy load={loadDashboard} props={{ isAdmin }} />;
    default:
      return <Chat sessionId={route.page === "chat" ? route.id : null} />;
  }
}
