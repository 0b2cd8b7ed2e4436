// The chat page: the sessions sidebar beside the conversation and the message box.

import { useMemo, useRef, useState } from "preact/hooks";
import { attachmentName, download, send, withQuery } from "../api.js";
import { useChat } from "../chat/useChat.js";
import { useSessions } from "../chat/useSessions.js";
import { Composer } from "../components/composer.jsx";
import { Conversation } from "../components/conversation.jsx";
import { SessionList } from "../components/sessionList.jsx";

const remembered = (name) => localStorage.getItem(`ailab.${name}`) || "";

export function Chat({ sessionId }) {
  const sessions = useSessions();
  const chat = useChat(sessionId, { onSession: sessions.reload, onRunEnd: sessions.reload });
  const [panelOpen, setPanelOpen] = useState(false);
  const [notice, setNotice] = useState("");
  const [choice, setChoice] = useState(() => ({ model: remembered("model"), pipeline: remembered("pipeline") }));
  const busy = chat.live !== null;

  // stable actions for the messages (which render again only when they change)
  const latest = useRef(null);
  latest.current = { chat, choice };
  const actions = useMemo(
    () => ({
      send: (text, files) => latest.current.chat.send(text, { ...latest.current.choice, files }),
      regenerate: () => {
        const { chat: current, choice: chosen } = latest.current;
        const question = current.messages.findLast((message) => message.role === "user");
        if (question) current.send(question.content, { ...chosen, files: question.files });
      },
    }),
    [],
  );

  const choose = (name, value) => {
    localStorage.setItem(`ailab.${name}`, value);
    setChoice((current) => ({ ...current, [name]: value }));
  };

  const exportAs = async (format) => {
    setNotice("");
    try {
      const response = await send("GET", withQuery(`/sessions/${encodeURIComponent(sessionId)}/export`, { format }));
      const json = format === "json";
      const fallback = `session-${sessionId}.${json ? "json" : "md"}`;
      download(await response.text(), attachmentName(response, fallback), json ? "application/json" : "text/markdown");
    } catch (failure) {
      setNotice(`Export failed: ${failure.message}`);
    }
  };

  const stopOnEscape = (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    if (busy) chat.stop();
    else if (panelOpen) setPanelOpen(false);
  };

  const listed = sessions.items.find((item) => item.id === sessionId);
  const title = sessionId ? listed?.title || chat.session?.title || "Chat" : "New chat";
  const error = notice || chat.error;
  return (
    <main id="main" tabIndex={-1} class="chat" onKeyDown={stopOnEscape}>
      <SessionList
        sessions={sessions}
        currentId={sessionId}
        open={panelOpen}
        onClose={() => setPanelOpen(false)}
        onError={setNotice}
      />
      <section class="pane">
        <div class="pane-head">
          <button
            type="button"
            class="sessions-toggle"
            aria-expanded={panelOpen ? "true" : "false"}
            aria-controls="sessions"
            onClick={() => setPanelOpen(!panelOpen)}
          >
            Sessions
          </button>
          <h1 id="chat-title">{title}</h1>
          {sessionId && (
            <div class="exports">
              <button type="button" class="small" onClick={() => exportAs("markdown")}>Export Markdown</button>
              <button type="button" class="small" onClick={() => exportAs("json")}>Export JSON</button>
            </div>
          )}
        </div>
        <Conversation chat={chat} actions={actions} busy={busy} loading={chat.loading} />
        {error && <p role="alert" class="error pane-error">{error}</p>}
        <Composer
          busy={busy}
          choice={choice}
          onChoose={choose}
          onSend={(text, files) => chat.send(text, { ...choice, files })}
          onStop={chat.stop}
        />
        <div role="status" aria-live="polite" class="sr-only">{chat.announcement}</div>
      </section>
    </main>
  );
}
