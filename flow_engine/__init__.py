"""Flow Engine: runs WhatsApp chat-automation flows."""
