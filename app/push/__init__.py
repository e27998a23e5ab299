"""Web Push (VAPID, RFC 8291): a browser's subscription and the pushes sent to it (DESIGN.md §13)."""
