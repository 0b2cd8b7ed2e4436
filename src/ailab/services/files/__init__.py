"""Files: uploads, their text, search over it, and attachments in chat."""
