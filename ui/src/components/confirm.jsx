// A button whose action needs a second, explicit click: "Delete" turns into "Yes, delete" / "Cancel".

import { useEffect, useRef, useState } from "preact/hooks";

/** `label`: the button's full name (what it does to what), where its text alone is too short. */
export function ConfirmButton({ children, label, confirm, question, onConfirm, disabled }) {
  const [asking, setAsking] = useState(false);
  const yes = useRef(null);
  const first = useRef(null);
  const asked = useRef(false);
  useEffect(() => {
    if (asking) yes.current?.focus();
    else if (asked.current) first.current?.focus();
    asked.current = asking;
  }, [asking]);

  if (!asking) {
    return (
      <button type="button" class="small" ref={first} aria-label={label} disabled={disabled} onClick={() => setAsking(true)}>
        {children}
      </button>
    );
  }
  return (
    <span class="confirm" onKeyDown={(event) => event.key === "Escape" && setAsking(false)}>
      <span>{question}</span>
      <button
        type="button"
        class="small danger"
        ref={yes}
        onClick={async () => {
          await onConfirm();
          setAsking(false);
        }}
      >
        {confirm}
      </button>
      <button type="button" class="small" onClick={() => setAsking(false)}>Cancel</button>
    </span>
  );
}
